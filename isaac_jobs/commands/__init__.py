"""CLI commands of the render job (``sim2cloud render`` / ``finalize``)."""
