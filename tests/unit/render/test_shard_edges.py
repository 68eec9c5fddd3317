"""Edges of the shard writer and finalize that mutation testing (make mutation) found unguarded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from isaac_jobs.dataset import ShardIncompleteError, ShardWriter, finalize, frames_for_shard, shard_dirs_in
from isaac_jobs.preview import PREVIEW_NAME
from sim2cloud import contract

RGB = np.full((32, 48, 3), 90, dtype=np.uint8)
SPEC = {"seed": 0, "val_fraction": 0.5}


def committed_shard(out: Path, shard: int, shards: int, frames: range, image_format: str = "jpg") -> Path:
    writer = ShardWriter(out, class_names=["a", "b"], shard=shard, shards=shards, image_format=image_format)
    for frame in frames:
        writer.add_frame(frame, RGB, [(frame % 2, 4.0, 4.0, 20.0, 16.0)])
    return writer.commit({"spec": SPEC})


def test_shard_bounds_are_checked() -> None:
    assert list(frames_for_shard(10, 1, 2)) == [5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="shards must be at least 1"):
        frames_for_shard(10, 0, 0)
    with pytest.raises(ValueError, match=r"shard 2 is outside 0\.\.1"):
        frames_for_shard(10, 2, 2)


@pytest.mark.parametrize(("image_format", "magic"), [("jpg", b"\xff\xd8\xff"), ("png", b"\x89PNG")])
def test_images_are_encoded_in_the_format_their_extension_says(tmp_path: Path, image_format: str, magic: bytes) -> None:
    shard = committed_shard(tmp_path, 0, 1, range(2), image_format)
    images = sorted((shard / contract.IMAGES_DIR).iterdir())
    assert [p.suffix for p in images] == [f".{image_format}"] * 2
    assert all(p.read_bytes().startswith(magic) for p in images)


def test_finalize_creates_missing_parent_folders(tmp_path: Path) -> None:
    committed_shard(tmp_path / "shards", 0, 1, range(4))
    out = tmp_path / "deep" / "er" / "dataset"
    manifest = finalize(shard_dirs_in(tmp_path / "shards"), out)
    assert manifest["totals"]["images"] == 4
    assert (out / contract.DATASET_MANIFEST_NAME).is_file()


def test_a_frame_missing_only_its_label_fails_finalize_and_leaves_nothing(tmp_path: Path) -> None:
    shard = committed_shard(tmp_path / "shards", 0, 1, range(4))
    (shard / contract.LABELS_DIR / "000002.txt").unlink()
    with pytest.raises(ShardIncompleteError, match="frame 000002 lacks its image or label file"):
        finalize([shard], tmp_path / "out" / "dataset")
    assert list((tmp_path / "out").iterdir()) == []  # not the dataset, nor its hidden build folder


@pytest.mark.parametrize(("preview_frames", "drawn"), [(0, False), (1, True)])
def test_preview_only_when_asked(tmp_path: Path, preview_frames: int, drawn: bool) -> None:
    committed_shard(tmp_path / "shards", 0, 1, range(3))
    out = tmp_path / "dataset"
    manifest = finalize(shard_dirs_in(tmp_path / "shards"), out, preview_frames=preview_frames)
    assert (out / PREVIEW_NAME).is_file() == drawn
    assert manifest["preview"] == (PREVIEW_NAME if drawn else None)
    assert json.loads((out / contract.DATASET_MANIFEST_NAME).read_text())["preview"] == manifest["preview"]


def test_only_shard_folders_are_found(tmp_path: Path) -> None:
    committed_shard(tmp_path, 0, 2, range(2))
    committed_shard(tmp_path, 1, 2, range(2, 4))
    for other in ("sharp-images", "shards-old", "notes"):
        (tmp_path / other).mkdir()
    assert [p.name for p in shard_dirs_in(tmp_path)] == [contract.shard_name(0), contract.shard_name(1)]
