"""The Ultralytics trainer classes the training job hands to ``YOLO.train(trainer=...)``.

Each is a module-level class (Ultralytics' DDP launcher re-imports the trainer by module and name in every rank's
process), so every combination of the job's own training options has a name here:

* :class:`ChannelsLastTrainer`: the model and each batch in PyTorch's channels_last (NHWC) memory format, where
  cuDNN's bf16 convolutions are fastest (``instance_defaults`` says when it is chosen). Weights, loss and
  schedule are Ultralytics' own; only the layout of the tensors in memory changes.
* :class:`~sim2cloud.training.gpu_augment.GpuAugmentTrainer`: the training batches drawn on the GPU.
* :class:`ChannelsLastGpuAugmentTrainer`: both.
"""

from __future__ import annotations

from typing import Any

import torch
from ultralytics.models.yolo.detect import DetectionTrainer

from sim2cloud.training.gpu_augment import GpuAugmentTrainer


class ChannelsLastTrainer(DetectionTrainer):
    """DetectionTrainer training a channels_last model on channels_last batches."""

    def setup_model(self) -> Any:
        checkpoint = super().setup_model()
        # Before Ultralytics moves the model to the device and wraps it (EMA copy, DDP buckets): both keep the layout.
        model = self.model
        assert isinstance(model, torch.nn.Module)  # setup_model has built or loaded it (the name was a string)
        model.to(memory_format=torch.channels_last)
        return checkpoint

    def preprocess_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch = super().preprocess_batch(batch)
        batch["img"] = batch["img"].contiguous(memory_format=torch.channels_last)
        return batch


class ChannelsLastGpuAugmentTrainer(GpuAugmentTrainer, ChannelsLastTrainer):
    """Batches drawn on the GPU (:class:`GpuAugmentTrainer`), trained channels_last (:class:`ChannelsLastTrainer`)."""


def trainer_class(gpu_augment: bool, channels_last: bool) -> type[DetectionTrainer] | None:
    """The trainer for these options; None: Ultralytics' own DetectionTrainer."""
    if gpu_augment:
        return ChannelsLastGpuAugmentTrainer if channels_last else GpuAugmentTrainer
    return ChannelsLastTrainer if channels_last else None
