"""The detection model's training step (forward, loss, backward) replayed as CUDA graphs on one GPU.

Why: on a fast GPU a YOLOv8n step is limited by Python launching kernels, not by the GPU. On an H200 one step
at batch 64, 640 px, bf16 (forward, loss, backward, clipping, AdamW, EMA) took 63 ms of wall time for 39 ms of
GPU kernels: about 1,900 kernels, each launched through PyTorch's dispatcher (``bench/train_step_profile.py``
prints both times, eager and graphed). A CUDA graph records the kernels once and replays them with one launch.
With only the model's forward and backward in the graph a step took about 51 ms: the loss stayed eager, several
hundred small kernels and three host synchronisations a step (its target assignment sizes tensors by the
batch's contents). :mod:`sim2cloud.training.static_loss` writes the same loss with fixed shapes, so the graph
holds the forward, the loss and both backward passes; the optimizer and the EMA stay eager (a few fused
kernels). The step then took 37.4 ms for 36.4 ms of GPU kernels: the GPU is the limit. The values are
Ultralytics' own (``tests/gpu/test_on_gpu.py`` trains eagerly and graphed side by side).

How: PyTorch's ``torch.cuda.make_graphed_callables`` captures the step for the first training batch.
:class:`GraphedForward` is installed as the model's ``forward``: Ultralytics' loop calls ``model(batch)``;
a batch whose images have the captured shape and whose targets fit the padding
(:meth:`CudaGraphTrainer.preprocess_batch` pads them on the CPU) replays the graph. Anything else (the last,
smaller batch of an epoch, an image with more boxes than the padding, evaluation) runs the model's own forward
and Ultralytics' own loss. A model whose loss is not YOLOv8's detection loss, or a step that cannot be
captured, falls back to graphing the forward and backward alone, and that failing, to eager training.
Where it is used (see ``instance_defaults``): exactly one CUDA GPU (DDP all-reduces gradients from inside the
backward pass, which a captured graph would not do) and one batch per optimizer step (``batch >= nbs``; with
gradient accumulation PyTorch may hand the graph's own gradient buffer to ``param.grad``, which the next replay
would overwrite).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.torch_utils import unwrap_model

from sim2cloud.training import static_loss
from sim2cloud.training.gpu_augment import to_device

WARMUP_ITERATIONS = 3
"""Eager forward + backward passes PyTorch runs on a side stream before capturing (cuDNN and the allocator
settle); their batch-norm statistics updates are undone (:meth:`GraphedForward.capture`)."""
PADDED_TARGETS = "padded_targets"
"""Batch key of the targets padded for the graphed loss (:func:`static_loss.pad_targets`), on the GPU."""


class _TrainingForward(torch.nn.Module):
    """Captured when the loss cannot be: the detection model's training forward, images -> raw predictions."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> Any:
        return self.model.predict(images)  # type: ignore[operator]


class _TrainingStep(torch.nn.Module):
    """Captured where it can be: forward and loss, (images, padded targets) -> the gain-weighted losses."""

    def __init__(self, model: torch.nn.Module, loss: static_loss.StaticShapeDetectionLoss) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(self.model.predict(images), targets)  # type: ignore[operator]


def static_loss_for(model: torch.nn.Module) -> static_loss.StaticShapeDetectionLoss | None:
    """The fixed-shape loss for ``model``, when its criterion is YOLOv8's detection loss, else None."""
    criterion = getattr(model, "criterion", None)
    if criterion is None:
        criterion = model.criterion = model.init_criterion()  # type: ignore[operator]  # as model.loss does
    if type(criterion) is not v8DetectionLoss:  # end-to-end, segmentation, pose... have their own assignment
        return None
    return static_loss.StaticShapeDetectionLoss(criterion)


class GraphedForward:
    """Stands in for a detection model's ``forward``: training batches of the captured shape replay the graph."""

    def __init__(self, model: torch.nn.Module, box_slots: int | None = None) -> None:
        self.model = model
        self.box_slots = box_slots
        """Boxes per image the padded targets hold (None: the loss is not graphed)."""
        self.graphed: Callable[..., Any] | None = None
        self.step_graphed = False
        """Whether the graph holds the loss too (else the forward and backward alone)."""
        self.shape: torch.Size | None = None
        self.unavailable: str | None = None
        """Why no graph is used (a capture that failed); None while it is used or not yet captured."""

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        model = self.model
        if isinstance(x, dict):  # Ultralytics' model(batch)
            if not args and not kwargs and self._step_graphable(x):
                return self._replay_step(x["img"], x[PADDED_TARGETS])
            return model.loss(x, *args, **kwargs)  # type: ignore[operator]  # calls back here with the images
        if not args and not kwargs and not self.step_graphed and self._graphable(x):
            if self.graphed is None and self.unavailable is None:
                self.capture(x)
            if self.graphed is not None and x.shape == self.shape:
                return self.graphed(x)
        return type(model).forward(model, x, *args, **kwargs)

    def _graphable(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor) and x.is_cuda and self.model.training and torch.is_grad_enabled()

    def _step_graphable(self, batch: dict[str, Any]) -> bool:
        images, targets = batch.get("img"), batch.get(PADDED_TARGETS)
        if not isinstance(targets, torch.Tensor) or not isinstance(images, torch.Tensor) or not self._graphable(images):
            return False
        if self.graphed is None and self.unavailable is None:
            loss = static_loss_for(self.model)
            if loss is None:
                print("cuda graphs: the loss is not YOLOv8's detection loss; graphing forward and backward", flush=True)
                self.box_slots = None
                return False
            self.capture(images, targets, loss)
        return self.step_graphed and images.shape == self.shape

    def _replay_step(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        """What Ultralytics' loss returns: (losses x batch size, the losses by name, detached)."""
        assert self.graphed is not None
        loss = self.graphed(images, targets)
        # The graph's output is a static buffer the next replay overwrites: the logged losses get their own copy.
        names: tuple[str, ...] = getattr(self.model, "criterion").loss_names  # noqa: B009  # set by static_loss_for
        return loss * images.shape[0], dict(zip(names, loss.detach().clone(), strict=True))

    def capture(
        self,
        images: torch.Tensor,
        targets: torch.Tensor | None = None,
        loss: static_loss.StaticShapeDetectionLoss | None = None,
    ) -> None:
        """Capture the training step for batches shaped like ``images`` (under the caller's autocast settings):
        forward, loss and backward when ``loss`` and ``targets`` are given, else forward and backward. A step
        that cannot be captured leaves the forward to be captured at the next call; any other failure leaves
        the model eager, and :attr:`unavailable` says why."""
        model = self.model
        saved_buffers = [buffer.detach().clone() for buffer in model.buffers()]
        device_type = images.device.type
        started = time.perf_counter()
        step = loss is not None and targets is not None
        try:
            # PyTorch refuses autocast's weight cache during capture; the cast kernels are recorded instead.
            with torch.autocast(
                device_type,
                dtype=torch.get_autocast_dtype(device_type),
                enabled=torch.is_autocast_enabled(device_type),
                cache_enabled=False,
            ):
                if step:
                    assert loss is not None and targets is not None
                    callable_: torch.nn.Module = _TrainingStep(model, loss)
                    sample: tuple[torch.Tensor, ...] = (images.detach().clone(), targets.clone())
                else:
                    callable_, sample = _TrainingForward(model), (images.detach().clone(),)
                self.graphed = torch.cuda.make_graphed_callables(callable_, sample, num_warmup_iters=WARMUP_ITERATIONS)
            self.shape = images.shape
            self.step_graphed = step
        except Exception as error:  # any failure leaves a correct, only slower, path
            self.graphed = None
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            if step:
                self.box_slots = None  # the trainer stops padding; the forward is captured at its next call
                print(
                    f"cuda graphs: the loss could not be captured ({reason}); graphing forward and backward", flush=True
                )
            else:
                self.unavailable = reason
                print(f"cuda graphs: off ({reason}); training eagerly", flush=True)
        finally:
            # The warm-up passes ran in training mode: put the batch-norm statistics back as they were.
            with torch.no_grad():
                for buffer, saved in zip(model.buffers(), saved_buffers, strict=True):
                    buffer.copy_(saved)
        if self.graphed is not None:
            seconds = time.perf_counter() - started
            held = "forward, loss and backward" if step else "forward and backward"
            print(f"cuda graphs: {held} captured for batches of {tuple(images.shape)} in {seconds:.1f} s", flush=True)


def installed(model: torch.nn.Module) -> GraphedForward | None:
    """The :class:`GraphedForward` installed on ``model``, if any."""
    forward = model.__dict__.get("forward")
    return forward if isinstance(forward, GraphedForward) else None


def install(model: torch.nn.Module, graphed_forward: GraphedForward) -> None:
    model.__dict__["forward"] = graphed_forward  # an instance attribute shadows the class's forward


def remove(model: torch.nn.Module) -> None:
    model.__dict__.pop("forward", None)


def graphs_unsupported_reason(trainer: DetectionTrainer) -> str | None:
    """Why this training run cannot use CUDA graphs, else None."""
    if trainer.device.type != "cuda":
        return f"training on {trainer.device.type}"
    if trainer.world_size > 1:
        return "several GPUs (DDP all-reduces gradients inside the backward pass)"
    if trainer.accumulate > 1:
        return f"batch {trainer.batch_size} < nbs {trainer.args.nbs}: gradients accumulate over batches"
    return None


class CudaGraphTrainer(DetectionTrainer):
    """DetectionTrainer whose model replays its training forward and backward as CUDA graphs where it can."""

    graphed_forward: GraphedForward | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_callback("on_train_start", _install_graphs)
        self.add_callback("on_train_end", _remove_graphs)

    def preprocess_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        # Padded on the CPU, where each image's box count is known without asking the GPU.
        graphed = self.graphed_forward
        padded = None
        if graphed is not None and graphed.box_slots is not None:
            padded = static_loss.pad_targets(
                np.asarray(batch["batch_idx"]),
                np.asarray(batch["cls"]),
                np.asarray(batch["bboxes"]),
                len(batch["im_file"]),
                graphed.box_slots,
            )
        batch = super().preprocess_batch(batch)
        if padded is not None:
            batch[PADDED_TARGETS] = to_device(padded, self.device)
        return batch

    def _handle_nan_recovery(self, epoch: int) -> bool:
        # Recovery builds a new EMA by deep-copying the model: the copy must get the model's own forward.
        with _eager_forward(self):
            return bool(super()._handle_nan_recovery(epoch))


def _install_graphs(trainer: CudaGraphTrainer) -> None:
    """``on_train_start``: after Ultralytics has built the EMA copy, frozen layers and the optimizer."""
    reason = graphs_unsupported_reason(trainer)
    if reason:
        print(f"cuda graphs: off ({reason}); training eagerly", flush=True)
        return
    model = _trained_model(trainer)
    dataset = trainer.train_loader.dataset
    boxes_per_image = [len(label["cls"]) for label in dataset.labels]
    mosaic = float(getattr(trainer.args, "mosaic", 0.0)) > 0.0
    trainer.graphed_forward = GraphedForward(model, static_loss.box_slots(boxes_per_image, mosaic))
    install(model, trainer.graphed_forward)


def _remove_graphs(trainer: CudaGraphTrainer) -> None:
    """``on_train_end``: the model gets its own forward back and the graphs' memory is released."""
    remove(_trained_model(trainer))
    trainer.graphed_forward = None


def _trained_model(trainer: DetectionTrainer) -> torch.nn.Module:
    model = unwrap_model(trainer.model)  # type: ignore[arg-type]
    assert isinstance(model, torch.nn.Module)  # built by the time training starts
    return model


@contextlib.contextmanager
def _eager_forward(trainer: CudaGraphTrainer) -> Iterator[None]:
    model = _trained_model(trainer)
    graphed_forward = installed(model)
    remove(model)
    try:
        yield
    finally:
        if graphed_forward is not None:
            install(model, graphed_forward)
