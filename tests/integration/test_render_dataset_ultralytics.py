"""The rendered dataset is accepted by Ultralytics: its checker passes and a 1-epoch training logs no label warning."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")  # never try the network (no weights, fonts or hub checks)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Rendered by the CLI in its own process, as users run it; this also keeps Mesa's LLVM (llvmpipe) and
    # torch's out of one process, where loading torch after an EGL context has crashed.
    root = Path(__file__).resolve().parents[2]
    out = tmp_path_factory.mktemp("render") / "dataset"
    command = [sys.executable, "-m", "sim2cloud.cli", "render", "--meshes", str(root / "samples" / "meshes")]
    command += ["--out", str(out), "--frames", "24", "--set", "width=160", "--set", "height=160", "--no-progress"]
    completed = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert f"dataset: {out}" in completed.stdout
    return out


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.slow
def test_check_det_dataset_accepts_it_and_one_epoch_trains_without_label_warnings(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ultralytics import YOLO
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils import LOGGER

    data = check_det_dataset(str(dataset / "data.yaml"), autodownload=False)
    assert data["nc"] == len(data["names"]) >= 3
    assert Path(data["train"]).is_dir() and Path(data["val"]).is_dir()

    collected = _Collect()
    LOGGER.addHandler(collected)
    monkeypatch.chdir(tmp_path)
    try:
        model = YOLO("yolov8n.yaml")  # architecture only: no weights download
        model.train(
            data=str(dataset / "data.yaml"), epochs=1, imgsz=160, batch=8, workers=0, device="cpu",
            plots=False, amp=False, val=True, project=str(tmp_path / "runs"), name="smoke", exist_ok=True,
            verbose=False,
        )  # fmt: skip
    finally:
        LOGGER.removeHandler(collected)
    label_problems = [m for m in collected.messages if "label" in m.lower() or "corrupt" in m.lower()]
    assert label_problems == []
    assert (tmp_path / "runs" / "smoke" / "weights" / "last.pt").is_file()
