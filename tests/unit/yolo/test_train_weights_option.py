"""``sim2cloud train --weights FILE`` lays the file out as SageMaker's weights channel and names it in model=."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim2cloud import contract
from sim2cloud.training.cli import lay_out_local_tree, lay_out_weights


def test_weights_become_the_channel_and_the_model(tmp_path: Path, tiny_dataset: Path) -> None:
    weights = tmp_path / "yolov8n.pt"
    weights.write_bytes(b"not really weights")
    hp = {"epochs": "1"}
    paths = lay_out_local_tree(tmp_path / "out", tiny_dataset, hp)
    lay_out_weights(paths, weights, hp)
    channel = Path(paths.channel(contract.WEIGHTS_CHANNEL))
    assert [p.name for p in channel.iterdir()] == ["yolov8n.pt"]
    assert (channel / "yolov8n.pt").resolve() == weights.resolve()  # linked, never copied or changed
    assert json.loads(Path(paths.hyperparameters).read_text()) == {"epochs": "1", "model": "yolov8n.pt"}
    other = tmp_path / "coco.pt"
    other.write_bytes(b"x")
    lay_out_weights(paths, other, {"epochs": "1"})  # a rerun with other weights replaces the channel's file
    assert [p.name for p in channel.iterdir()] == ["coco.pt"]


@pytest.mark.parametrize(
    ("name", "hp", "message"),
    [
        ("yolov8n.pt", {"model": "yolov8s.yaml"}, "give one of them"),
        ("yolov8n.onnx", {}, "is not a .pt file"),
    ],
)
def test_contradictions_and_wrong_files_are_refused(
    tmp_path: Path, tiny_dataset: Path, name: str, hp: dict[str, str], message: str
) -> None:
    weights = tmp_path / name
    weights.write_bytes(b"x")
    paths = lay_out_local_tree(tmp_path / "out", tiny_dataset, dict(hp))
    with pytest.raises(SystemExit, match=message):
        lay_out_weights(paths, weights, dict(hp))
