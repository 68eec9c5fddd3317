"""Per-epoch work done on rank 0: the metric line, the metric history and the spot-safe checkpoint copy.

Instances are registered as Ultralytics callbacks and are pickled into DDP workers (cloudpickle), so they hold
only paths; every rank receives them, and each call returns at once on ranks other than 0.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from sim2cloud import contract

METRICS_HISTORY_NAME = "metrics.jsonl"
"""One JSON object per finished epoch, kept beside the checkpoint so a resumed run keeps its history."""
CHECKPOINT_NAME = "last.pt"
BEST_NAME = "best.pt"
BEST_FLAG = "best"
"""History key marking the epochs whose weights became best.pt (the exported model)."""
COMPLETE_MARKER_NAME = "training_complete.json"
"""Written once training has finished; a restarted job then goes straight to export."""

# Ultralytics' keys for the validation metrics of a detection model.
_ULTRALYTICS_METRIC_KEYS = {
    "mAP50": "metrics/mAP50(B)",
    "mAP50-95": "metrics/mAP50-95(B)",
    "precision": "metrics/precision(B)",
    "recall": "metrics/recall(B)",
    "val_box_loss": "val/box_loss",
    "val_cls_loss": "val/cls_loss",
    "val_dfl_loss": "val/dfl_loss",
}


def epoch_metric_values(
    epoch: int, validation: dict[str, Any], train_losses: dict[str, Any], images_per_second: float | None = None
) -> dict[str, float]:
    """Our metric names (contract.METRIC_NAMES) from Ultralytics' dicts; ``epoch`` is 1-based."""
    values: dict[str, float] = {"epoch": float(epoch)}
    if images_per_second is not None:
        values["train_images_per_s"] = float(images_per_second)
    for ours, theirs in _ULTRALYTICS_METRIC_KEYS.items():
        if theirs in validation:
            values[ours] = float(validation[theirs])
    for name in ("box_loss", "cls_loss", "dfl_loss"):
        key = f"train/{name}"
        if key in train_losses:
            values[name] = float(train_losses[key])
    return values


def atomic_copy(source: Path, destination: Path) -> None:
    """Copy so that ``destination`` is always either the old or the complete new file (SageMaker uploads it)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.partial")
    shutil.copyfile(source, temporary)
    temporary.replace(destination)


def _is_rank_zero() -> bool:
    from ultralytics.utils import RANK

    return RANK in {-1, 0}


class EpochTimer:
    """``on_train_epoch_start`` / ``on_train_epoch_end``: wall time of the training pass (validation excluded).

    Ranks run in lockstep under DDP, so rank 0's time over the whole training set is the job's throughput.
    """

    def __init__(self) -> None:
        self.started = 0.0
        self.images_per_second: float | None = None

    def start(self, trainer: Any) -> None:
        self.started = time.perf_counter()

    def end(self, trainer: Any) -> None:
        elapsed = time.perf_counter() - self.started
        images = len(trainer.train_loader.dataset) if trainer.train_loader is not None else 0
        self.images_per_second = images / elapsed if elapsed > 0 and images else None


class EpochReporter:
    """``on_model_save``: checkpoint copied, history appended, then the metric line printed."""

    def __init__(self, checkpoint_dir: Path, timer: EpochTimer | None = None) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.timer = timer

    def __call__(self, trainer: Any) -> None:
        if not _is_rank_zero():
            return
        train_losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss is not None else {}
        throughput = self.timer.images_per_second if self.timer is not None else None
        values = epoch_metric_values(trainer.epoch + 1, dict(trainer.metrics or {}), train_losses, throughput)
        # Ultralytics saves best.pt when this epoch's fitness equals the best so far (ties: the later epoch).
        is_best = trainer.fitness is not None and trainer.fitness == trainer.best_fitness
        with (self.checkpoint_dir / METRICS_HISTORY_NAME).open("a") as history:
            history.write(json.dumps({**values, BEST_FLAG: bool(is_best)}) + "\n")
        atomic_copy(Path(trainer.last), self.checkpoint_dir / CHECKPOINT_NAME)
        print(contract.format_metric_line(values), flush=True)


class CompletionMarker:
    """``on_train_end``: keep best.pt beside the checkpoint and mark the training as finished."""

    def __init__(self, checkpoint_dir: Path) -> None:
        self.checkpoint_dir = checkpoint_dir

    def __call__(self, trainer: Any) -> None:
        if not _is_rank_zero():
            return
        best = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
        atomic_copy(best, self.checkpoint_dir / BEST_NAME)
        marker = self.checkpoint_dir / COMPLETE_MARKER_NAME
        marker.write_text(json.dumps({"epochs": int(trainer.epochs), "last_epoch": int(trainer.epoch) + 1}))


def exported_epoch_metrics(history: list[dict[str, float]]) -> dict[str, float]:
    """Metrics of the epoch whose weights are exported (the last one flagged best), else of the last epoch."""
    best = [entry for entry in history if entry.get(BEST_FLAG)]
    chosen = best[-1] if best else (history[-1] if history else {})
    return {k: float(v) for k, v in chosen.items() if k != BEST_FLAG}


def read_history(checkpoint_dir: Path) -> list[dict[str, float]]:
    path = checkpoint_dir / METRICS_HISTORY_NAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class CpuThreads:
    """``on_train_start``: PyTorch's CPU threads for CPU training (Ultralytics sets its own when it picks the
    device, after the job could)."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __call__(self, trainer: Any) -> None:
        import torch

        torch.set_num_threads(self.count)


def final_plots(trainer: Any) -> None:
    """``on_fit_epoch_end``: once training stops, plots on, so only the final validation of best.pt draws
    Ultralytics' confusion matrix, PR/F1 curves and val batches (and results.png); per-epoch plots cost time."""
    if trainer.stop:
        trainer.args.plots = True
