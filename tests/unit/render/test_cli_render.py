"""``sim2cloud render`` / ``finalize`` end to end on mesh files, including bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import trimesh

from isaac_jobs.backends.isaac_replicator import ISAAC_PYTHON
from sim2cloud import contract
from sim2cloud.cli import main

SMALL = ["--set", "width=96", "--set", "height=64", "--no-progress"]


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    root = tmp_path / "meshes"
    (root / "crate").mkdir(parents=True)
    (root / "ball").mkdir()
    trimesh.creation.box(extents=(0.3, 0.2, 0.2)).export(root / "crate" / "crate.stl")
    trimesh.creation.icosphere(subdivisions=2, radius=0.1).export(root / "ball" / "ball.ply")
    return root


def test_render_single_shard_prints_dataset_and_preview(batch: Path, tmp_path: Path, capsys) -> None:
    (batch / "ball" / "broken.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\n")  # truncated
    before = {p: p.read_bytes() for p in batch.rglob("*") if p.is_file()}
    out = tmp_path / "dataset"
    assert main(["render", "--meshes", str(batch), "--out", str(out), "--frames", "6", *SMALL]) == 0
    captured = capsys.readouterr()
    assert f"dataset: {out}" in captured.out
    assert f"preview: {out / 'preview.png'}" in captured.out
    assert "broken.ply" in captured.err  # the per-file error is listed
    manifest = json.loads((out / contract.DATASET_MANIFEST_NAME).read_text())
    assert manifest["totals"]["images"] == 6
    assert manifest["class_names"] == ["ball", "crate"]
    assert any("broken.ply" in e["path"] for e in manifest["mesh_errors"])
    assert {p: p.read_bytes() for p in batch.rglob("*") if p.is_file()} == before  # input untouched
    # Temporary shards removed; the USD assets stay beside the dataset, listed by the manifest with their hashes.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset", "dataset-assets", "meshes"]
    assets = tmp_path / "dataset-assets"
    assert f"USD assets: {assets}" in captured.out
    listed = {f["path"]: f["sha256"] for f in manifest["assets"]["files"]}
    assert set(listed) == {"ball/ball.usd", "crate/crate.usd"}
    assert all(hashlib.sha256((assets / path).read_bytes()).hexdigest() == sha for path, sha in listed.items())
    assert manifest[contract.MANIFEST_TRAINING_FIELD] == {}  # no batch.yaml: an empty training section


def test_render_writes_batch_yaml_training_into_the_manifest(batch: Path, tmp_path: Path) -> None:
    (batch / contract.BATCH_CONFIG_NAME).write_text("training:\n  epochs: 7\n  imgsz: 320\n")
    out = tmp_path / "dataset"
    assert main(["render", "--meshes", str(batch), "--out", str(out), "--frames", "3", *SMALL]) == 0
    manifest = json.loads((out / contract.DATASET_MANIFEST_NAME).read_text())
    assert manifest[contract.MANIFEST_TRAINING_FIELD] == {"epochs": 7, "imgsz": 320}


def test_render_shards_then_finalize(batch: Path, tmp_path: Path, capsys) -> None:
    shards = tmp_path / "shards"
    plan_written = []
    for shard in ("0", "1"):
        args = ["render", "--meshes", str(batch), "--out", str(shards), "--frames", "5", "--shard", shard]
        assert main([*args, "--shards", "2", *SMALL]) == 0
        plan_written.append((shards / "assets" / contract.ASSET_PLAN_NAME).stat().st_mtime_ns)
    # Both shards rendered from the one preparation in shards/assets: the second reused it as it was.
    assert sorted(p.name for p in shards.iterdir()) == ["assets", "shard-0000", "shard-0001"]
    assert plan_written[0] == plan_written[1]
    out = tmp_path / "dataset"
    assert main(["finalize", "--shards-dir", str(shards), "--out", str(out), "--expected-shards", "3"]) == 1
    assert "shard-0002: missing" in capsys.readouterr().err
    assert main(["finalize", "--shards-dir", str(shards), "--out", str(out), "--expected-shards", "2"]) == 0
    assert json.loads((out / contract.DATASET_MANIFEST_NAME).read_text())["totals"]["images"] == 5


def test_no_valid_mesh_exits_non_zero_with_reasons(tmp_path: Path, capsys) -> None:
    root = tmp_path / "meshes" / "junk"
    root.mkdir(parents=True)
    (root / "splat.ply").write_text("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
                                    "property float z\nend_header\n0 0 0\n")  # fmt: skip
    (root / "notes.txt").write_text("not a mesh")
    out = tmp_path / "dataset"
    assert main(["render", "--meshes", str(root.parent), "--out", str(out), "--frames", "2", *SMALL]) == 1
    err = capsys.readouterr().err
    assert "no valid mesh" in err and "splat.ply" in err and "notes.txt" in err
    assert not out.exists()


def test_bad_spec_values_exit_2_naming_the_key(batch: Path, tmp_path: Path, capsys) -> None:
    code = main(["render", "--meshes", str(batch), "--out", str(tmp_path / "o"), "--set", "camera_fov_deg=[9, 1]"])
    assert code == 2
    assert "camera_fov_deg: min 9.0 is greater than max 1.0" in capsys.readouterr().err


@pytest.mark.skipif(Path(ISAAC_PYTHON).exists(), reason="Isaac Sim is installed here")
def test_isaac_backend_without_isaac_sim_fails_clearly(batch: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "dataset"
    code = main(["render", "--meshes", str(batch), "--out", str(out), "--frames", "2", "--backend", "isaac", *SMALL])
    assert code == 1
    assert "needs NVIDIA Isaac Sim" in capsys.readouterr().err
    assert not out.exists()


def test_render_into_a_non_empty_dataset_refuses_unless_force(batch: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "dataset"
    assert main(["render", "--meshes", str(batch), "--out", str(out), "--frames", "2", *SMALL]) == 0
    first = (out / contract.DATASET_MANIFEST_NAME).read_bytes()
    capsys.readouterr()
    assert main(["render", "--meshes", str(batch), "--out", str(out), "--frames", "3", *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"sim2cloud render: --out {out}: is not empty; pass --force to replace the dataset in it, or choose another "
        "folder"
    ]
    assert (out / contract.DATASET_MANIFEST_NAME).read_bytes() == first  # untouched
    assert main(["render", "--meshes", str(batch), "--out", str(out), "--frames", "3", "--force", *SMALL]) == 0
    assert json.loads((out / contract.DATASET_MANIFEST_NAME).read_text())["totals"]["images"] == 3


def test_class_names_with_spaces_reach_data_yaml(tmp_path: Path) -> None:
    import yaml

    root = tmp_path / "kitchen set 2"
    (root / "coffee mug").mkdir(parents=True)
    (root / "lights").mkdir()
    trimesh.creation.cylinder(radius=0.05, height=0.1).export(root / "coffee mug" / "mug 1.stl")
    trimesh.creation.box(extents=(0.1, 0.1, 0.3)).export(root / "lights" / "signal.stl")
    (root / contract.BATCH_CONFIG_NAME).write_text("classes:\n  lights: traffic light\n")
    out = tmp_path / "data set"
    assert main(["render", "--meshes", str(root), "--out", str(out), "--frames", "2", *SMALL]) == 0
    data = yaml.safe_load((out / contract.DATA_YAML_NAME).read_text())
    assert data["names"] == {0: "coffee mug", 1: "traffic light"}
    assert json.loads((out / contract.DATASET_MANIFEST_NAME).read_text())["class_names"] == [
        "coffee mug",
        "traffic light",
    ]


def test_a_class_whose_only_mesh_fails_is_dropped_with_one_warning(batch: Path, tmp_path: Path, capsys) -> None:
    (batch / "ghost").mkdir()
    (batch / "ghost" / "ghost.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\n")  # truncated
    out = tmp_path / "dataset"
    assert main(["render", "--meshes", str(batch), "--out", str(out), "--frames", "2", *SMALL]) == 0
    err = capsys.readouterr().err
    assert err.count("ghost.ply") == 1  # each error printed once
    assert "class 'ghost' dropped: none of its meshes could be used" in err
    assert json.loads((out / contract.DATASET_MANIFEST_NAME).read_text())["class_names"] == ["ball", "crate"]
