"""finalize: YOLO layout, data.yaml, deterministic split and the manifest (written last)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from isaac_jobs.dataset import finalize, split_frames
from isaac_jobs.shards import render_meshes_to_shard
from isaac_jobs.spec import spec_to_dict
from sim2cloud import contract


def test_finalize_writes_the_yolo_layout_and_manifest(meshes, class_names, small_spec, tmp_path: Path) -> None:
    spec = small_spec(frames=10, objects_per_frame=[1, 3], val_fraction=0.3, seed=11)
    shards = tmp_path / "shards"
    for shard in range(2):
        render_meshes_to_shard(meshes, class_names, shards, spec=spec, shard=shard, shards=2, progress=False)
    out = tmp_path / "dataset"
    manifest = finalize(sorted(shards.iterdir()), out, expected_shards=2)

    assert json.loads((out / contract.DATASET_MANIFEST_NAME).read_text()) == manifest
    data = yaml.safe_load((out / contract.DATA_YAML_NAME).read_text())
    assert data["names"] == dict(enumerate(class_names)) and data["nc"] == 3
    assert "path" not in data  # resolved against the file's folder: the dataset can move
    assert (data["train"], data["val"]) == ("images/train", "images/val")

    images = {s: sorted(p.stem for p in (out / "images" / s).iterdir()) for s in contract.SPLITS}
    labels = {s: sorted(p.stem for p in (out / "labels" / s).iterdir()) for s in contract.SPLITS}
    assert images == labels
    assert sorted(images["train"] + images["val"]) == [f"{i:06d}" for i in range(10)]
    assert len(images["val"]) == 3
    splits = split_frames(range(10), seed=11, val_fraction=0.3)
    assert images["val"] == sorted(f"{i:06d}" for i, s in splits.items() if s == "val")

    per_class = {s: dict.fromkeys(class_names, 0) for s in contract.SPLITS}
    for split in contract.SPLITS:
        for label in (out / "labels" / split).iterdir():
            for line in label.read_text().splitlines():
                per_class[split][class_names[int(line.split()[0])]] += 1
    for split in contract.SPLITS:
        counts = manifest["counts"][split]
        assert counts["per_class"] == per_class[split]
        assert counts["images"] == len(images[split])
        assert counts["boxes"] == sum(per_class[split].values())
    assert manifest["totals"]["images"] == 10
    assert manifest["schema_version"] == contract.MANIFEST_SCHEMA_VERSION
    assert manifest["contract_version"] == contract.CONTRACT_VERSION
    assert manifest["class_names"] == class_names
    assert manifest["seeds"]["seed"] == 11
    assert manifest["spec"] == spec_to_dict(spec)
    assert manifest["renderer"]["backend"] == "gl" and manifest["renderer"]["gl_renderer"]
    assert [m["name"] for m in manifest["source_meshes"]] == ["box", "ball", "tube"]
    assert all({"bytes", "sha256", "class_name", "path"} <= set(m) for m in manifest["source_meshes"])
    assert [s["frames"] for s in manifest["shards"]] == [5, 5]
    assert (out / manifest["preview"]).is_file()
    # The manifest is the last file written.
    newest = max(out.rglob("*"), key=lambda p: p.stat().st_mtime_ns)
    assert newest.name == contract.DATASET_MANIFEST_NAME

    # Finalizing again replaces the previous dataset with identical content (deterministic), shards untouched.
    again = finalize(sorted(shards.iterdir()), out, expected_shards=2)
    assert again == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset", "shards"]


def test_split_always_has_val_and_train_frames() -> None:
    for n in (2, 3, 7, 24):
        splits = split_frames(range(n), seed=0, val_fraction=0.05)
        assert set(splits.values()) == {"train", "val"}
    assert split_frames(range(5), seed=0, val_fraction=0.2) == split_frames(range(5), seed=0, val_fraction=0.2)


def test_data_yaml_reads_back_the_class_names_and_path_yaml_would_parse() -> None:
    """One writer for the dataset's data.yaml and the training job's view of it: odd class names (quotes,
    colons, non-ASCII, a YAML keyword) and a path with spaces come back exactly."""
    names = ['mug "tall"', "box: big", "café", "yes", "#hash"]
    data = yaml.safe_load(contract.data_yaml_text(names, path="/opt/ml/scratch dir/view"))
    assert data == {
        "path": "/opt/ml/scratch dir/view",
        "train": "images/train",
        "val": "images/val",
        "nc": 5,
        "names": dict(enumerate(names)),
    }
    assert "path" not in yaml.safe_load(contract.data_yaml_text(names))
