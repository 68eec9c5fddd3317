"""Sim-to-Cloud: meshes -> synthetic labelled images -> YOLO detector -> SageMaker endpoint."""

__version__ = "0.1.0"
