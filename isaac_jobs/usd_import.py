"""USD -> the in-memory mesh: what a renderer needs from a USD file, read with usd-core (``pxr``).

Used twice: by ``mesh.load_mesh`` for user files (``.usd``/``.usda``/``.usdc``/``.usdz`` dropped into a
batch), and by the GL backend to read the USD assets the preparation step wrote (``usd_export.write_usd``).

What is read, for every ``UsdGeom.Mesh`` on the composed stage (instance proxies included; prims that are
invisible or whose purpose is ``guide``/``proxy`` are skipped):

* geometry: ``points``, ``faceVertexCounts``/``faceVertexIndices`` (polygons fan-triangulated, holes
  ignored), placed by the prim's world transform (a mirroring transform flips the winding);
* ``normals`` (or ``primvars:normals``) with vertex, faceVarying, uniform or constant interpolation;
* ``primvars:st`` (any texCoord2f primvar named ``st``/``st0``/``UVMap``, indexed or not);
* ``primvars:displayColor``;
* the bound material's ``UsdPreviewSurface`` ``diffuseColor``: a constant, a ``UsdUVTexture`` (its ``file``,
  also inside a ``.usdz`` package), or a ``UsdPrimvarReader_float3`` (the display colour).

Not honoured (the GL backend draws with a diffuse colour and its own lighting): metallic, roughness,
specularColor, emissiveColor, opacity and opacityThreshold, normal/occlusion/displacement maps, clearcoat,
the UsdUVTexture ``scale``/``bias``/``wrapS``/``wrapT`` inputs (repeat is assumed), UsdTransform2d, MDL or
other non-preview shaders (their prim's ``displayColor`` is used), subdivision (the cage is drawn),
GeomSubsets with different materials (the mesh's own binding wins), skinning and time samples other than
the default time.

Stage metadata: ``upAxis`` and ``metersPerUnit`` are returned for the caller to apply (``load_mesh`` turns
them into its up axis and scale). Semantic labels (``UsdSemantics.LabelsAPI`` instance ``class``, or the
older ``semantic:*:params:semanticData`` attributes) are read by :func:`read_class_labels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from sim2cloud import contract

USD_SUFFIXES: Final = contract.USD_MESH_EXTENSIONS
UV_PRIMVAR_NAMES: Final = ("st", "st0", "st_0", "UVMap", "uv", "map1")
"""texCoord primvar names tried in order (USD's convention is ``st``; DCC exporters write the others)."""
SEMANTICS_INSTANCE: Final = "class"


class UsdReadError(Exception):
    """The file cannot give a mesh; the message says why (no path: the caller adds it)."""


@dataclass
class UsdGeometry:
    """One file's meshes merged, in the file's own units and up axis (world transforms applied)."""

    positions: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64
    normals: np.ndarray | None
    uvs: np.ndarray | None
    colors: np.ndarray | None
    texture: np.ndarray | None
    base_color: tuple[float, float, float]
    up_axis: Literal["y", "z"]
    meters_per_unit: float
    mesh_prims: int


@dataclass
class _PrimGeometry:
    positions: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None
    uvs: np.ndarray | None
    colors: np.ndarray | None
    texture: np.ndarray | None
    base_color: tuple[float, float, float]


_DEFAULT_BASE_COLOR: Final = (0.7, 0.7, 0.7)


def open_stage(path: Path) -> Any:
    """The composed stage, or UsdReadError for an unreadable file or a composition error (missing reference)."""
    from pxr import Tf, Usd

    try:
        stage = Usd.Stage.Open(str(path), Usd.Stage.LoadAll)
    except Tf.ErrorException as exc:
        raise UsdReadError(f"cannot open as USD (corrupt or truncated?): {_tf_message(exc)}") from exc
    if stage is None:
        raise UsdReadError("cannot open as USD (corrupt or truncated?)")
    problems = [" ".join(str(error).split()) for error in stage.GetCompositionErrors()]
    if problems:
        raise UsdReadError("composition errors (a referenced or sublayered file is missing?): " + "; ".join(problems))
    return stage


def _tf_message(exc: Exception) -> str:
    """The first of usd-core's own messages in a Tf error (without the C++ function, file and line)."""
    import re

    text = " ".join(str(exc).split())
    messages = re.findall(r"at line \d+ in file \S+ : '(.*?)'(?= Error in |$)", text)
    return messages[0] if messages else text


def read_usd(path: Path) -> UsdGeometry:
    """Every renderable mesh of the file merged into one (see the module docstring for what is read)."""
    from pxr import Usd, UsdGeom

    stage = open_stage(path)
    up_axis: Literal["y", "z"] = "y" if str(UsdGeom.GetStageUpAxis(stage)).upper() == "Y" else "z"
    meters_per_unit = float(UsdGeom.GetStageMetersPerUnit(stage)) or 1.0
    cache = UsdGeom.XformCache(Usd.TimeCode.Default())
    parts: list[_PrimGeometry] = []
    for prim in Usd.PrimRange.Stage(stage, Usd.TraverseInstanceProxies()):
        if not prim.IsA(UsdGeom.Mesh):
            continue
        imageable = UsdGeom.Imageable(prim)
        if imageable.ComputeVisibility() == UsdGeom.Tokens.invisible:
            continue
        if imageable.ComputePurpose() in (UsdGeom.Tokens.guide, UsdGeom.Tokens.proxy):
            continue
        part = _read_mesh_prim(path, prim, np.array(cache.GetLocalToWorldTransform(prim), dtype=np.float64).T)
        if part is not None:
            parts.append(part)
    if not parts:
        raise UsdReadError("holds no UsdGeom.Mesh with triangles (an empty layer, or only cameras/lights/xforms?)")
    merged = _merge(parts)
    return UsdGeometry(
        positions=merged.positions,
        faces=merged.faces,
        normals=merged.normals,
        uvs=merged.uvs,
        colors=merged.colors,
        texture=merged.texture,
        base_color=merged.base_color,
        up_axis=up_axis,
        meters_per_unit=meters_per_unit,
        mesh_prims=len(parts),
    )


def read_class_labels(path: Path) -> list[str]:
    """Class labels the file carries: LabelsAPI ``class`` labels, else legacy ``semantic:*:params:semanticData``
    of type ``class``; from the default prim and its descendants, in traversal order, without duplicates."""
    from pxr import Usd

    stage = open_stage(path)
    root = stage.GetDefaultPrim() or stage.GetPseudoRoot()
    labels: list[str] = []
    for prim in Usd.PrimRange(root, Usd.TraverseInstanceProxies()):
        attribute = prim.GetAttribute(f"semantics:labels:{SEMANTICS_INSTANCE}")
        values = list(attribute.Get() or []) if attribute and attribute.HasAuthoredValue() else []
        for attribute in prim.GetAttributes():
            name = attribute.GetName()
            if name.startswith("semantic:") and name.endswith(":params:semanticType") and attribute.Get() == "class":
                data = prim.GetAttribute(name.replace("semanticType", "semanticData")).Get()
                if data:
                    values.append(str(data))
        for value in values:
            for label in str(value).split(","):
                if label.strip() and label.strip() not in labels:
                    labels.append(label.strip())
    return labels


def _primvar(prim: Any, names: tuple[str, ...]) -> Any | None:
    from pxr import UsdGeom

    api = UsdGeom.PrimvarsAPI(prim)
    for name in names:
        primvar = api.GetPrimvar(name)
        if primvar and primvar.HasAuthoredValue():
            return primvar
    return None


def _per_corner(
    values: np.ndarray | None, interpolation: str, indices: np.ndarray, face_of_corner: np.ndarray, points: int
) -> np.ndarray | None:
    """An attribute spread over the polygon corners, whatever its interpolation; None if its length is wrong."""
    if values is None or len(values) == 0:
        return None
    if interpolation == "constant":
        return np.broadcast_to(values[0], (len(indices), values.shape[1])).copy()
    if interpolation == "uniform":
        return values[face_of_corner] if len(values) > face_of_corner.max() else None
    if interpolation in ("vertex", "varying"):
        return values[indices] if len(values) >= points else None
    if interpolation == "faceVarying":
        return values if len(values) == len(indices) else None
    return None


def _read_mesh_prim(path: Path, prim: Any, world: np.ndarray) -> _PrimGeometry | None:
    from pxr import UsdGeom

    mesh = UsdGeom.Mesh(prim)
    points = np.asarray(mesh.GetPointsAttr().Get() or [], dtype=np.float64).reshape(-1, 3)
    counts = np.asarray(mesh.GetFaceVertexCountsAttr().Get() or [], dtype=np.int64)
    indices = np.asarray(mesh.GetFaceVertexIndicesAttr().Get() or [], dtype=np.int64)
    if len(points) == 0 or len(counts) == 0 or counts.sum() != len(indices):
        return None
    if indices.min() < 0 or indices.max() >= len(points):
        raise UsdReadError(f"{prim.GetPath()}: faceVertexIndices index points that do not exist")
    face_of_corner = np.repeat(np.arange(len(counts)), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # Fan triangulation: corner 0 with (k, k+1) for every polygon of 3 or more corners.
    polygons = counts >= 3
    fan_first = np.repeat(starts[polygons], counts[polygons] - 2)
    fan_offset = np.concatenate([np.arange(1, n - 1) for n in counts[polygons]]) if polygons.any() else np.zeros(0)
    fan_offset = fan_offset.astype(np.int64)
    triangles = np.stack([fan_first, fan_first + fan_offset, fan_first + fan_offset + 1], axis=1)
    if len(triangles) == 0:
        return None
    if str(mesh.GetOrientationAttr().Get()) == UsdGeom.Tokens.leftHanded:
        triangles = triangles[:, ::-1]

    normals = normals_interpolation = None
    normals_primvar = _primvar(prim, ("normals",))
    if normals_primvar is not None:
        normals = np.asarray(normals_primvar.ComputeFlattened(), dtype=np.float64).reshape(-1, 3)
        normals_interpolation = normals_primvar.GetInterpolation()
    elif mesh.GetNormalsAttr().HasAuthoredValue():
        normals = np.asarray(mesh.GetNormalsAttr().Get(), dtype=np.float64).reshape(-1, 3)
        normals_interpolation = mesh.GetNormalsInterpolation()
    uvs = uv_interpolation = None
    uv_primvar = _primvar(prim, UV_PRIMVAR_NAMES)
    if uv_primvar is not None:
        uvs = np.asarray(uv_primvar.ComputeFlattened(), dtype=np.float64).reshape(-1, 2)
        uv_interpolation = uv_primvar.GetInterpolation()
    colors = color_interpolation = None
    color_primvar = _primvar(prim, ("displayColor",))
    if color_primvar is not None:
        colors = np.asarray(color_primvar.ComputeFlattened(), dtype=np.float64).reshape(-1, 3)
        color_interpolation = color_primvar.GetInterpolation()

    diffuse, texture = _diffuse(path, prim)
    corner_normals = _per_corner(normals, str(normals_interpolation), indices, face_of_corner, len(points))
    corner_uvs = _per_corner(uvs, str(uv_interpolation), indices, face_of_corner, len(points))
    corner_colors = _per_corner(colors, str(color_interpolation), indices, face_of_corner, len(points))
    base_color = _DEFAULT_BASE_COLOR
    if diffuse == "primvar" or (diffuse is None and texture is None):
        # No preview surface (or one reading displayColor): the display colour is the object's colour.
        if corner_colors is not None and color_interpolation == "constant":
            base_color = (float(colors[0][0]), float(colors[0][1]), float(colors[0][2]))  # type: ignore[index]
            corner_colors = None
    else:
        corner_colors = None
        if isinstance(diffuse, tuple):
            base_color = diffuse
    if texture is not None and corner_uvs is None:
        base_color = tuple(float(c) for c in texture.reshape(-1, texture.shape[-1])[:, :3].mean(0) / 255.0)  # type: ignore[assignment]
        texture = None
    if texture is None:
        corner_uvs = None
    else:
        base_color = (1.0, 1.0, 1.0)  # the texture is the colour (as mesh.load_mesh sets for textured files)

    # Keep the points shared unless a per-corner attribute really differs between the corners of a point.
    per_corner = [a for a in (corner_normals, corner_uvs, corner_colors) if a is not None]
    shared = all(_same_per_point(a, indices, len(points)) for a in per_corner)
    if shared:

        def per_point(values: np.ndarray | None) -> np.ndarray | None:
            if values is None:
                return None
            out = np.zeros((len(points), values.shape[1]))
            out[indices] = values
            return out

        positions, faces = points, indices[triangles]
        normals_out, uvs_out, colors_out = per_point(corner_normals), per_point(corner_uvs), per_point(corner_colors)
    else:
        positions, faces = points[indices], triangles
        normals_out, uvs_out, colors_out = corner_normals, corner_uvs, corner_colors

    linear = world[:3, :3]
    positions = positions @ linear.T + world[:3, 3]
    if normals_out is not None:
        normals_out = normals_out @ np.linalg.inv(linear)
    if np.linalg.det(linear) < 0:
        faces = faces[:, ::-1]
    return _PrimGeometry(positions, faces, normals_out, uvs_out, colors_out, texture, base_color)


def _same_per_point(values: np.ndarray, indices: np.ndarray, points: int) -> bool:
    first = np.zeros((points, values.shape[1]))
    first[indices[::-1]] = values[::-1]  # the first corner of each point wins
    return bool(np.allclose(first[indices], values, atol=1e-6))


def _diffuse(path: Path, prim: Any) -> tuple[tuple[float, float, float] | str | None, np.ndarray | None]:
    """(constant colour | "primvar" | None, texture image) of the bound UsdPreviewSurface's diffuseColor."""
    from pxr import UsdShade

    material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
    if not material:
        return None, None
    surface = material.ComputeSurfaceSource()[0]
    if not surface or surface.GetIdAttr().Get() != "UsdPreviewSurface":
        return None, None
    diffuse = surface.GetInput("diffuseColor")
    if not diffuse:
        return None, None
    if diffuse.HasConnectedSource():
        source, _output, _kind = diffuse.GetConnectedSource()
        shader = UsdShade.Shader(source.GetPrim())
        shader_id = shader.GetIdAttr().Get()
        if shader_id == "UsdUVTexture":
            return None, _texture(path, shader)
        if str(shader_id).startswith("UsdPrimvarReader"):
            return "primvar", None
        return None, None
    value = diffuse.Get()
    if value is None:
        return None, None
    return (float(value[0]), float(value[1]), float(value[2])), None


def _texture(path: Path, shader: Any) -> np.ndarray | None:
    """The UsdUVTexture's image as (H, W, 3|4) uint8 (row 0 = top), or None if it cannot be read."""
    import io

    from PIL import Image, UnidentifiedImageError
    from pxr import Ar

    file_input = shader.GetInput("file")
    asset = file_input.Get() if file_input else None
    resolved = getattr(asset, "resolvedPath", "") if asset is not None else ""
    if not resolved:
        return None
    try:
        opened = Ar.GetResolver().OpenAsset(Ar.ResolvedPath(resolved))
        data = bytes(opened.GetBuffer()) if opened else b""
        if not data:
            return None
        with Image.open(io.BytesIO(data)) as image:
            mode = "RGBA" if "A" in image.getbands() else "RGB"
            return np.ascontiguousarray(np.asarray(image.convert(mode), dtype=np.uint8))
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def _merge(parts: list[_PrimGeometry]) -> _PrimGeometry:
    """One mesh from several prims. Differing looks become vertex colours (textures sampled at the vertices)."""
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0] + [len(p.positions) for p in parts])
    faces = np.concatenate([p.faces + offset for p, offset in zip(parts, offsets, strict=False)])
    positions = np.concatenate([p.positions for p in parts])
    normals = None
    if all(p.normals is not None for p in parts):
        normals = np.concatenate([p.normals for p in parts if p.normals is not None])
    plain = all(p.texture is None and p.colors is None for p in parts)
    if plain and len({p.base_color for p in parts}) == 1:
        return _PrimGeometry(positions, faces, normals, None, None, None, parts[0].base_color)
    colors = np.concatenate([_vertex_colors(p) for p in parts])
    return _PrimGeometry(positions, faces, normals, None, colors, None, _DEFAULT_BASE_COLOR)


def _vertex_colors(part: _PrimGeometry) -> np.ndarray:
    if part.colors is not None:
        return part.colors
    if part.texture is not None and part.uvs is not None:
        height, width = part.texture.shape[:2]
        u = np.mod(part.uvs[:, 0], 1.0)
        v = np.mod(part.uvs[:, 1], 1.0)
        cols = np.clip((u * width).astype(int), 0, width - 1)
        rows = np.clip(((1.0 - v) * height).astype(int), 0, height - 1)
        return part.texture[rows, cols, :3].astype(np.float64) / 255.0
    return np.tile(part.base_color, (len(part.positions), 1))
