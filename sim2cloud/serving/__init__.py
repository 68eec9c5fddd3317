"""Serving a trained model with the SageMaker container contract (``sim2cloud serve`` / container ``serve``)."""
