"""The Ultralytics trainer classes the training job hands to ``YOLO.train(trainer=...)``.

Each is a module-level class (Ultralytics' DDP launcher re-imports the trainer by module and name in every rank's
process), so every combination of the job's own training options has a name here:

* :class:`ChannelsLastTrainer`: the model and each batch in PyTorch's channels_last (NHWC) memory format, where
  cuDNN's bf16 convolutions are fastest (``instance_defaults`` says when it is chosen). Weights, loss and
  schedule are Ultralytics' own; only the layout of the tensors in memory changes.
* :class:`~sim2cloud.training.gpu_augment.GpuAugmentTrainer`: the training batches drawn on the GPU.
* :class:`~sim2cloud.training.cuda_graphs.CudaGraphTrainer`: the training step (forward, loss, backward)
  replayed as CUDA graphs on one GPU.
* the combinations, named by their parts in that order.
"""

from __future__ import annotations

from typing import Any

import torch
from ultralytics.models.yolo.detect import DetectionTrainer

from sim2cloud.training.cuda_graphs import CudaGraphTrainer
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


class ChannelsLastCudaGraphTrainer(CudaGraphTrainer, ChannelsLastTrainer):
    """channels_last, with the training step as CUDA graphs."""


class GpuAugmentCudaGraphTrainer(CudaGraphTrainer, GpuAugmentTrainer):
    """Batches drawn on the GPU, with the training step as CUDA graphs."""


class ChannelsLastGpuAugmentCudaGraphTrainer(CudaGraphTrainer, ChannelsLastGpuAugmentTrainer):
    """Batches drawn on the GPU, trained channels_last, the training step as CUDA graphs."""


_TRAINERS: dict[tuple[bool, bool, bool], type[DetectionTrainer] | None] = {
    # (gpu_augment, channels_last, cuda_graphs)
    (False, False, False): None,
    (False, True, False): ChannelsLastTrainer,
    (True, False, False): GpuAugmentTrainer,
    (True, True, False): ChannelsLastGpuAugmentTrainer,
    (False, False, True): CudaGraphTrainer,
    (False, True, True): ChannelsLastCudaGraphTrainer,
    (True, False, True): GpuAugmentCudaGraphTrainer,
    (True, True, True): ChannelsLastGpuAugmentCudaGraphTrainer,
}


def trainer_class(*, gpu_augment: bool, channels_last: bool, cuda_graphs: bool) -> type[DetectionTrainer] | None:
    """The trainer for these options; None: Ultralytics' own DetectionTrainer."""
    return _TRAINERS[(gpu_augment, channels_last, cuda_graphs)]
