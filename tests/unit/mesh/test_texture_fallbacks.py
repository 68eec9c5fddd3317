"""A texture named by an OBJ/MTL or a glTF that is not where it says: the DCC-style fallbacks and their messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from isaac_jobs.appearance import has_own_appearance
from isaac_jobs.mesh import load_mesh
from sim2cloud import contract
from sim2cloud.cli import main


def _bottle(sample_batch: Path, folder: Path, map_kd: str | None = None) -> Path:
    """The sample bottle OBJ + MTL copied into ``folder`` without its PNG; ``map_kd`` rewrites the MTL's texture."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("bottle.obj", "bottle.mtl"):
        shutil.copy(sample_batch / "bottle" / name, folder / name)
    if map_kd is not None:
        mtl = folder / "bottle.mtl"
        mtl.write_text(mtl.read_text().replace("map_Kd bottle.png", f"map_Kd {map_kd}"))
    return folder / "bottle.obj"


def _texture(sample_batch: Path) -> np.ndarray:
    return np.asarray(Image.open(sample_batch / "bottle" / "bottle.png").convert("RGB"))


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_texture_that_resolves_needs_no_note(sample_batch: Path) -> None:
    mesh = load_mesh(sample_batch / "bottle" / "bottle.obj", class_name="bottle")
    assert mesh.texture is not None and mesh.texture_notes == []


def test_same_file_name_under_the_mesh_folder(sample_batch: Path, tmp_path: Path) -> None:
    obj = _bottle(sample_batch, tmp_path / "bottle")
    (tmp_path / "bottle" / "textures" / "v2").mkdir(parents=True)
    shutil.copy(sample_batch / "bottle" / "bottle.png", tmp_path / "bottle" / "textures" / "bottle.png")
    Image.new("RGB", (4, 4), (255, 0, 255)).save(tmp_path / "bottle" / "textures" / "v2" / "bottle.png")
    before = _files(tmp_path)
    mesh = load_mesh(obj, class_name="bottle")
    assert mesh.texture is not None
    np.testing.assert_array_equal(mesh.texture[..., :3], _texture(sample_batch))  # the shallowest one
    assert len(mesh.texture_notes) == 1
    note = mesh.texture_notes[0]
    assert "'bottle.png'" in note and "textures/bottle.png" in note and "same file name" in note
    assert "2 files have that name" in note
    assert _files(tmp_path) == before  # nothing moved or written


def test_foreign_absolute_path_matches_by_file_name_ignoring_case(sample_batch: Path, tmp_path: Path) -> None:
    obj = _bottle(sample_batch, tmp_path / "bottle", map_kd=r"C:\Users\artist\maps\BOTTLE.PNG")
    (tmp_path / "bottle" / "maps").mkdir()
    shutil.copy(sample_batch / "bottle" / "bottle.png", tmp_path / "bottle" / "maps" / "bottle.png")
    mesh = load_mesh(obj, class_name="bottle")
    assert mesh.texture is not None
    np.testing.assert_array_equal(mesh.texture[..., :3], _texture(sample_batch))
    assert mesh.texture_notes == [
        r"texture 'C:\Users\artist\maps\BOTTLE.PNG' not found as written; used maps/bottle.png "
        "(the same file name under the mesh's folder)"
    ]


def test_the_only_image_beside_the_mesh(sample_batch: Path, tmp_path: Path) -> None:
    obj = _bottle(sample_batch, tmp_path / "bottle", map_kd="label_final_v3.png")
    shutil.copy(sample_batch / "bottle" / "bottle.png", tmp_path / "bottle" / "bottle_diffuse.jpg.png")
    mesh = load_mesh(obj, class_name="bottle")
    assert mesh.texture is not None
    np.testing.assert_array_equal(mesh.texture[..., :3], _texture(sample_batch))
    assert mesh.texture_notes == [
        "texture 'label_final_v3.png' not found as written; used bottle_diffuse.jpg.png "
        "(the only image beside the mesh)"
    ]


@pytest.mark.parametrize("images_beside", [0, 2])
def test_still_missing_is_reported_and_the_mesh_loads_untextured(
    sample_batch: Path, tmp_path: Path, images_beside: int
) -> None:
    folder = tmp_path / "bottle"
    obj = _bottle(sample_batch, folder, map_kd="label.png")
    for number in range(images_beside):
        Image.new("RGB", (4, 4), (number, 0, 0)).save(folder / f"other_{number}.png")
    mesh = load_mesh(obj, class_name="bottle")
    assert mesh.texture is None and mesh.uvs is not None  # geometry and UVs are kept
    described = f"{images_beside} images" if images_beside else "no image"
    assert mesh.texture_notes == [
        f"texture 'label.png' is missing: no file named 'label.png' under {folder} and {described} beside the "
        "mesh; it renders without that texture"
    ]


def test_gltf_image_uri_outside_the_folder_and_url_encoded(tmp_path: Path) -> None:
    box = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    red = Image.new("RGB", (8, 8), (200, 10, 10))
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=red)
    box.visual = trimesh.visual.TextureVisuals(
        uv=np.random.default_rng(0).random((len(box.vertices), 2)), material=material
    )
    folder = tmp_path / "crate"
    (folder / "textures").mkdir(parents=True)
    files = box.export(file_type="gltf")
    tree = json.loads(files.pop("model.gltf"))
    tree["images"] = [{"uri": "../../shared/red%20paint.png"}]  # escapes the folder: never read from there
    (folder / "crate.gltf").write_text(json.dumps(tree))
    for name, data in files.items():
        (folder / name).write_bytes(data)
    red.save(folder / "textures" / "red paint.png")
    mesh = load_mesh(folder / "crate.gltf", class_name="crate")
    assert mesh.texture is not None and tuple(mesh.texture[0, 0, :3]) == (200, 10, 10)
    assert mesh.texture_notes == [
        "texture '../../shared/red%20paint.png' not found as written; used textures/red paint.png "
        "(the same file name under the mesh's folder)"
    ]


def test_render_prints_each_note_and_the_manifest_records_it(sample_batch: Path, tmp_path: Path, capsys) -> None:
    batch = tmp_path / "meshes"
    obj = _bottle(sample_batch, batch / "bottle", map_kd="C:/work/bottle.png")
    (batch / "bottle" / "textures").mkdir()
    shutil.copy(sample_batch / "bottle" / "bottle.png", batch / "bottle" / "textures" / "bottle.png")
    (batch / "can").mkdir()
    shutil.copy(sample_batch / "can" / "can.ply", batch / "can" / "can.ply")
    out = tmp_path / "dataset"
    small = ["--set", "width=96", "--set", "height=64", "--no-progress"]
    assert main(["render", "--meshes", str(batch), "--out", str(out), "--frames", "2", *small]) == 0
    err = capsys.readouterr().err
    assert f"mesh texture: {obj}: texture 'C:/work/bottle.png' not found as written; used textures/bottle.png" in err
    records = json.loads((out / contract.DATASET_MANIFEST_NAME).read_text())["source_meshes"]
    notes = {Path(r["path"]).name: r["texture_notes"] for r in records}
    assert notes["can.ply"] == []
    assert len(notes["bottle.obj"]) == 1 and "textures/bottle.png" in notes["bottle.obj"][0]


def test_a_texture_still_missing_leaves_a_mesh_without_a_look_of_its_own(sample_batch: Path, tmp_path: Path) -> None:
    """The renderer gives such a mesh a random look (appearance.has_own_appearance is the one rule)."""
    assert not has_own_appearance(load_mesh(sample_batch / "book" / "book.stl", class_name="book"))
    assert has_own_appearance(load_mesh(sample_batch / "mug" / "mug_sam3d.glb", class_name="mug"))
    assert has_own_appearance(load_mesh(sample_batch / "bottle" / "bottle.obj", class_name="bottle"))
    obj = (sample_batch / "bottle" / "bottle.obj").read_text()
    mtl = (sample_batch / "bottle" / "bottle.mtl").read_text()
    (tmp_path / "lost").mkdir()
    (tmp_path / "lost" / "bottle.obj").write_text(obj)
    (tmp_path / "lost" / "bottle.mtl").write_text(mtl)  # names bottle.png, which is nowhere
    lost = load_mesh(tmp_path / "lost" / "bottle.obj", class_name="bottle")
    assert lost.texture is None and not has_own_appearance(lost) and lost.texture_notes
