"""ShardWriter: complete or absent; finalize refuses shards without their marker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from isaac_jobs.dataset import ShardIncompleteError, ShardWriter, finalize, keep_box
from sim2cloud import contract

RGB = np.zeros((32, 48, 3), dtype=np.uint8)


def write_shard(out: Path, shard: int, shards: int, frames: range, *, commit: bool = True) -> ShardWriter:
    writer = ShardWriter(out, class_names=["a", "b"], shard=shard, shards=shards)
    for frame in frames:
        writer.add_frame(frame, RGB, [(frame % 2, 4.0, 4.0, 20.0, 16.0)])
    if commit:
        writer.commit({"spec": {"seed": 0, "val_fraction": 0.5}, "renderer": {"backend": "test-writer"}})
    return writer


def test_commit_renames_into_place_and_writes_the_marker(tmp_path: Path) -> None:
    write_shard(tmp_path, 1, 2, range(3, 6))
    shard = tmp_path / contract.shard_name(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [shard.name]  # no temp sibling left
    assert sorted(p.name for p in (shard / contract.IMAGES_DIR).iterdir()) == ["000003.jpg", "000004.jpg", "000005.jpg"]
    assert (shard / contract.LABELS_DIR / "000004.txt").read_text() == "0 0.250000 0.312500 0.333333 0.375000\n"
    marker = json.loads((shard / contract.SHARD_COMPLETE_MARKER).read_text())
    assert marker["frames"] == [3, 4, 5] and marker["shard"] == 1 and marker["shards"] == 2
    assert marker["box_counts"] == {"a": 1, "b": 2}
    assert marker["contract_version"] == contract.CONTRACT_VERSION


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    writer = write_shard(tmp_path, 0, 1, range(4), commit=False)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_an_exception_while_rendering_leaves_nothing(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="renderer died"),
        ShardWriter(tmp_path, class_names=["a"], shard=0, shards=1) as writer,
    ):
        writer.add_frame(0, RGB, [])
        raise RuntimeError("renderer died")
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_are_rejected_with_the_frame_named(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, class_names=["a"], shard=0, shards=1) as writer:
        with pytest.raises(ValueError, match=r"frame 7: class id 3 outside 0\.\.0"):
            writer.add_frame(7, RGB, [(3, 0.0, 0.0, 1.0, 1.0)])
        with pytest.raises(ValueError, match="frame 8: expected an \\(H, W, 3\\) uint8 image"):
            writer.add_frame(8, RGB[..., 0], [])


def test_finalize_refuses_a_shard_without_marker_naming_it(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    write_shard(shards, 0, 2, range(0, 3))
    write_shard(shards, 1, 2, range(3, 6))
    (shards / contract.shard_name(1) / contract.SHARD_COMPLETE_MARKER).unlink()
    with pytest.raises(ShardIncompleteError, match=r"shard-0001: incomplete \(no _COMPLETE.json"):
        finalize(sorted(shards.iterdir()), tmp_path / "dataset")
    assert not (tmp_path / "dataset").exists()


def test_finalize_names_missing_shards(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    write_shard(shards, 0, 3, range(0, 2))
    write_shard(shards, 2, 3, range(4, 6))
    with pytest.raises(ShardIncompleteError, match=r"shard-0001: missing \(expected 3 shards\)"):
        finalize(sorted(shards.iterdir()), tmp_path / "dataset")
    with pytest.raises(ShardIncompleteError, match=r"shard-0003: missing \(expected 4 shards\)"):
        finalize(sorted(shards.iterdir()), tmp_path / "dataset", expected_shards=4)
    assert not (tmp_path / "dataset").exists()


@pytest.mark.parametrize(
    ("box", "visible", "expected"),
    [
        ((0, -5.0, 10.0, 30.0, 40.0), 1.0, (0, 0.0, 10.0, 30.0, 40.0)),  # clipped at the left edge
        ((1, 90.0, 90.0, 130.0, 120.0), None, (1, 90.0, 90.0, 100.0, 100.0)),  # clipped right/bottom; None = visible
        ((0, 120.0, 10.0, 150.0, 40.0), 1.0, None),  # entirely outside
        ((0, 10.0, 10.0, 13.0, 40.0), 1.0, None),  # narrower than min side
        ((0, 98.0, 10.0, 110.0, 40.0), 1.0, None),  # only 2 px left after clipping
        ((0, 10.0, 10.0, 40.0, 40.0), 0.1, None),  # mostly hidden
        ((0, 10.0, 10.0, 40.0, 40.0), 0.25, (0, 10.0, 10.0, 40.0, 40.0)),  # at the threshold: kept
    ],
)
def test_keep_box_rule(box, visible, expected) -> None:
    assert keep_box(box, width=100, height=100, min_side_px=4, visible_fraction=visible, min_visible_fraction=0.25) == (
        expected
    )


def test_encoder_thread_count_never_changes_the_shard(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 255, (32, 48, 3), dtype=np.uint8) for _ in range(12)]

    def shard_bytes(threads: int) -> dict[str, bytes]:
        out = tmp_path / f"threads-{threads}"
        writer = ShardWriter(out, class_names=["a", "b"], shard=0, shards=1, encoder_threads=threads)
        for frame, image in enumerate(images):
            writer.add_frame(frame, image, [(frame % 2, 1.0, 2.0, 30.0, 20.0)])
        shard = writer.commit({"spec": {"seed": 0, "val_fraction": 0.5}})
        files = [p for p in shard.rglob("*") if p.is_file() and p.name != contract.SHARD_COMPLETE_MARKER]
        return {str(p.relative_to(shard)): p.read_bytes() for p in files}

    one, four = shard_bytes(1), shard_bytes(4)
    assert len(one) == 24
    assert one == four


def test_a_failed_image_write_fails_the_commit_and_leaves_no_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image that cannot be written (here: the disk fills up on frame 2) must never become a committed shard
    with a completion marker that finalize would trust."""
    from PIL import Image

    real_save = Image.Image.save

    def save_failing_on_frame_2(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        if Path(str(fp)).stem == "000002":
            raise OSError(28, "No space left on device")
        real_save(self, fp, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "save", save_failing_on_frame_2)
    writer = ShardWriter(tmp_path, class_names=["a", "b"], shard=0, shards=1)
    for frame in range(4):
        writer.add_frame(frame, RGB, [(0, 4.0, 4.0, 20.0, 16.0)])
    with pytest.raises(OSError, match="No space left"):
        writer.commit({"spec": {"seed": 0, "val_fraction": 0.5}})
    assert list(tmp_path.iterdir()) == []  # neither the shard nor its temporary folder
    assert not list(tmp_path.rglob(contract.SHARD_COMPLETE_MARKER))
