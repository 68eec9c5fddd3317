"""USD assets: geometry, class label, material or displayColor, collision, and usd-core's own validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pxr import Usd, UsdGeom, UsdPhysics, UsdSemantics, UsdShade

from isaac_jobs.batch import discover_batch, load_batch
from isaac_jobs.mesh import Mesh, load_mesh
from isaac_jobs.usd_export import validate_usd, write_batch_usd, write_usd


@pytest.fixture(scope="module")
def written(sample_batch: Path, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Mesh, Path]]:
    meshes, errors = load_batch(discover_batch(sample_batch), progress=False)
    assert errors == []
    paths = write_batch_usd(meshes, tmp_path_factory.mktemp("assets"))
    return list(zip(meshes, paths, strict=True))


def _geom(stage: Usd.Stage) -> UsdGeom.Mesh:
    return UsdGeom.Mesh(stage.GetDefaultPrim().GetChild("geom"))


def test_every_sample_format_validates_without_errors(written: list[tuple[Mesh, Path]]) -> None:
    assert {mesh.extra["format"] for mesh, _ in written} == {"glb", "obj", "ply", "stl"}
    for _, path in written:
        assert validate_usd(path) == [], path


def test_stage_metadata_geometry_and_label(written: list[tuple[Mesh, Path]]) -> None:
    for mesh, path in written:
        assert path.name == f"{mesh.name}.usd" and path.parent.name == mesh.class_name
        stage = Usd.Stage.Open(str(path))
        assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
        assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
        root = stage.GetDefaultPrim()
        assert root.IsValid() and root.IsA(UsdGeom.Xform)
        labels = UsdSemantics.LabelsAPI(root, "class")
        assert root.HasAPI(UsdSemantics.LabelsAPI, "class")
        assert list(labels.GetLabelsAttr().Get()) == [mesh.class_name]
        assert list(root.GetAttribute("semantics:labels:class").Get()) == [mesh.class_name]
        geom = _geom(stage)
        np.testing.assert_allclose(np.asarray(geom.GetPointsAttr().Get()), mesh.positions, atol=1e-7)
        assert list(geom.GetFaceVertexIndicesAttr().Get()) == mesh.faces.ravel().tolist()
        assert set(geom.GetFaceVertexCountsAttr().Get()) == {3}
        assert len(geom.GetNormalsAttr().Get()) == len(mesh.positions)
        assert geom.GetNormalsInterpolation() == UsdGeom.Tokens.vertex
        prim = geom.GetPrim()
        assert prim.HasAPI(UsdPhysics.CollisionAPI) and prim.HasAPI(UsdPhysics.MeshCollisionAPI)
        assert UsdPhysics.MeshCollisionAPI(prim).GetApproximationAttr().Get() == "convexHull"
        assert root.GetCustomDataByKey("sim2cloud:sourceSha256") == mesh.source_sha256


def test_textured_mesh_binds_preview_surface_with_relative_texture(written: list[tuple[Mesh, Path]]) -> None:
    mesh, path = next((m, p) for m, p in written if m.name == "bottle")
    stage = Usd.Stage.Open(str(path))
    geom = _geom(stage)
    st = UsdGeom.PrimvarsAPI(geom.GetPrim()).GetPrimvar("st")
    assert st.GetInterpolation() == UsdGeom.Tokens.vertex
    np.testing.assert_allclose(np.asarray(st.Get()), mesh.uvs, atol=1e-7)
    material, _ = UsdShade.MaterialBindingAPI(geom.GetPrim()).ComputeBoundMaterial()
    surface = material.ComputeSurfaceSource()[0]
    assert surface.GetIdAttr().Get() == "UsdPreviewSurface"
    texture = UsdShade.Shader(surface.GetInput("diffuseColor").GetConnectedSources()[0][0].source.GetPrim())
    assert texture.GetIdAttr().Get() == "UsdUVTexture"
    asset = texture.GetInput("file").Get()
    assert asset.path == "./bottle_basecolor.png"
    assert Path(asset.resolvedPath) == path.with_name("bottle_basecolor.png") and Path(asset.resolvedPath).is_file()
    reader = UsdShade.Shader(texture.GetInput("st").GetConnectedSources()[0][0].source.GetPrim())
    assert reader.GetIdAttr().Get() == "UsdPrimvarReader_float2" and reader.GetInput("varname").Get() == "st"


def test_vertex_colours_become_display_color(written: list[tuple[Mesh, Path]]) -> None:
    mesh, path = next((m, p) for m, p in written if m.name == "mug_sam3d")
    stage = Usd.Stage.Open(str(path))  # keep the stage alive while its prims are used
    geom = _geom(stage)
    display = geom.GetDisplayColorPrimvar()
    assert display.GetInterpolation() == UsdGeom.Tokens.vertex
    np.testing.assert_allclose(np.asarray(display.Get()), mesh.colors, atol=1e-6)
    material, _ = UsdShade.MaterialBindingAPI(geom.GetPrim()).ComputeBoundMaterial()
    assert material  # a preview surface reading displayColor, so renderers without the primvar fallback agree


def test_usda_is_accepted(sample_batch: Path, tmp_path: Path) -> None:
    mesh = load_mesh(sample_batch / "book" / "book.stl", class_name="book")
    path = write_usd(mesh, tmp_path / "book.usda")
    assert path.read_text().startswith("#usda")
    assert validate_usd(path) == []
    with pytest.raises(ValueError, match="must end in"):
        write_usd(mesh, tmp_path / "book.obj")


def test_validation_reports_a_broken_stage(tmp_path: Path) -> None:
    path = tmp_path / "broken.usda"
    stage = Usd.Stage.CreateNew(str(path))  # no defaultPrim, no upAxis/metersPerUnit
    UsdGeom.Mesh.Define(stage, "/thing")
    stage.GetRootLayer().Save()
    errors = validate_usd(path)
    assert errors and all(str(path) in error for error in errors)
    assert any("defaultPrim" in error or "default prim" in error.lower() for error in errors), errors


def test_validation_reports_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.usd"
    path.write_bytes(b"\x00not usd at all")
    errors = validate_usd(path)
    assert len(errors) == 1 and "cannot open" in errors[0]
