"""The front door: `--help` shows defaults, and each mistake a new user makes gets ONE clear line and an exit
status, never a traceback (commands that import torch or ONNX Runtime run in a child process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim2cloud import contract
from sim2cloud.cli import COMMANDS, main

REPO_ROOT = Path(__file__).resolve().parents[3]


def sim2cloud(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The console script as a user runs it (from ``cwd``, output not a terminal)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "sim2cloud.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], status: int, message: str) -> None:
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == status, output
    assert "Traceback" not in output
    assert output.splitlines() == [message], output


def test_top_level_help_says_what_the_tool_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "3D meshes in, a deployed object detector out" in out
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("render", "renderer (default gl"),
        ("demo", "(default: 1600)"),
        ("evaluate", "(default: val)"),
        ("evaluate", "(default: out/evaluation)"),
        ("status", "(default: the 10 newest runs)"),
        ("serve", "(default: 0.0.0.0)"),
    ],
)
def test_every_subcommand_help_shows_its_defaults(command: str, shown: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert shown in out
    assert "(default: None)" not in out


def test_render_out_pointing_at_a_file(tmp_path: Path) -> None:
    (tmp_path / "meshes" / "mug").mkdir(parents=True)
    (tmp_path / "dataset.zip").write_bytes(b"not a folder")
    result = sim2cloud("render", "--meshes", "meshes", "--out", "dataset.zip", cwd=tmp_path)
    assert_one_line(
        result,
        2,
        "sim2cloud render: --out dataset.zip: is a file, not a folder (the dataset is a folder: images/, labels/, "
        "data.yaml)",
    )


def test_train_dataset_missing_names_the_users_path_and_creates_nothing(tmp_path: Path) -> None:
    result = sim2cloud("train", "--dataset", "out/ds", "--out", "out/train", cwd=tmp_path)
    assert_one_line(result, 1, "sim2cloud train: --dataset out/ds: no such folder (a YOLO dataset: data.yaml, images/)")
    assert not (tmp_path / "out").exists()  # no broken link of our own making


def test_evaluate_endpoint_without_a_scheme(tmp_path: Path) -> None:
    result = sim2cloud("evaluate", "--model", "m", "--data", "d", "--endpoint", "localhost:8080", cwd=tmp_path)
    assert_one_line(
        result,
        1,
        "sim2cloud evaluate: --endpoint localhost:8080: must be an http(s) URL with a host, e.g. http://127.0.0.1:8080",
    )


def test_evaluate_endpoint_unreachable(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
        result = sim2cloud("evaluate", "--model", "m", "--data", "d", "--endpoint", url, cwd=tmp_path)
    assert_one_line(
        result,
        1,
        f"sim2cloud evaluate: --endpoint {url}: unreachable ([Errno 111] Connection refused); is the server "
        "running (sim2cloud serve)?",
    )


def test_serve_model_that_is_nothing_servable(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    result = sim2cloud("serve", "--model", "notes.txt", "--port", "0", cwd=tmp_path)
    assert_one_line(
        result,
        1,
        "sim2cloud serve: notes.txt is neither a model dir (model.onnx + model.json), a model.onnx nor a model.tar.gz",
    )


@pytest.mark.parametrize("given", ["training-out", "training-out/model", "training-out/model/model.onnx"])
def test_model_path_may_be_the_training_folder_or_model_onnx(tmp_path: Path, given: str) -> None:
    from sim2cloud.serving.model import opened_model

    model_dir = Path(contract.SageMakerPaths(base=str(tmp_path / "training-out")).model_dir)
    model_dir.mkdir(parents=True)
    for name in (contract.MODEL_ONNX_NAME, contract.MODEL_JSON_NAME):
        (model_dir / name).write_bytes(b"x")
    with opened_model(tmp_path / given) as resolved:
        assert resolved == model_dir
    assert sorted(p.name for p in model_dir.iterdir()) == sorted([contract.MODEL_JSON_NAME, contract.MODEL_ONNX_NAME])


def test_demo_outside_the_repository_uses_the_packages_samples(tmp_path: Path) -> None:
    from sim2cloud.local.cli import DEFAULT_MESHES

    assert DEFAULT_MESHES.is_absolute() and DEFAULT_MESHES.is_dir()
    result = sim2cloud("demo", "--meshes", "my-meshes", cwd=tmp_path)
    assert_one_line(result, 2, "sim2cloud demo: --meshes my-meshes: no such folder")
    assert not (tmp_path / "out").exists()


def test_demo_with_a_hyperparameter_typo_stops_before_anything_starts(tmp_path: Path) -> None:
    """`--hp epoch=3` is judged by batch.yaml's rules (the launcher's) before moto, rendering or training."""
    result = sim2cloud("demo", "--out", "out", "--hp", "epoch=3", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("sim2cloud demo: batch.yaml from the flags: training: unknown hyperparameter 'epoch'")
    assert not (tmp_path / "out").exists()
