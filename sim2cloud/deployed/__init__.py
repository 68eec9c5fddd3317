"""``sim2cloud submit`` and ``sim2cloud status``: a deployed environment (or the local demo's moto) from a shell."""
