"""Measuring a detector: mAP of a model file or a running endpoint on a labelled YOLO dataset."""
