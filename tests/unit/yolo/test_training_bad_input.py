"""Every bad dataset (and bad hyperparameters) ends in output/failure with a reason and a non-zero exit.

These fail before Ultralytics is imported, so they run the real CLI in-process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sim2cloud import contract
from sim2cloud.cli import main
from sim2cloud.training.dataset_checks import check_dataset


def _train(dataset: Path, out: Path, *hp: str) -> tuple[int, str]:
    args = ["train", "--dataset", str(dataset), "--out", str(out), "--no-progress"]
    for item in hp:
        args += ["--hp", item]
    code = main(args)
    failure = Path(contract.SageMakerPaths(base=str(out.resolve())).failure_file)
    return code, failure.read_text() if failure.exists() else ""


def _first(directory: Path, pattern: str) -> Path:
    return sorted(directory.glob(pattern))[0]


def test_missing_data_yaml(tiny_dataset: Path, tmp_path: Path) -> None:
    (tiny_dataset / contract.DATA_YAML_NAME).unlink()
    code, reason = _train(tiny_dataset, tmp_path / "out")
    assert code != 0
    assert "data.yaml is missing" in reason


def test_zero_images(tiny_dataset: Path, tmp_path: Path) -> None:
    for image in (tiny_dataset / "images" / "train").iterdir():
        image.unlink()
    code, reason = _train(tiny_dataset, tmp_path / "out")
    assert code != 0
    assert "no images for split 'train'" in reason


def test_class_id_out_of_range(tiny_dataset: Path, tmp_path: Path) -> None:
    label = _first(tiny_dataset / "labels" / "val", "*.txt")
    label.write_text("7 0.5 0.5 0.2 0.2\n")
    code, reason = _train(tiny_dataset, tmp_path / "out")
    assert code != 0
    assert f"{label.relative_to(tiny_dataset)}:1: class id 7 out of range 0..2" in reason


def test_corrupt_image(tiny_dataset: Path, tmp_path: Path) -> None:
    image = _first(tiny_dataset / "images" / "train", "*.jpg")
    image.write_bytes(image.read_bytes()[: len(image.read_bytes()) // 3])  # truncated mid-scan
    code, reason = _train(tiny_dataset, tmp_path / "out")
    assert code != 0
    assert f"{image.relative_to(tiny_dataset)}: corrupt or unreadable image" in reason


def test_garbage_image(tiny_dataset: Path, tmp_path: Path) -> None:
    image = _first(tiny_dataset / "images" / "val", "*.jpg")
    image.write_bytes(b"this is not a jpeg")
    code, reason = _train(tiny_dataset, tmp_path / "out")
    assert code != 0
    assert str(image.relative_to(tiny_dataset)) in reason


def test_empty_channel(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, reason = _train(empty, tmp_path / "out")
    assert code != 0
    assert "is empty" in reason


def test_malformed_label_line(tiny_dataset: Path, tmp_path: Path) -> None:
    label = _first(tiny_dataset / "labels" / "train", "*.txt")
    label.write_text("0 0.5 0.5\n")
    code, reason = _train(tiny_dataset, tmp_path / "out")
    assert code != 0
    assert "expected 'class cx cy w h'" in reason


def test_unknown_hyperparameter_in_the_sagemaker_file(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = contract.SageMakerPaths(base=str(out))
    Path(paths.channel(contract.DATASET_CHANNEL)).parent.mkdir(parents=True)
    shutil.copytree(tiny_dataset, paths.channel(contract.DATASET_CHANNEL))
    Path(paths.hyperparameters).parent.mkdir(parents=True)
    Path(paths.hyperparameters).write_text(json.dumps({"epochz": "3"}))
    from sim2cloud.training.job import run_job

    assert run_job(paths, {}, progress=False) == 1
    assert "unknown hyperparameter 'epochz'" in Path(paths.failure_file).read_text()


def test_bad_cli_hyperparameter_exits_before_laying_out(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="imgsz"):
        _train(tiny_dataset, tmp_path / "out", "imgsz=50")
    assert not (tmp_path / "out").exists()


def test_all_problems_listed_and_user_data_untouched(tiny_dataset: Path, tmp_path: Path) -> None:
    labels = sorted((tiny_dataset / "labels" / "train").glob("*.txt"))[:2]
    for label in labels:
        label.write_text("9 0.5 0.5 0.1 0.1\n")
    before = sorted(p.relative_to(tiny_dataset) for p in tiny_dataset.rglob("*"))
    code, reason = _train(tiny_dataset, tmp_path / "out")
    assert code != 0
    assert "2 problem(s)" in reason
    assert all(str(label.relative_to(tiny_dataset)) in reason for label in labels)
    assert sorted(p.relative_to(tiny_dataset) for p in tiny_dataset.rglob("*")) == before


def test_good_dataset_summary(tiny_dataset: Path) -> None:
    summary = check_dataset(tiny_dataset, progress=False)
    assert summary.class_names == ["square", "disc", "triangle"]
    assert summary.image_counts == {"train": 16, "val": 8}
    assert summary.manifest is not None
    assert summary.manifest_sha256 is not None
    assert len(summary.manifest_sha256) == 64
