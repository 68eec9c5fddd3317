"""YOLO training with the SageMaker bring-your-own-container contract (``sim2cloud train`` / container ``train``)."""
