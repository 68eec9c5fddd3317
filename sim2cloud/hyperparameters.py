"""The training hyperparameters: one typed, documented table, parsed from SageMaker's string values.

SageMaker writes every value of ``hyperparameters.json`` as a string (``{"epochs": "50"}``), so each entry
parses a string; values that are already typed (a local run's JSON) are accepted through ``str()``.
Unknown keys are an error: a typo such as ``epoch=5`` must not silently train for the default 50 epochs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

AUTO: Literal["auto"] = "auto"


class HyperparameterError(ValueError):
    """A hyperparameter is unknown or has a value that cannot be used; the message names it."""


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.strip())
        if value < minimum:
            raise ValueError(f"must be >= {minimum}")
        return value

    return parse


def _image_size(text: str) -> int:
    value = int(text.strip())
    if value < 32 or value % 32:
        raise ValueError("must be a multiple of 32 (the model's largest stride), at least 32")
    return value


def _positive_float(text: str) -> float:
    value = float(text.strip())
    if not value > 0:
        raise ValueError("must be > 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text.strip())
    if not value >= 0:
        raise ValueError("must be >= 0")
    return value


def _or_auto(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``auto`` (the instance picks the value: :mod:`sim2cloud.training.instance_defaults`) or ``parse``'s value."""

    def parse_or_auto(text: str) -> Any:
        return AUTO if text.strip().lower() == AUTO else parse(text)

    return parse_or_auto


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        lowered = {a.lower(): a for a in allowed}
        if value.lower() not in lowered:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return lowered[value.lower()]

    return parse


def _model(text: str) -> str:
    value = text.strip()
    if not value.endswith((".yaml", ".yml", ".pt")) or "/" in value or value.startswith("."):
        raise ValueError("must be a model YAML name (e.g. yolov8n.yaml) or a .pt file name in the weights channel")
    return value


def _device(text: str) -> str:
    value = text.strip().lower()
    if value in {"auto", "cpu"}:
        return value
    ids = value.split(",")
    if not all(i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise ValueError("must be auto, cpu, or comma-separated distinct GPU indices such as 0 or 0,1,2,3")
    return value


@dataclass(frozen=True)
class Hyperparameters:
    """Training settings. Each field's default is what a job without that key gets."""

    epochs: int = 50
    """Epochs to train (a resumed run keeps the epoch count stored in its checkpoint)."""
    imgsz: int = 640
    """Square training and export image size in pixels; the ONNX model is exported at exactly this size."""
    batch: int | Literal["auto"] = AUTO
    """Images per step over all GPUs (split across DDP ranks, so use a multiple of the GPU count); ``auto``: from
    the GPUs' count and memory, the model scale and imgsz (64 per 24+ GiB GPU for yolov8n at 640; 16 on CPU)."""
    model: str = "yolov8n.yaml"
    """A model YAML known to Ultralytics (built from scratch, no download) or a ``.pt`` file in the weights channel."""
    patience: int = 50
    """Epochs without validation improvement before stopping early (0 disables early stopping)."""
    seed: int = 0
    """Random seed for reproducible runs (deterministic algorithms are kept on)."""
    workers: int | Literal["auto"] = AUTO
    """Dataloader worker processes per rank; ``auto``: every usable CPU of a rank but one (CPU training: 0, which
    Ultralytics enforces there anyway)."""
    cache: str = AUTO
    """Cache decoded images: ``false``, ``ram``, ``disk`` (.npy files in a scratch copy) or ``auto`` (``ram``
    when every rank's decoded train + val images take at most half the available RAM, else ``false``)."""
    threads: int | Literal["auto"] = AUTO
    """PyTorch CPU threads of the training process when it trains on the CPU; ``auto``: every usable CPU
    (Ultralytics' own choice, CPUs - 1, leaves half of a 2-core machine idle), CPUs - 1 when the machine is
    already busy (load above 0.5 per CPU). GPU training keeps Ultralytics'."""
    gpu_augment: str = AUTO
    """Draw mosaic, affine warp, HSV and flips on the GPU (``sim2cloud.training.gpu_augment``): ``true``,
    ``false`` or ``auto`` (on when training on GPUs with the RAM cache and the decoded images take at most a
    quarter of a GPU's memory). Pipelines it cannot draw (mixup, perspective, ...) stay on the CPU anyway."""
    channels_last: str = AUTO
    """Train in PyTorch's channels_last memory format (NHWC: cuDNN's fast bf16 convolutions): ``true``, ``false``
    or ``auto`` (on when training on GPUs in bf16). The model and its results are the same, only faster."""
    cuda_graphs: str = AUTO
    """Replay the training step (forward, loss, backward) as CUDA graphs (``sim2cloud.training.cuda_graphs``: the
    same kernels without Python launching each one): ``true``, ``false`` or ``auto`` (on when training on exactly one
    GPU). Runs with several GPUs or with gradient accumulation (``batch`` < ``nbs``) train eagerly anyway."""
    lr0: float = 0.01
    """Initial learning rate; used only when ``optimizer`` is not ``auto`` (auto picks its own)."""
    optimizer: str = "auto"
    """SGD, Adam, AdamW or auto (Ultralytics chooses by dataset size)."""
    close_mosaic: int = 10
    """Final epochs trained without mosaic augmentation."""
    nbs: int = 64
    """Nominal batch size: gradients are accumulated over ``nbs / batch`` batches per optimizer step (and weight
    decay scaled to it), so batches up to 64 train alike; set it to ``batch`` for a step every batch (short runs)."""
    warmup_epochs: float = 3.0
    """Epochs of learning-rate and momentum warm-up (fractional allowed; 0 disables it)."""
    device: str = "auto"
    """``auto`` (every visible GPU: SM_NUM_GPUS / CUDA count, else cpu), ``cpu``, or GPU indices like ``0,1``."""
    amp: str = "auto"
    """Mixed precision: ``auto`` = bf16 on GPUs that support it, else off (never runs Ultralytics' AMP check,
    which downloads yolo26n.pt); ``bf16``; ``false``."""
    opset: int = 17
    """ONNX opset of the exported model.onnx (17: supported by every ONNX Runtime >= 1.14)."""


_PARSERS: dict[str, Callable[[str], Any]] = {
    "epochs": _int_at_least(1),
    "imgsz": _image_size,
    "batch": _or_auto(_int_at_least(1)),
    "model": _model,
    "patience": _int_at_least(0),
    "seed": _int_at_least(0),
    "workers": _or_auto(_int_at_least(0)),
    "cache": _choice(AUTO, "false", "ram", "disk"),
    "threads": _or_auto(_int_at_least(1)),
    "gpu_augment": _choice(AUTO, "true", "false"),
    "channels_last": _choice(AUTO, "true", "false"),
    "cuda_graphs": _choice(AUTO, "true", "false"),
    "lr0": _positive_float,
    "optimizer": _choice("auto", "SGD", "Adam", "AdamW"),
    "close_mosaic": _int_at_least(0),
    "nbs": _int_at_least(1),
    "warmup_epochs": _non_negative_float,
    "device": _device,
    "amp": _choice("auto", "bf16", "false"),
    "opset": _int_at_least(11),
}
HYPERPARAMETER_NAMES = tuple(f.name for f in fields(Hyperparameters))
assert set(_PARSERS) == set(HYPERPARAMETER_NAMES), "every hyperparameter needs exactly one parser"


def parse_hyperparameters(raw: Mapping[str, Any]) -> Hyperparameters:
    """Validate every key and value of ``raw``; all problems are reported together."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, raw_value in raw.items():
        parser = _PARSERS.get(key)
        if parser is None:
            problems.append(f"unknown hyperparameter {key!r} (known: {', '.join(HYPERPARAMETER_NAMES)})")
            continue
        text = json.dumps(raw_value) if isinstance(raw_value, bool) else str(raw_value)
        try:
            values[key] = parser(text)
        except ValueError as error:
            problems.append(f"hyperparameter {key}={raw_value!r}: {error}")
    if problems:
        raise HyperparameterError("; ".join(problems))
    return Hyperparameters(**values)


def load_hyperparameters(path: Path) -> Hyperparameters:
    """Read SageMaker's ``hyperparameters.json``; a missing file means all defaults."""
    if not path.exists():
        return Hyperparameters()
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise HyperparameterError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(raw, dict):
        raise HyperparameterError(f"{path} must hold a JSON object of hyperparameters")
    return parse_hyperparameters(raw)


def parse_key_values(pairs: list[str]) -> dict[str, str]:
    """``["epochs=2", "imgsz=96"]`` -> ``{"epochs": "2", "imgsz": "96"}`` (the CLI's ``--hp``)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise HyperparameterError(f"--hp {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out
