"""Edges of the shard writer and finalize that mutation testing (make mutation) found unguarded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from isaac_jobs.dataset import (
    ShardIncompleteError,
    ShardWriter,
    finalize,
    frames_for_shard,
    keep_box,
    shard_dirs_in,
    split_frames,
)
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
    assert list(frames_for_shard(10, 0, 1)) == list(range(10))
    with pytest.raises(ValueError, match="shards must be at least 1"):
        frames_for_shard(10, 0, 0)
    for shard in (2, -1):
        with pytest.raises(ValueError, match=rf"shard {shard} is outside 0\.\.1"):
            frames_for_shard(10, shard, 2)


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


def test_a_class_id_one_past_the_last_class_is_refused(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, class_names=["a", "b"], shard=0, shards=1) as writer:
        writer.add_frame(0, RGB, [(1, 0.0, 0.0, 5.0, 5.0)])
        with pytest.raises(ValueError, match=r"frame 1: class id 2 outside 0\.\.1"):
            writer.add_frame(1, RGB, [(2, 0.0, 0.0, 5.0, 5.0)])


def test_a_writer_makes_its_output_folder_and_refuses_frames_after_abort(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path / "new" / "shards", class_names=["a"], shard=0, shards=1)
    writer.add_frame(0, RGB, [])
    writer.abort()
    with pytest.raises(RuntimeError, match="already committed or aborted"):
        writer.add_frame(1, RGB, [])
    assert list((tmp_path / "new" / "shards").iterdir()) == []


@pytest.mark.parametrize(
    ("box", "min_side", "expected"),
    [
        ((0, 10.0, -5.0, 30.0, 40.0), 4, (0, 10.0, 0.0, 30.0, 40.0)),  # clipped at the top edge
        ((0, 10.0, -50.0, 30.0, -10.0), 0, None),  # entirely above the image
        ((0, 120.0, 10.0, 150.0, 40.0), 0, None),  # entirely right of it, even with no minimum side
        ((0, 10.0, 10.0, 40.0, 14.0), 4, (0, 10.0, 10.0, 40.0, 14.0)),  # exactly the minimum height: kept
    ],
)
def test_keep_box_edges(box, min_side, expected) -> None:
    kept = keep_box(box, width=100, height=100, min_side_px=min_side, visible_fraction=1.0, min_visible_fraction=0.25)
    assert kept == expected


def test_split_rule_edges() -> None:
    frames = list(range(10))
    assert set(split_frames(frames, seed=0, val_fraction=0.0).values()) == {contract.TRAIN_SPLIT}
    assert list(split_frames(frames, seed=0, val_fraction=0.04).values()).count(contract.VAL_SPLIT) == 1
    assert list(split_frames(frames, seed=0, val_fraction=1.0).values()).count(contract.TRAIN_SPLIT) == 1


def test_finalize_defaults_to_a_fifth_for_val(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path / "shards", class_names=["a"], shard=0, shards=1)
    for frame in range(10):
        writer.add_frame(frame, RGB, [])
    writer.commit({"spec": {"seed": 3}})  # no val_fraction in the spec
    manifest = finalize(shard_dirs_in(tmp_path / "shards"), tmp_path / "dataset", preview_frames=0)
    assert manifest["counts"][contract.VAL_SPLIT]["images"] == 2
    assert manifest["split"]["val_fraction"] == 0.2


def test_shards_that_disagree_are_not_merged(tmp_path: Path) -> None:
    first = committed_shard(tmp_path / "shards", 0, 2, range(0, 2))
    other = ShardWriter(tmp_path / "shards", class_names=["a", "c"], shard=1, shards=2)
    for frame in range(2, 4):
        other.add_frame(frame, RGB, [])
    second = other.commit({"spec": SPEC})
    with pytest.raises(
        ShardIncompleteError, match=re.escape(f"shard {second}: its class_names differs from shard {first}'s")
    ):
        finalize([first, second], tmp_path / "dataset")
    assert not (tmp_path / "dataset").exists()


def test_an_unreadable_marker_is_named(tmp_path: Path) -> None:
    shard = committed_shard(tmp_path / "shards", 0, 1, range(2))
    (shard / contract.SHARD_COMPLETE_MARKER).write_text("{not json")
    with pytest.raises(ShardIncompleteError, match=f"unreadable {contract.SHARD_COMPLETE_MARKER}"):
        finalize([shard], tmp_path / "dataset")


def test_a_float_image_of_the_right_shape_is_refused(tmp_path: Path) -> None:
    with (
        ShardWriter(tmp_path, class_names=["a"], shard=0, shards=1) as writer,
        pytest.raises(ValueError, match=r"frame 3: expected an \(H, W, 3\) uint8 image"),
    ):
        writer.add_frame(3, RGB.astype(np.float64), [])


def test_label_centres_keep_their_half_pixels(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, class_names=["a"], shard=0, shards=1)
    writer.add_frame(0, RGB, [(0, 1.0, 2.0, 4.0, 9.0)])  # centre (2.5, 5.5) of a 48 x 32 image
    shard = writer.commit({"spec": SPEC})
    assert (shard / contract.LABELS_DIR / "000000.txt").read_text() == "0 0.052083 0.171875 0.062500 0.218750\n"


def test_keep_box_minimum_width_is_inclusive() -> None:
    box = (0, 10.0, 10.0, 14.0, 40.0)  # exactly 4 px wide
    assert keep_box(box, width=100, height=100, min_side_px=4, visible_fraction=1.0, min_visible_fraction=0.25) == box
