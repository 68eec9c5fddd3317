"""The demo's settings travel in its batch.yaml like any user's: defaults, flags and --set/--hp all land there."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import yaml

from isaac_jobs.batch import discover_batch
from sim2cloud import contract
from sim2cloud.local import cli, runner

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "meshes"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(list(argv))


def _batch_dir_with(tmp_path: Path, text: str) -> Path:
    batch = tmp_path / "batch"
    shutil.copytree(SAMPLES, batch)
    (batch / "batch.yaml").write_text(text)
    return batch


def test_the_default_demo_writes_its_render_size_and_schedule_into_batch_yaml(tmp_path: Path) -> None:
    text = runner.batch_yaml(runner.DemoSettings(meshes=SAMPLES, out=tmp_path / "out"))
    config = yaml.safe_load(text)
    assert config["frames"] == runner.DEMO_FRAMES
    assert config["render"] == dict(runner.DEMO_RENDER)
    assert config[contract.MANIFEST_TRAINING_FIELD] == dict(runner.DEMO_TRAINING)
    # Rendered at the training size: nothing is resized before training.
    assert config["render"]["width"] == config["render"]["height"] == config["training"]["imgsz"]
    # The render job reads it as any user's batch.yaml (its training: keys are checked against the job's table).
    plan = discover_batch(_batch_dir_with(tmp_path, text))
    assert plan.render_overrides["width"] == runner.DEMO_IMGSZ


def test_flags_and_overrides_land_in_the_batch_sections() -> None:
    render, training = cli.batch_sections(
        _args("--epochs", "3", "--imgsz", "96", "--batch", "4", "--hp", "lr0=0.002", "--set", "width=100")
    )
    assert training == {**runner.DEMO_TRAINING, "epochs": 3, "imgsz": 96, "batch": 4, "lr0": 0.002}
    assert render == {**runner.DEMO_RENDER, "width": 100, "height": 96}  # --set wins over --imgsz
    assert cli.batch_sections(_args()) == (dict(runner.DEMO_RENDER), dict(runner.DEMO_TRAINING))


def test_a_new_demo_clears_the_last_runs_outputs_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "training" / "opt-ml" / "input" / "data" / "dataset").mkdir(parents=True)
    (out / "dataset").symlink_to("training/opt-ml/input/data/dataset", target_is_directory=True)  # the last run's
    (out / "summary.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    runner.Demo(runner.DemoSettings(meshes=SAMPLES, out=out)).prepare()
    assert not (out / "dataset").exists() and not (out / "dataset").is_symlink()
    assert not (out / "summary.json").exists() and not (out / "training").exists()
    assert (out / "notes.txt").read_text() == "mine"
