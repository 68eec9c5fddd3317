"""USD files as input: up axis and metersPerUnit respected, textures inside .usdz, semantic labels on request,
and a clear per-file error for each kind of broken USD while the rest of the batch renders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from isaac_jobs.batch import discover_batch
from isaac_jobs.mesh import Mesh, MeshError, load_mesh
from isaac_jobs.usd_export import write_usd
from sim2cloud import contract
from sim2cloud.cli import main

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "samples" / "meshes"


def write_y_up_centimetres(mesh: Mesh, path: Path, *, label: str | None = None) -> Path:
    """The mesh as a Y-up layer in centimetres (what many DCC tools write), vertex colours as displayColor."""
    from pxr import Sdf, Usd, UsdGeom, UsdSemantics, Vt

    stage = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 0.01)
    root = UsdGeom.Xform.Define(stage, "/thing")
    stage.SetDefaultPrim(root.GetPrim())
    if label:
        UsdSemantics.LabelsAPI.Apply(root.GetPrim(), "class").CreateLabelsAttr().Set(Vt.TokenArray([label]))
    geom = UsdGeom.Mesh.Define(stage, "/thing/geom")
    # Z-up metres (x, y, z) -> Y-up centimetres (x, z, -y) * 100.
    points = np.stack([mesh.positions[:, 0], mesh.positions[:, 2], -mesh.positions[:, 1]], axis=1) * 100.0
    geom.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(points.astype(np.float32)))
    geom.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(mesh.triangles, 3, np.int32)))
    geom.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(mesh.faces.astype(np.int32).ravel()))
    if mesh.colors is not None:
        colors = UsdGeom.PrimvarsAPI(geom).CreatePrimvar(
            "displayColor", Sdf.ValueTypeNames.Color3fArray, UsdGeom.Tokens.vertex
        )
        colors.Set(Vt.Vec3fArray.FromNumpy(mesh.colors.astype(np.float32)))
    stage.GetRootLayer().Save()
    return path


def usdz_of(usd: Path, out: Path) -> Path:
    from pxr import Sdf, UsdUtils

    assert UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(usd)), str(out))
    return out


@pytest.fixture(scope="module")
def mug() -> Mesh:
    return load_mesh(SAMPLES / "mug" / "mug_sam3d.glb", class_name="mug")


@pytest.fixture(scope="module")
def bottle() -> Mesh:
    return load_mesh(SAMPLES / "bottle" / "bottle.obj", class_name="bottle")


def test_up_axis_and_meters_per_unit_are_respected(tmp_path: Path, mug: Mesh) -> None:
    loaded = load_mesh(write_y_up_centimetres(mug, tmp_path / "mug.usda"), class_name="mug")
    assert loaded.extra["up_axis"] == "y"
    np.testing.assert_allclose(loaded.positions, mug.positions, atol=1e-6)  # back to Z-up metres
    np.testing.assert_allclose(loaded.colors, mug.colors, atol=1e-6)
    assert loaded.triangles == mug.triangles


def test_a_usdz_package_keeps_its_texture(tmp_path: Path, bottle: Mesh) -> None:
    assert bottle.texture is not None
    package = usdz_of(write_usd(bottle, tmp_path / "bottle.usdc"), tmp_path / "bottle.usdz")
    (tmp_path / "bottle.usdc").unlink()
    (tmp_path / "bottle_basecolor.png").unlink()  # only the package is left: the texture comes from inside it
    loaded = load_mesh(package, class_name="bottle")
    assert loaded.texture is not None
    np.testing.assert_array_equal(loaded.texture[..., :3], bottle.texture[..., :3])
    np.testing.assert_allclose(loaded.uvs, bottle.uvs, atol=1e-6)
    np.testing.assert_allclose(loaded.positions, bottle.positions, atol=1e-6)


def test_usd_labels_name_the_class_when_batch_yaml_says_so(tmp_path: Path, mug: Mesh) -> None:
    batch = tmp_path / "batch"
    (batch / "misc").mkdir(parents=True)
    write_y_up_centimetres(mug, batch / "misc" / "thing.usda", label="cup")
    assert discover_batch(batch).sources[0].class_name == "misc"  # by default the folder names the class
    (batch / contract.BATCH_CONFIG_NAME).write_text("usd_labels: true\n")
    plan = discover_batch(batch)
    assert [s.class_name for s in plan.sources] == ["cup"] and plan.class_names == ["cup"]
    (batch / contract.BATCH_CONFIG_NAME).write_text("usd_labels: yes please\n")
    with pytest.raises(MeshError, match="usd_labels must be true or false"):
        discover_batch(batch)


def bad_usd_files(folder: Path, mug: Mesh) -> dict[str, str]:
    """Broken USD inputs -> the words their per-file error must contain."""
    crate = write_usd(mug, folder / "truncated.usdc")
    crate.write_bytes(crate.read_bytes()[: crate.stat().st_size // 2])
    (folder / "truncated_basecolor.png").unlink(missing_ok=True)
    (folder / "no_mesh.usda").write_text('#usda 1.0\n(\n    defaultPrim = "empty"\n)\n\ndef Xform "empty"\n{\n}\n')
    (folder / "dangling.usda").write_text(
        '#usda 1.0\n(\n    defaultPrim = "thing"\n)\n\n'
        'def Xform "thing" (\n    references = @./not_there.usd@\n)\n{\n}\n'
    )
    return {
        "truncated.usdc": "cannot open as USD",
        "no_mesh.usda": "no UsdGeom.Mesh",
        "dangling.usda": "not_there.usd",
    }


def test_each_broken_usd_gets_a_clear_error(tmp_path: Path, mug: Mesh) -> None:
    for name, words in bad_usd_files(tmp_path, mug).items():
        with pytest.raises(MeshError) as raised:
            load_mesh(tmp_path / name, class_name="mug")
        assert name in str(raised.value) and words in str(raised.value)


def test_broken_usd_files_are_skipped_and_the_rest_renders(tmp_path: Path, mug: Mesh) -> None:
    batch = tmp_path / "meshes"
    (batch / "mug").mkdir(parents=True)
    shutil.copy(SAMPLES / "mug" / "mug_sam3d.glb", batch / "mug")
    write_y_up_centimetres(mug, batch / "mug" / "mug_cm.usda")
    expected = bad_usd_files(batch / "mug", mug)
    out = tmp_path / "dataset"
    args = ["render", "--meshes", str(batch), "--out", str(out), "--frames", "3", "--no-progress"]
    assert main([*args, "--set", "width=64", "--set", "height=64"]) == 0
    manifest = json.loads((out / contract.DATASET_MANIFEST_NAME).read_text())
    errors = {Path(e["path"]).name: e["reason"] for e in manifest["mesh_errors"]}
    assert set(errors) == set(expected)
    for name, words in expected.items():
        assert words in errors[name], errors[name]
    assert sorted(a["path"] for a in manifest["assets"]["files"]) == ["mug/mug_cm.usd", "mug/mug_sam3d.usd"]
    assert manifest["totals"]["images"] == 3
