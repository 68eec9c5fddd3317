from __future__ import annotations

from pathlib import Path

from sim2cloud import contract
from sim2cloud.training.callbacks import atomic_copy, epoch_metric_values, exported_epoch_metrics


def test_ultralytics_keys_become_contract_metric_names() -> None:
    validation = {
        "metrics/precision(B)": 0.5,
        "metrics/recall(B)": 0.25,
        "metrics/mAP50(B)": 0.4,
        "metrics/mAP50-95(B)": 0.2,
        "val/box_loss": 1.0,
        "val/cls_loss": 2.0,
        "val/dfl_loss": 3.0,
        "fitness": 0.9,
    }
    train = {"train/box_loss": 4.0, "train/cls_loss": 5.0, "train/dfl_loss": 6.0}
    values = epoch_metric_values(3, validation, train, images_per_second=123.5)
    assert set(values) == set(contract.METRIC_NAMES)
    assert values["train_images_per_s"] == 123.5
    line = contract.format_metric_line(values)
    assert contract.parse_metric_line(line) == values
    assert values["mAP50-95"] == 0.2
    assert values["epoch"] == 3.0


def test_exported_metrics_come_from_the_best_epoch() -> None:
    history = [
        {"epoch": 1.0, "mAP50": 0.1, "best": True},
        {"epoch": 2.0, "mAP50": 0.5, "best": True},
        {"epoch": 3.0, "mAP50": 0.3, "best": False},
    ]
    assert exported_epoch_metrics(history) == {"epoch": 2.0, "mAP50": 0.5}
    assert exported_epoch_metrics([{"epoch": 1.0, "mAP50": 0.0, "best": False}])["epoch"] == 1.0
    assert exported_epoch_metrics([]) == {}


def test_atomic_copy_leaves_no_partial_file(tmp_path: Path) -> None:
    source = tmp_path / "last.pt"
    source.write_bytes(b"weights")
    destination = tmp_path / "checkpoints" / "last.pt"
    atomic_copy(source, destination)
    atomic_copy(source, destination)
    assert destination.read_bytes() == b"weights"
    assert [p.name for p in destination.parent.iterdir()] == ["last.pt"]
