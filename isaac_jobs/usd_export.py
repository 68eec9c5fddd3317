"""Mesh -> one self-contained USD asset per mesh, as Isaac Sim Replicator consumes it.

Layout of an asset written by ``write_usd(mesh, out_dir / "mug_01.usd")``::

    /mug_01                 Xform, defaultPrim, kind=component,
                            UsdSemantics.LabelsAPI:class  (semantics:labels:class = ["mug"])
        /geom               Mesh: points, faceVertexCounts/Indices, normals (vertex),
                            primvars:st (vertex) or primvars:displayColor (vertex / constant),
                            UsdPhysics CollisionAPI + MeshCollisionAPI (approximation convexHull),
                            material:binding -> /mug_01/Looks/material
        /Looks/material     UsdPreviewSurface (roughness, metallic: the class look's, if batch.yaml gives
                            one, also kept whole in customData "sim2cloud:look"); diffuseColor from a
                            UsdUVTexture (file = ./mug_01_basecolor.png, st from UsdPrimvarReader_float2
                            "st") or from a UsdPrimvarReader_float3 of displayColor

Stage metadata: upAxis Z, metersPerUnit 1, kilogramsPerUnit 1. The extension picks the encoding
(``.usd`` is written as binary crate, ``.usdc`` likewise, ``.usda`` as text for reading by eye);
the pipeline writes ``.usd`` (contract.asset_key). The texture is written beside the asset and
referenced relatively, so the folder can be copied or uploaded as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from isaac_jobs.appearance import LOOK_CUSTOM_DATA_KEY, Look, range_center
from isaac_jobs.mesh import Mesh

SEMANTICS_INSTANCE: Final = "class"
"""LabelsAPI instance name Isaac Sim 5 reads for bounding-box annotators (``semantics:labels:class``)."""
COLLISION_APPROXIMATION: Final = "convexHull"
"""UsdPhysics.MeshCollisionAPI approximation: cheap, stable for tabletop objects dropped by physics."""
USD_EXTENSIONS: Final = (".usd", ".usda", ".usdc")
DEFAULT_ROUGHNESS: Final = 0.6
"""UsdPreviewSurface roughness of an asset without a class look."""
TEXTURE_SUFFIX: Final = "_basecolor.png"
"""The base-colour texture of ``<stem>.usd`` is written as ``<stem>_basecolor.png`` beside it."""


def write_usd(mesh: Mesh, out_path: Path, look: Look | None = None) -> Path:
    """Write ``mesh`` as a USD asset at ``out_path`` (parent folders created); returns the path.

    ``look`` (the class look from batch.yaml, already applied to the mesh by ``appearance.apply_look``) sets the
    material's roughness and metallic to its ranges' centres and is recorded whole in the material prim's
    customData (``appearance.LOOK_CUSTOM_DATA_KEY``), so the asset says what its class looks like."""
    from pxr import Gf, Kind, Sdf, Tf, Usd, UsdGeom, UsdPhysics, UsdSemantics, UsdShade, Vt

    out_path = Path(out_path)
    if out_path.suffix.lower() not in USD_EXTENSIONS:
        raise ValueError(f"{out_path}: USD asset path must end in one of {', '.join(USD_EXTENSIONS)}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.exists():
        out_path.unlink()  # our own output from an earlier run: CreateNew refuses to overwrite
    stage = Usd.Stage.CreateNew(str(out_path))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)

    root_path = Sdf.Path.absoluteRootPath.AppendChild(Tf.MakeValidIdentifier(mesh.name or "mesh"))
    root = UsdGeom.Xform.Define(stage, root_path)
    stage.SetDefaultPrim(root.GetPrim())
    Usd.ModelAPI(root.GetPrim()).SetKind(Kind.Tokens.component)
    labels = UsdSemantics.LabelsAPI.Apply(root.GetPrim(), SEMANTICS_INSTANCE)
    labels.CreateLabelsAttr().Set(Vt.TokenArray([mesh.class_name]))
    root.GetPrim().SetCustomDataByKey("sim2cloud:source", str(mesh.source.name))
    root.GetPrim().SetCustomDataByKey("sim2cloud:sourceSha256", mesh.source_sha256)
    root.GetPrim().SetCustomDataByKey("sim2cloud:sourceBytes", int(mesh.source_bytes))
    root.GetPrim().SetCustomDataByKey("sim2cloud:originalTriangles", int(mesh.original_triangles))

    geom = UsdGeom.Mesh.Define(stage, root_path.AppendChild("geom"))
    positions = np.asarray(mesh.positions, dtype=np.float32)
    geom.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(positions))
    geom.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(mesh.triangles, 3, dtype=np.int32)))
    geom.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.asarray(mesh.faces, dtype=np.int32).ravel()))
    geom.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(np.asarray(mesh.normals, dtype=np.float32)))
    geom.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    geom.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)  # polygonal asset: render the triangles as given
    geom.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
    low, high = positions.min(axis=0), positions.max(axis=0)
    geom.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, low)), Gf.Vec3f(*map(float, high))]))

    primvars = UsdGeom.PrimvarsAPI(geom.GetPrim())
    textured = mesh.uvs is not None and mesh.texture is not None
    if mesh.uvs is not None:
        st = primvars.CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex)
        st.Set(Vt.Vec2fArray.FromNumpy(np.asarray(mesh.uvs, dtype=np.float32)))
    display_color = geom.CreateDisplayColorPrimvar(
        UsdGeom.Tokens.vertex if mesh.colors is not None else UsdGeom.Tokens.constant
    )
    if mesh.colors is not None:
        display_color.Set(Vt.Vec3fArray.FromNumpy(np.asarray(mesh.colors, dtype=np.float32)))
    else:
        display_color.Set(Vt.Vec3fArray([Gf.Vec3f(*mesh.base_color)]))

    UsdPhysics.CollisionAPI.Apply(geom.GetPrim())
    UsdPhysics.MeshCollisionAPI.Apply(geom.GetPrim()).CreateApproximationAttr(COLLISION_APPROXIMATION)

    material = _define_material(
        stage, root_path.AppendChild("Looks").AppendChild("material"), mesh, out_path, textured, look
    )
    UsdShade.MaterialBindingAPI.Apply(geom.GetPrim()).Bind(material)
    stage.GetRootLayer().Save()
    return out_path


def _define_material(stage: Any, path: Any, mesh: Mesh, out_path: Path, textured: bool, look: Look | None) -> Any:
    from pxr import Gf, Sdf, UsdGeom, UsdShade

    UsdGeom.Scope.Define(stage, path.GetParentPath())
    material = UsdShade.Material.Define(stage, path)
    surface = UsdShade.Shader.Define(stage, path.AppendChild("surface"))
    surface.CreateIdAttr("UsdPreviewSurface")
    roughness = range_center(look.roughness if look else None, DEFAULT_ROUGHNESS)
    surface.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(roughness)
    surface.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(range_center(look.metallic if look else None, 0.0))
    if look is not None:
        material.GetPrim().SetCustomDataByKey(LOOK_CUSTOM_DATA_KEY, look.to_json())
    diffuse = surface.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f)
    material.CreateSurfaceOutput().ConnectToSource(surface.ConnectableAPI(), "surface")

    if textured:
        assert mesh.texture is not None
        texture_path = out_path.with_name(out_path.stem + TEXTURE_SUFFIX)
        _write_png(texture_path, mesh.texture)
        st_reader = UsdShade.Shader.Define(stage, path.AppendChild("st_reader"))
        st_reader.CreateIdAttr("UsdPrimvarReader_float2")
        st_reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("st")
        st_reader.CreateOutput("result", Sdf.ValueTypeNames.Float2)
        image = UsdShade.Shader.Define(stage, path.AppendChild("base_color_texture"))
        image.CreateIdAttr("UsdUVTexture")
        image.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(Sdf.AssetPath(f"./{texture_path.name}"))
        image.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
        image.CreateInput("wrapS", Sdf.ValueTypeNames.Token).Set("repeat")
        image.CreateInput("wrapT", Sdf.ValueTypeNames.Token).Set("repeat")
        image.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(st_reader.ConnectableAPI(), "result")
        image.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
        diffuse.ConnectToSource(image.ConnectableAPI(), "rgb")
    elif mesh.colors is not None:
        color_reader = UsdShade.Shader.Define(stage, path.AppendChild("display_color_reader"))
        color_reader.CreateIdAttr("UsdPrimvarReader_float3")
        color_reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("displayColor")
        color_reader.CreateOutput("result", Sdf.ValueTypeNames.Float3)
        diffuse.ConnectToSource(color_reader.ConnectableAPI(), "result")
    else:
        diffuse.Set(Gf.Vec3f(*mesh.base_color))
    return material


def _write_png(path: Path, texture: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(texture, dtype=np.uint8)).save(path, format="PNG")


def asset_path(out_dir: Path, mesh: Mesh) -> Path:
    """Where the batch writer puts a mesh: ``<out_dir>/<class>/<name>.usd`` (contract.asset_key's tail)."""
    return Path(out_dir) / mesh.class_name / f"{mesh.name}.usd"


def write_batch_usd(meshes: Sequence[Mesh], out_dir: Path) -> list[Path]:
    """Write every mesh to ``asset_path(out_dir, mesh)``; returns the paths in input order."""
    return [write_usd(mesh, asset_path(out_dir, mesh)) for mesh in meshes]


def validate_usd(path: Path) -> list[str]:
    """Run every validator usd-core registers (UsdValidation) over the asset; return the error messages.

    Warnings are not errors (``include_warnings`` of ``validation_report`` shows them). [] means valid.
    """
    return [message for severity, message in validation_report(path) if severity == "Error"]


def validation_report(path: Path, *, include_warnings: bool = True) -> list[tuple[str, str]]:
    """(severity, message) for every problem usd-core's validators find; a stage that will not open is one error."""
    from pxr import Tf, Usd, UsdValidation

    path = Path(path)
    try:
        stage = Usd.Stage.Open(str(path))
    except Tf.ErrorException as exc:
        return [("Error", f"{path}: cannot open as USD: {str(exc).strip()}")]
    if stage is None:
        return [("Error", f"{path}: cannot open as USD")]
    registry = UsdValidation.ValidationRegistry()
    context = UsdValidation.ValidationContext(registry.GetOrLoadAllValidators())
    wanted = {UsdValidation.ValidationErrorType.Error}
    if include_warnings:
        wanted.add(UsdValidation.ValidationErrorType.Warn)
    report: list[tuple[str, str]] = []
    for error in context.Validate(stage):
        if error.GetType() not in wanted:
            continue
        sites = ", ".join(str(site.GetPrim().GetPath()) for site in error.GetSites() if site.IsPrim())
        where = f" at {sites}" if sites else ""
        report.append((error.GetType().displayName, f"{path}{where}: [{error.GetName()}] {error.GetMessage()}"))
    return report
