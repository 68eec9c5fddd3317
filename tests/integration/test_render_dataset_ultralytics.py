"""The rendered dataset is accepted by Ultralytics: its checker passes and a 1-epoch training logs no label warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def run_child(*args: str) -> dict[str, Any]:
    """Ultralytics in a child process (see ultralytics_child.py for why); returns its JSON line."""
    child = Path(__file__).with_name("ultralytics_child.py")
    completed = subprocess.run(
        [sys.executable, str(child), *args], capture_output=True, text=True, check=False, timeout=600
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_check_det_dataset_accepts_it_and_one_epoch_trains_without_label_warnings(
    dataset: Path, tmp_path: Path
) -> None:
    trained = run_child("train", str(dataset / "data.yaml"), str(tmp_path))
    data = trained["checked"]  # ultralytics.data.utils.check_det_dataset's answer
    assert data["nc"] == len(data["names"]) >= 3
    assert Path(data["train"]).is_dir() and Path(data["val"]).is_dir()
    label_problems = [m for m in trained["warnings"] if "label" in m.lower() or "corrupt" in m.lower()]
    assert label_problems == []
    assert Path(trained["last_pt"]).is_file()
