"""Shards: same seed => same bytes; shards are disjoint and together equal a one-shard run."""

from __future__ import annotations

from pathlib import Path

import pytest

from isaac_jobs.dataset import frames_for_shard
from isaac_jobs.shards import render_meshes_to_shard
from sim2cloud import contract


def files(shard_dir: Path, folder: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((shard_dir / folder).iterdir())}


@pytest.mark.parametrize(("frames", "shards"), [(10, 3), (5, 5), (3, 4), (0, 2), (100, 7)])
def test_frames_for_shard_are_disjoint_and_cover(frames: int, shards: int) -> None:
    parts = [frames_for_shard(frames, k, shards) for k in range(shards)]
    flat = [i for part in parts for i in part]
    assert flat == list(range(frames))
    assert parts == [frames_for_shard(frames, k, shards) for k in range(shards)]


def test_frames_for_shard_rejects_bad_indices() -> None:
    with pytest.raises(ValueError, match=r"shard 3 is outside 0\.\.2"):
        frames_for_shard(10, 3, 3)
    with pytest.raises(ValueError, match="shards must be at least 1"):
        frames_for_shard(10, 0, 0)


def test_same_seed_same_bytes_and_shards_union_equals_one_shard_run(meshes, class_names, small_spec, tmp_path) -> None:
    spec = small_spec(frames=7, objects_per_frame=[1, 3])
    whole = render_meshes_to_shard(meshes, class_names, tmp_path / "one", spec=spec, progress=False)
    again = render_meshes_to_shard(meshes, class_names, tmp_path / "again", spec=spec, progress=False)
    assert files(whole.path, contract.LABELS_DIR) == files(again.path, contract.LABELS_DIR)
    assert files(whole.path, contract.IMAGES_DIR) == files(again.path, contract.IMAGES_DIR)

    union_labels: dict[str, bytes] = {}
    union_images: dict[str, bytes] = {}
    for shard in range(3):
        part = render_meshes_to_shard(
            meshes, class_names, tmp_path / "three", spec=spec, shard=shard, shards=3, progress=False
        )
        assert part.path.name == contract.shard_name(shard)
        labels = files(part.path, contract.LABELS_DIR)
        assert not set(labels) & set(union_labels)  # disjoint
        union_labels.update(labels)
        union_images.update(files(part.path, contract.IMAGES_DIR))
    assert union_labels == files(whole.path, contract.LABELS_DIR)
    assert union_images == files(whole.path, contract.IMAGES_DIR)
    assert any(union_labels.values())  # there were boxes to compare

    other_seed = render_meshes_to_shard(
        meshes, class_names, tmp_path / "seed1", spec=small_spec(frames=7, objects_per_frame=[1, 3], seed=1),
        progress=False,
    )  # fmt: skip
    assert files(other_seed.path, contract.LABELS_DIR) != files(whole.path, contract.LABELS_DIR)
