"""The detection model's training forward and backward replayed as CUDA graphs on one GPU.

Why: on a fast GPU a YOLOv8n step is limited by Python launching kernels, not by the GPU. On an H200 one step
at batch 64, 640 px, bf16 (forward, loss, backward, clipping, AdamW, EMA) took 63 ms of wall time for 39 ms of
GPU kernels: about 1,900 kernels, each launched through PyTorch's dispatcher (``bench/train_step_profile.py``
prints both times, eager and graphed). A CUDA graph records the model's forward
and backward kernels once and replays them with one launch each; the loss (its target assignment changes
shape every batch), the optimizer and the EMA stay eager. The kernels, their order and their numbers are the
ones the eager model would run, so training is unchanged (``tests/gpu/test_on_gpu.py`` compares the two). In
training on that GPU a step then took 48-50 ms.

How: PyTorch's ``torch.cuda.make_graphed_callables`` captures the model's training forward for the first
training batch. :class:`GraphedForward` is installed as the model's ``forward``: Ultralytics' loop calls
``model(batch)``, the model's ``loss`` calls ``self.forward(images)``, and images of the captured shape in
training mode replay the graph; anything else (the last, smaller batch of an epoch, evaluation) runs the
model's own forward. Where it is used (see ``instance_defaults``): exactly one CUDA GPU (DDP all-reduces
gradients from inside the backward pass, which a captured graph would not do) and one batch per optimizer
step (``batch >= nbs``; with gradient accumulation PyTorch may hand the graph's own gradient buffer to
``param.grad``, which the next replay would overwrite).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.torch_utils import unwrap_model

WARMUP_ITERATIONS = 3
"""Eager forward + backward passes PyTorch runs on a side stream before capturing (cuDNN and the allocator
settle); their batch-norm statistics updates are undone (:meth:`GraphedForward.capture`)."""


class _TrainingForward(torch.nn.Module):
    """The callable that is captured: the detection model's training forward, images -> raw predictions."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> Any:
        return self.model.predict(images)  # type: ignore[operator]


class GraphedForward:
    """Stands in for a detection model's ``forward``: training batches of the captured shape replay the graph."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.graphed: Callable[..., Any] | None = None
        self.shape: torch.Size | None = None
        self.unavailable: str | None = None
        """Why no graph is used (a capture that failed); None while it is used or not yet captured."""

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        model = self.model
        if isinstance(x, dict):  # Ultralytics' model(batch): the loss, which calls back here with the images
            return model.loss(x, *args, **kwargs)  # type: ignore[operator]
        if not args and not kwargs and self._graphable(x):
            if self.graphed is None and self.unavailable is None:
                self.capture(x)
            if self.graphed is not None and x.shape == self.shape:
                return self.graphed(x)
        return type(model).forward(model, x, *args, **kwargs)

    def _graphable(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor) and x.is_cuda and self.model.training and torch.is_grad_enabled()

    def capture(self, images: torch.Tensor) -> None:
        """Capture the training forward and backward for batches shaped like ``images`` (under the caller's
        autocast settings); on failure the model stays eager and :attr:`unavailable` says why."""
        model = self.model
        saved_buffers = [buffer.detach().clone() for buffer in model.buffers()]
        device_type = images.device.type
        started = time.perf_counter()
        try:
            # PyTorch refuses autocast's weight cache during capture; the cast kernels are recorded instead.
            with torch.autocast(
                device_type,
                dtype=torch.get_autocast_dtype(device_type),
                enabled=torch.is_autocast_enabled(device_type),
                cache_enabled=False,
            ):
                self.graphed = torch.cuda.make_graphed_callables(
                    _TrainingForward(model), (images.detach().clone(),), num_warmup_iters=WARMUP_ITERATIONS
                )
            self.shape = images.shape
        except Exception as error:  # any failure leaves eager training, which is correct, only slower
            self.graphed = None
            self.unavailable = f"{type(error).__name__}: {error}".splitlines()[0]
            print(f"cuda graphs: off ({self.unavailable}); training eagerly", flush=True)
        finally:
            # The warm-up passes ran in training mode: put the batch-norm statistics back as they were.
            with torch.no_grad():
                for buffer, saved in zip(model.buffers(), saved_buffers, strict=True):
                    buffer.copy_(saved)
        if self.graphed is not None:
            seconds = time.perf_counter() - started
            print(
                f"cuda graphs: forward and backward captured for batches of {tuple(images.shape)} in {seconds:.1f} s",
                flush=True,
            )


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
    trainer.graphed_forward = GraphedForward(model)
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
