"""Batch discovery (class folders, batch.yaml) and loading with bad files among good ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from isaac_jobs.batch import BatchConfigError, discover_batch, load_batch


def _copy_batch(sample_batch: Path, tmp_path: Path) -> Path:
    batch = tmp_path / "batch"
    shutil.copytree(sample_batch, batch)
    return batch


def test_classes_are_folders(sample_batch: Path) -> None:
    plan = discover_batch(sample_batch)
    assert plan.class_names == ["book", "bottle", "can", "mug"]
    assert {(s.path.name, s.class_name) for s in plan.sources} == {
        ("book.stl", "book"),
        ("bottle.obj", "bottle"),
        ("can.ply", "can"),
        ("can_textured.glb", "can"),
        ("mug_sam3d.glb", "mug"),
    }
    assert plan.errors == []  # .mtl/.png companions are skipped silently
    assert plan.triangle_budget == 50_000 and plan.up_axis == "auto" and plan.render_overrides == {}


def test_batch_yaml_overrides(sample_batch: Path, tmp_path: Path) -> None:
    batch = _copy_batch(sample_batch, tmp_path)
    (batch / "batch.yaml").write_text(
        "classes:\n  can: soda_can\n  can/can_textured.glb: tin\n"
        "triangle_budget: 1000\nup_axis: z\nscale: 2.0\nframes: 12\nrender:\n  width: 320\n  camera_fov_deg: [40, 40]\n"
    )
    plan = discover_batch(batch)
    assert plan.class_names == ["book", "bottle", "mug", "soda_can", "tin"]
    assert plan.render_overrides == {"frames": 12, "width": 320, "camera_fov_deg": [40, 40]}
    assert plan.triangle_budget == 1000 and plan.up_axis == "z" and plan.scale == 2.0
    meshes, errors = load_batch(plan, progress=False)
    assert errors == []
    by_name = {m.name: m for m in meshes}
    assert by_name["can_textured"].class_name == "tin"
    assert by_name["mug_sam3d"].triangles <= 1000 and by_name["mug_sam3d"].original_triangles > 1000
    # up_axis z for everything: the Y-up bottle OBJ stays tall along Y; scale doubles sizes.
    assert by_name["bottle"].bounds[1][1] == pytest.approx(0.48, abs=2e-3)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("colour: red\n", "unknown key 'colour'"),
        ("up_axis: x\n", "up_axis"),
        ("classes:\n  mug: 'cups/mug'\n", "classes['mug']: invalid class name 'cups/mug': it holds a path separator"),
        ("triangle_budget: lots\n", "triangle_budget"),
        ("[unclosed\n", "not valid yaml"),
        ("frames: 0\n", "frames must be a positive integer"),
        ("render:\n  frames: 5\n", "top level"),
        ("training: [epochs, 5]\n", "training must map hyperparameter names to values"),
        ("training:\n  epochs: 0\n", "epochs"),
        ("training:\n  epocs: 30\n", "epocs"),
    ],
)
def test_bad_batch_yaml_names_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "mug").mkdir()
    (tmp_path / "batch.yaml").write_text(text)
    with pytest.raises(BatchConfigError) as caught:
        discover_batch(tmp_path)
    # "<path of batch.yaml>: <reason>": the file is named in full, and the reason says what is wrong in it.
    where, _, reason = str(caught.value).partition(": ")
    assert where == str(tmp_path / "batch.yaml")
    assert fragment in reason.lower()


def test_bad_files_among_good_ones(sample_batch: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = _copy_batch(sample_batch, tmp_path)
    (batch / "mug" / "broken.glb").write_bytes(b"glTF\x02\x00\x00\x00garbage")
    (batch / "mug" / "notes.txt").write_text("not a mesh")
    (batch / "can" / "splat.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n0\n"
    )
    (batch / "loose.stl").write_bytes((batch / "book" / "book.stl").read_bytes())
    (batch / "mug" / ".DS_Store").write_bytes(b"\x00")
    before = {p: p.read_bytes() for p in batch.rglob("*") if p.is_file()}

    plan = discover_batch(batch)
    assert sorted(Path(e.path).name for e in plan.errors) == ["loose.stl", "notes.txt"]
    meshes, errors = load_batch(plan, progress=True)
    assert sorted(m.name for m in meshes) == ["book", "bottle", "can", "can_textured", "mug_sam3d"]
    assert sorted(Path(e.path).name for e in errors) == ["broken.glb", "loose.stl", "notes.txt", "splat.ply"]
    assert all(e.path in str(e) for e in errors)
    assert "loading meshes" in capsys.readouterr().err  # the tqdm bar
    assert {p: p.read_bytes() for p in batch.rglob("*") if p.is_file()} == before


def test_same_stem_in_one_class_gets_unique_names(sample_batch: Path, tmp_path: Path) -> None:
    batch = tmp_path / "b"
    (batch / "mug").mkdir(parents=True)
    shutil.copy(sample_batch / "mug" / "mug_sam3d.glb", batch / "mug" / "cup.glb")
    shutil.copy(sample_batch / "book" / "book.stl", batch / "mug" / "cup.stl")
    meshes, errors = load_batch(discover_batch(batch), progress=False)
    assert errors == [] and sorted(m.name for m in meshes) == ["cup_glb", "cup_stl"]
