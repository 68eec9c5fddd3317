"""In-memory mesh shared by the USD exporter and the renderers, and the loaders that build it.

Every loader returns a ``Mesh`` in metres, Z-up, with per-vertex normals, triangles only; the USD
exporter and both render backends rely on exactly the fields of that dataclass.

Conventions ``load_mesh`` applies (README-level facts, keep in sync with samples/README.md):

* Up axis. glTF/GLB is Y-up by its specification, and so is what most DCC tools (Blender, Maya) write
  into OBJ, so both are rotated from Y-up to Z-up. STL (CAD, 3D printing) and PLY (scanners, ROS,
  Open3D) are taken as Z-up already. ``up_axis="y"`` or ``"z"`` (batch.yaml ``up_axis``) overrides the
  per-format default for every file of a batch. Y-up -> Z-up is +90 degrees about X: (x, y, z) -> (x, -z, y).
  USD files (.usd/.usda/.usdc/.usdz, read by ``isaac_jobs.usd_import``) carry their own ``upAxis``, which
  ``auto`` follows, and their ``metersPerUnit``, which multiplies ``scale``.
* Units. glTF is metres by its specification; OBJ, PLY and STL carry no unit and are taken as metres.
  ``scale`` (batch.yaml ``scale``, e.g. 0.001 for millimetre CAD files) multiplies every position.
  Geometry keeps its authored origin (no re-centring): placing objects is the renderer's job.
* Normals. Authored vertex normals are kept (rotated like the positions, re-normalized); a file
  without them gets area-weighted vertex normals, and STL (a triangle soup) is welded and smooth-shaded
  with creases kept at 30 degrees so boxes stay boxes and cylinders look round.
* Budget. A mesh over ``triangle_budget`` is decimated (quadric edge collapse through the
  ``fast-simplification`` package when installed, else pure-numpy vertex clustering); vertex colours and
  UVs follow the nearest original vertex. A mesh over ``max_triangles`` (default 20 x budget) is refused:
  it is almost certainly a wrong file (a scan export, a unit mix-up) and would cost minutes per shard.
* Textures that do not resolve. An OBJ's MTL (``map_Kd``) or a glTF (an image ``uri``) may name a texture
  that is not where it says (a path from the author's machine, a renamed folder). As DCC tools do, the
  loader then takes the same file name (case-insensitive) anywhere under the mesh's folder (the shallowest,
  then the first in sorted order), else the only image beside the mesh. Each fallback, and each texture
  still missing (the mesh renders without it), is one line of ``Mesh.texture_notes``, which the render
  command prints and the manifest records per file.
* Input files are only ever read (once, into memory: the hash recorded is of the bytes parsed).
"""

from __future__ import annotations

import hashlib
import io
import struct
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, Final, Literal

import numpy as np

from isaac_jobs.usd_import import USD_SUFFIXES
from sim2cloud import contract


class MeshError(Exception):
    """A per-file problem the user must fix; ``str(err)`` names the file and what is wrong."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class Mesh:
    name: str
    """Stem of the source file, unique within its class."""
    class_name: str
    source: Path
    positions: np.ndarray
    """(V, 3) float32, metres, Z-up."""
    faces: np.ndarray
    """(F, 3) int32 triangle indices into positions."""
    normals: np.ndarray
    """(V, 3) float32 unit vertex normals."""
    uvs: np.ndarray | None = None
    """(V, 2) float32 texture coordinates (OpenGL convention: v=0 at the bottom of the image)."""
    colors: np.ndarray | None = None
    """(V, 3) float32 linear-ish vertex colours in [0, 1]."""
    texture: np.ndarray | None = None
    """(H, W, 3|4) uint8 base-colour image, row 0 = top of the image."""
    base_color: tuple[float, float, float] = (0.7, 0.7, 0.7)
    material_color: bool = False
    """``base_color`` is a flat colour the file's material gives (False: the loader's default grey)."""
    source_sha256: str = ""
    source_bytes: int = 0
    original_triangles: int = 0
    """Triangle count before decimation to the budget."""
    extra: dict[str, str] = field(default_factory=dict)
    texture_notes: list[str] = field(default_factory=list)
    """One line per texture the file names that was not found as written: the fallback used, or still missing."""

    @property
    def triangles(self) -> int:
        return int(self.faces.shape[0])

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.positions.min(axis=0), self.positions.max(axis=0)


UpAxis = Literal["auto", "y", "z"]

DEFAULT_TRIANGLE_BUDGET: Final = 50_000
"""Triangles a mesh keeps after decimation: enough for a hand-held object filling a 640 px frame."""
MAX_TRIANGLES_FACTOR: Final = 20
"""``max_triangles`` defaults to this many budgets; beyond it a file is refused rather than decimated."""
FORMAT_UP_AXIS: Final[dict[str, Literal["y", "z"]]] = {".glb": "y", ".gltf": "y", ".obj": "y", ".ply": "z", ".stl": "z"}
"""What ``up_axis="auto"`` means per extension (see the module docstring for why)."""
STL_CREASE_DEGREES: Final = 30.0
"""Edges sharper than this keep split normals when an STL soup is smooth-shaded."""
LARGE_EXTENT_METRES: Final = 10.0
"""A hand-held object larger than this was probably authored in millimetres or centimetres: warn in extra."""

_SPLAT_PLY_PROPERTIES: Final = ("f_dc_0", "opacity", "scale_0", "rot_0")
"""Per-vertex properties of a 3D Gaussian splat PLY (as SAM 3D Objects and 3DGS write them)."""
_Y_UP_TO_Z_UP: Final = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""Row-vector rotation: ``p @ R.T`` maps (x, y, z) to (x, -z, y)."""


def default_max_triangles(triangle_budget: int) -> int:
    return triangle_budget * MAX_TRIANGLES_FACTOR


def resolve_up_axis(path: Path, up_axis: UpAxis) -> Literal["y", "z"]:
    """The up axis a file is read with: the override, or the per-format default."""
    if up_axis == "auto":
        return FORMAT_UP_AXIS[path.suffix.lower()]
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'auto', 'y' or 'z', not {up_axis!r}")
    return up_axis


def load_mesh(
    path: Path,
    *,
    class_name: str,
    triangle_budget: int = DEFAULT_TRIANGLE_BUDGET,
    max_triangles: int | None = None,
    up_axis: UpAxis = "auto",
    scale: float = 1.0,
) -> Mesh:
    """Read one GLB/glTF/OBJ/PLY/STL file into a ``Mesh`` (metres, Z-up, within the triangle budget).

    Raises MeshError naming the file and the problem for anything that cannot become a usable mesh.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in contract.SUPPORTED_MESH_EXTENSIONS:
        supported = ", ".join(contract.SUPPORTED_MESH_EXTENSIONS)
        raise MeshError(path, f"unsupported extension {suffix or '(none)'!r}; supported: {supported}")
    if triangle_budget < 4:
        raise ValueError(f"triangle_budget must be at least 4, not {triangle_budget}")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, not {scale}")
    limit = default_max_triangles(triangle_budget) if max_triangles is None else max_triangles
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MeshError(path, f"cannot read file: {exc.strerror or exc}") from exc
    if not data:
        raise MeshError(path, "file is empty (0 bytes)")

    if suffix == ".stl":
        _check_stl_header(path, data, limit)
    elif suffix == ".ply":
        _check_ply_header(path, data, limit)

    resolver = TextureResolver(path)
    if suffix in USD_SUFFIXES:
        # USD says its own up axis and unit (stage metadata); an explicit batch up_axis still wins.
        part, stage_axis, meters_per_unit = _usd_part(path, limit)
        axis = stage_axis if up_axis == "auto" else resolve_up_axis(path, up_axis)
        scale = scale * meters_per_unit
    else:
        axis = resolve_up_axis(path, up_axis)
        part = _flatten(path, _parse(path, data, suffix, resolver), limit)
    positions, faces = part.positions, part.faces
    if positions.size == 0 or faces.size == 0:
        raise MeshError(path, "empty mesh: no vertices or no triangles")
    bad_vertices = int((~np.isfinite(positions)).any(axis=1).sum())
    if bad_vertices:
        raise MeshError(path, f"{bad_vertices} of {len(positions)} vertices have non-finite (NaN/inf) coordinates")
    if faces.min() < 0 or faces.max() >= len(positions):
        raise MeshError(path, "faces index vertices that do not exist (corrupt or truncated file)")
    original_triangles = len(faces)

    rotation = _Y_UP_TO_Z_UP if axis == "y" else np.eye(3)
    positions = positions @ rotation.T * scale
    normals = part.normals @ rotation.T if part.normals is not None else None

    faces = _drop_degenerate(positions, faces)
    if len(faces) == 0:
        raise MeshError(path, "empty mesh: every triangle has zero area")
    positions, faces, normals, uvs, colors = _compact(positions, faces, normals, part.uvs, part.colors)

    extra: dict[str, str] = {"format": suffix.lstrip("."), "up_axis": axis}
    if len(faces) > triangle_budget:
        positions, faces, uvs, colors, method = decimate(positions, faces, triangle_budget, uvs=uvs, colors=colors)
        normals = None
        extra["decimation"] = method
    if normals is None or suffix == ".stl":
        positions, faces, normals, uvs, colors = _shade(positions, faces, uvs, colors, weld=suffix == ".stl")
    normals = _unit_normals(positions, faces, normals)

    extent = float((positions.max(axis=0) - positions.min(axis=0)).max())
    if extent > LARGE_EXTENT_METRES:
        extra["warning"] = (
            f"largest extent is {extent:.1f} m; if the file is in millimetres set scale: 0.001 in "
            f"{contract.BATCH_CONFIG_NAME}"
        )

    return Mesh(
        name=path.stem,
        class_name=class_name,
        source=path,
        positions=np.ascontiguousarray(positions, dtype=np.float32),
        faces=np.ascontiguousarray(faces, dtype=np.int32),
        normals=np.ascontiguousarray(normals, dtype=np.float32),
        uvs=None if uvs is None else np.ascontiguousarray(uvs, dtype=np.float32),
        colors=None if colors is None else np.ascontiguousarray(np.clip(colors, 0.0, 1.0), dtype=np.float32),
        texture=part.texture,
        base_color=part.base_color,
        material_color=part.material_color and not resolver.missing,
        source_sha256=hashlib.sha256(data).hexdigest(),
        source_bytes=len(data),
        original_triangles=original_triangles,
        extra=extra,
        texture_notes=resolver.notes,
    )


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------
def _usd_part(path: Path, limit: int) -> tuple[_Part, Literal["y", "z"], float]:
    from isaac_jobs.usd_import import UsdReadError, read_usd

    try:
        geometry = read_usd(path)
    except UsdReadError as exc:
        raise MeshError(path, str(exc)) from exc
    if len(geometry.faces) > limit:
        raise MeshError(path, _over_limit(len(geometry.faces), limit))
    part = _Part(
        geometry.positions,
        geometry.faces,
        geometry.normals,
        geometry.uvs,
        geometry.colors,
        geometry.texture,
        geometry.base_color,
    )
    return part, geometry.up_axis, geometry.meters_per_unit


def _check_stl_header(path: Path, data: bytes, limit: int) -> None:
    """Binary STL states its triangle count up front, so truncation and size are known before parsing."""
    if data[:5].lower() == b"solid" and b"facet" in data[:1024]:
        return  # ASCII STL: no count to check; the parser reports malformed text
    if len(data) < 84:
        raise MeshError(path, f"truncated binary STL: {len(data)} bytes, shorter than the 84-byte header")
    (count,) = struct.unpack_from("<I", data, 80)
    expected = 84 + 50 * count
    if count == 0:
        raise MeshError(path, "empty mesh: the STL declares 0 triangles")
    if len(data) < expected:
        raise MeshError(
            path, f"truncated binary STL: header declares {count} triangles ({expected} bytes), file has {len(data)}"
        )
    if count > limit:
        raise MeshError(path, _over_limit(count, limit))


def _ply_header(data: bytes) -> list[str] | None:
    end = data.find(b"end_header", 0, 65536)
    if not data.startswith(b"ply") or end < 0:
        return None
    return data[:end].decode("ascii", errors="replace").splitlines()


def _check_ply_header(path: Path, data: bytes, limit: int) -> None:
    """Name Gaussian splats and face-less point clouds before a parser turns them into a vague error."""
    header = _ply_header(data)
    if header is None:
        raise MeshError(path, "not a PLY file (no 'ply' magic / 'end_header'): corrupt or truncated")
    counts: dict[str, int] = {}
    properties: dict[str, list[str]] = {}
    element = ""
    for line in header:
        words = line.split()
        if len(words) >= 3 and words[0] == "element":
            element = words[1]
            counts[element] = int(words[2]) if words[2].isdigit() else 0
            properties[element] = []
        elif words[:1] == ["property"] and element:
            properties[element].append(words[-1])
    vertex_properties = set(properties.get("vertex", []))
    if counts.get("face", 0) == 0:
        if all(name in vertex_properties for name in _SPLAT_PLY_PROPERTIES):
            raise MeshError(
                path,
                "PLY has no faces: it is a Gaussian splat (f_dc/opacity/scale/rot per point), not a mesh; "
                "use the mesh export (e.g. SAM 3D's GLB) instead",
            )
        raise MeshError(path, f"PLY has no faces: a point cloud of {counts.get('vertex', 0)} points is not a mesh")
    if counts["face"] > limit:
        raise MeshError(path, _over_limit(counts["face"], limit))


def _over_limit(triangles: int, limit: int) -> str:
    return (
        f"{triangles} triangles is far over the limit of {limit} (max_triangles); "
        "decimate it before uploading or raise max_triangles in batch.yaml"
    )


IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".bmp", ".tga", ".tif", ".tiff", ".webp")
"""What counts as a texture image when a missing texture is looked for under the mesh's folder."""


class TextureResolver:
    """A mesh's companion files (read-only, through trimesh's file resolver), with the texture fallbacks.

    A texture name that does not resolve beside the mesh (trimesh already tries the bare file name there)
    becomes, in order: the same file name anywhere under the mesh's folder, else the only image beside the
    mesh. ``notes`` gets one line per texture name that needed a fallback or is still missing.
    """

    def __init__(self, mesh_path: Path) -> None:
        import trimesh

        self.mesh_path = Path(mesh_path)
        self._files = trimesh.resolvers.FilePathResolver(str(mesh_path))
        self.file_name = self._files.file_name  # the OBJ loader names the mesh after it
        self.notes: list[str] = []
        self.missing: list[str] = []
        """Texture names no fallback found."""
        self._answered: dict[str, bytes | None] = {}

    def __getitem__(self, name: str) -> bytes:
        return self.get(name)

    def keys(self) -> Any:
        return self._files.keys()

    def get(self, name: str) -> bytes:
        try:
            data: bytes = self._files.get(name)
            return data
        except (FileNotFoundError, ValueError):
            wanted = _texture_file_name(name)
            if Path(wanted).suffix.lower() not in IMAGE_SUFFIXES:
                raise  # an MTL or a glTF buffer: parsing reports it
        if name not in self._answered:  # a name used by several materials is looked for (and noted) once
            self._answered[name] = self._fallback(name, wanted)
        found = self._answered[name]
        if found is None:
            self.missing.append(name)
            raise FileNotFoundError(name)
        return found

    def _fallback(self, name: str, wanted: str) -> bytes | None:
        folder = self.mesh_path.parent
        same_name = sorted(
            (p for p in folder.rglob("*") if p.is_file() and p.name.lower() == wanted.lower()),
            key=lambda p: (len(p.relative_to(folder).parts), p.as_posix()),
        )
        beside = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if same_name:
            chosen, why = same_name[0], "the same file name under the mesh's folder"
            if len(same_name) > 1:
                why += f"; {len(same_name)} files have that name, the shallowest was taken"
        elif len(beside) == 1:
            chosen, why = beside[0], "the only image beside the mesh"
        else:
            images = f"{len(beside)} images" if beside else "no image"
            self.notes.append(
                f"texture '{name}' is missing: no file named '{wanted}' under {folder} and {images} beside "
                "the mesh; it renders without that texture"
            )
            return None
        try:
            data = chosen.read_bytes()
        except OSError as exc:
            self.notes.append(f"texture '{name}' is missing; {chosen} was found but cannot be read: {exc}")
            return None
        self.notes.append(f"texture '{name}' not found as written; used {chosen.relative_to(folder)} ({why})")
        return data


def _texture_file_name(name: str) -> str:
    """The file name part of a texture reference: URL-decoded (glTF URIs), Windows or POSIX separators."""
    return PureWindowsPath(urllib.parse.unquote(name.strip())).name


def _parse(path: Path, data: bytes, suffix: str, resolver: TextureResolver) -> Any:
    import trimesh

    # Companion files (.mtl, .bin, textures) are looked up beside the source, read-only. TextureResolver is
    # duck-typed (get, [], keys, file_name: all trimesh's loaders use), so trimesh is imported only when needed.
    files: Any = resolver
    try:
        return trimesh.load(io.BytesIO(data), file_type=suffix.lstrip("."), resolver=files, process=False)
    except MeshError:
        raise
    except Exception as exc:  # trimesh raises many types for bad bytes; all mean the same to the user
        detail = f"{type(exc).__name__}: {exc}".strip()
        raise MeshError(
            path, f"cannot parse as {suffix.lstrip('.').upper()} (corrupt or truncated?): {detail}"
        ) from exc


@dataclass
class _Part:
    """One triangle mesh of a file, in the file's own frame (scene transforms applied), with its attributes."""

    positions: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None
    uvs: np.ndarray | None
    colors: np.ndarray | None
    texture: np.ndarray | None
    base_color: tuple[float, float, float]
    material_color: bool = False


def _flatten(path: Path, geometry: Any, limit: int) -> _Part:
    """One part for the whole file (scene instances placed), or a MeshError explaining why there is none."""
    import trimesh

    placed: list[tuple[np.ndarray, Any]] = []
    point_clouds = 0
    if isinstance(geometry, trimesh.Scene):
        for node in geometry.graph.nodes_geometry:
            transform, geometry_name = geometry.graph[node]
            item = geometry.geometry[geometry_name]
            if isinstance(item, trimesh.Trimesh):
                placed.append((np.asarray(transform, dtype=np.float64), item))
            elif isinstance(item, trimesh.PointCloud):
                point_clouds += 1
    elif isinstance(geometry, trimesh.Trimesh):
        placed.append((np.eye(4), geometry))
    elif isinstance(geometry, trimesh.PointCloud):
        point_clouds += 1
    else:
        raise MeshError(path, f"contains no triangle mesh (got {type(geometry).__name__})")
    placed = [(transform, item) for transform, item in placed if len(item.faces) > 0]
    if not placed:
        if point_clouds:
            raise MeshError(path, "has no faces: a point cloud (or Gaussian splat) is not a mesh")
        raise MeshError(path, "empty mesh: no triangles")
    total = sum(len(item.faces) for _, item in placed)
    if total > limit:
        raise MeshError(path, _over_limit(total, limit))
    parts = [_part(item, transform) for transform, item in placed]
    if len(parts) == 1:
        return parts[0]
    if sum(part.texture is not None for part in parts) > 0:
        # Several textured parts need their images packed into one atlas: trimesh does that (normals recomputed).
        try:
            merged = trimesh.util.concatenate([item.copy().apply_transform(transform) for transform, item in placed])
        except Exception as exc:
            raise MeshError(path, f"cannot merge its {len(parts)} textured parts into one mesh: {exc}") from exc
        part = _part(merged, np.eye(4))
        part.normals = None
        return part
    return _merge_untextured(parts)


def _part(item: Any, transform: np.ndarray) -> _Part:
    attributes = _extract_attributes(item)
    linear = transform[:3, :3]
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite input is reported by load_mesh, by count
        positions = np.asarray(item.vertices, dtype=np.float64) @ linear.T + transform[:3, 3]
    normals = attributes.normals
    if normals is not None:
        normals = normals @ np.linalg.inv(linear)  # normals transform by the inverse transpose
    faces = np.asarray(item.faces, dtype=np.int64).reshape(-1, 3)
    if np.linalg.det(linear) < 0:
        faces = faces[:, ::-1]  # a mirroring transform would turn the mesh inside out
    return _Part(
        positions,
        faces,
        normals,
        attributes.uvs,
        attributes.colors,
        attributes.texture,
        attributes.base_color,
        attributes.material_color,
    )


def _merge_untextured(parts: list[_Part]) -> _Part:
    """Concatenate parts; differing colours become per-vertex colours so each part keeps its own."""
    offsets = np.cumsum([0] + [len(part.positions) for part in parts])
    faces = np.concatenate([part.faces + offset for part, offset in zip(parts, offsets, strict=False)])
    positions = np.concatenate([part.positions for part in parts])
    normals = None
    if all(part.normals is not None for part in parts):
        normals = np.concatenate([part.normals for part in parts if part.normals is not None])
    same_color = len({part.base_color for part in parts}) == 1 and all(part.colors is None for part in parts)
    colors = None
    if not same_color:
        colors = np.concatenate(
            [
                part.colors if part.colors is not None else np.tile(part.base_color, (len(part.positions), 1))
                for part in parts
            ]
        )
    material_color = any(part.material_color for part in parts)
    return _Part(positions, faces, normals, None, colors, None, parts[0].base_color, material_color)


@dataclass
class _Attributes:
    normals: np.ndarray | None
    uvs: np.ndarray | None
    colors: np.ndarray | None
    texture: np.ndarray | None
    base_color: tuple[float, float, float]
    material_color: bool


_DEFAULT_BASE_COLOR: Final = (0.7, 0.7, 0.7)


def _extract_attributes(item: Any) -> _Attributes:
    vertex_count = len(item.vertices)
    normals = None
    # trimesh caches authored normals at load time and drops the cache on any geometry change,
    # so a cached array of the right shape is exactly "the file had normals".
    cached = item._cache.cache.get("vertex_normals")
    if cached is not None and np.shape(cached) == (vertex_count, 3):
        normals = np.asarray(cached, dtype=np.float64)

    uvs = colors = texture = None
    base_color = _DEFAULT_BASE_COLOR
    material_color = False
    visual = item.visual
    kind = getattr(visual, "kind", None)
    if kind == "texture":
        material = visual.material
        base_color, material_color = _material_color(material), True
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        raw_uv = getattr(visual, "uv", None)
        if raw_uv is not None and np.shape(raw_uv) == (vertex_count, 2) and np.isfinite(raw_uv).all():
            uvs = np.asarray(raw_uv, dtype=np.float64)
            if image is not None:
                texture = _image_array(image)
                base_color = (1.0, 1.0, 1.0)
    elif kind in ("vertex", "face"):
        rgba = np.asarray(visual.vertex_colors, dtype=np.float64)
        if rgba.shape == (vertex_count, 4):
            colors = rgba[:, :3] / 255.0
    material_color = material_color and base_color is not _DEFAULT_BASE_COLOR
    return _Attributes(normals, uvs, colors, texture, base_color, material_color)


def _material_color(material: Any) -> tuple[float, float, float]:
    for name in ("baseColorFactor", "diffuse"):
        value = getattr(material, name, None)
        if value is not None and np.size(value) >= 3:
            rgb = np.asarray(value, dtype=np.float64).ravel()[:3]
            rgb = rgb / 255.0 if rgb.max() > 1.0 else rgb
            return (float(rgb[0]), float(rgb[1]), float(rgb[2]))
    return _DEFAULT_BASE_COLOR


def _image_array(image: Any) -> np.ndarray:
    mode = "RGBA" if "A" in image.mode or (image.mode == "P" and "transparency" in image.info) else "RGB"
    return np.ascontiguousarray(np.asarray(image.convert(mode), dtype=np.uint8))


# --------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------
def _drop_degenerate(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = positions[faces]
    doubled_area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    distinct = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return faces[distinct & (doubled_area > 0)]


def _compact(
    positions: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray | None,
    uvs: np.ndarray | None,
    colors: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Drop vertices no triangle uses and renumber the faces."""
    used = np.unique(faces)
    remap = np.full(len(positions), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))

    def pick(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[used]

    return positions[used], remap[faces], pick(normals), pick(uvs), pick(colors)


def _shade(
    positions: np.ndarray,
    faces: np.ndarray,
    uvs: np.ndarray | None,
    colors: np.ndarray | None,
    *,
    weld: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Vertex normals for a mesh without authored ones; ``weld`` (STL soups) smooth-shades with creases."""
    import trimesh

    if weld and uvs is None and colors is None:
        soup = trimesh.Trimesh(positions, faces, process=False)
        soup.merge_vertices()
        shaded = trimesh.graph.smooth_shade(soup, angle=np.radians(STL_CREASE_DEGREES))
        return np.asarray(shaded.vertices), np.asarray(shaded.faces), np.asarray(shaded.vertex_normals), None, None
    plain = trimesh.Trimesh(positions, faces, process=False)
    return positions, faces, np.asarray(plain.vertex_normals), uvs, colors


def _unit_normals(positions: np.ndarray, faces: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Normalize; vertices whose normal is zero or non-finite take the area-weighted one."""
    normals = np.asarray(normals, dtype=np.float64)
    length = np.linalg.norm(normals, axis=1)
    bad = ~np.isfinite(length) | (length < 1e-12)
    if bad.any():
        import trimesh

        computed = np.asarray(trimesh.Trimesh(positions, faces, process=False).vertex_normals)
        normals = np.where(bad[:, None], computed, normals)
        length = np.linalg.norm(normals, axis=1)
    still_bad = ~np.isfinite(length) | (length < 1e-12)
    normals = np.where(still_bad[:, None], [0.0, 0.0, 1.0], normals)
    length = np.where(still_bad, 1.0, length)
    return normals / length[:, None]


# --------------------------------------------------------------------------------------
# Decimation
# --------------------------------------------------------------------------------------
def decimate(
    positions: np.ndarray,
    faces: np.ndarray,
    target: int,
    *,
    uvs: np.ndarray | None = None,
    colors: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, str]:
    """Reduce to at most ``target`` triangles; returns positions, faces, uvs, colors and the method used.

    Quadric edge collapse (fast-simplification) keeps shape best; without that package, or if it
    cannot reach the target, vertex clustering (pure numpy) always can.
    """
    try:
        import fast_simplification
    except ImportError:
        fast_simplification = None
    if fast_simplification is not None:
        new_positions, new_faces = fast_simplification.simplify(
            np.asarray(positions, dtype=np.float64),
            np.asarray(faces, dtype=np.int32),
            target_count=target,
            # UV seams are open borders in a split-vertex mesh: keep them so textures do not smear.
            preserve_border=uvs is not None,
        )
        new_faces = np.asarray(new_faces, dtype=np.int64).reshape(-1, 3)
        if 0 < len(new_faces) <= target:
            new_positions = np.asarray(new_positions, dtype=np.float64)
            new_uvs, new_colors = _transfer(positions, new_positions, uvs, colors)
            kept, new_faces, _, new_uvs, new_colors = _compact(new_positions, new_faces, None, new_uvs, new_colors)
            return kept, new_faces, new_uvs, new_colors, "quadric"
    new_positions, new_faces, new_uvs, new_colors = decimate_vertex_clustering(
        positions, faces, target, uvs=uvs, colors=colors
    )
    return new_positions, new_faces, new_uvs, new_colors, "vertex-clustering"


def _transfer(
    old_positions: np.ndarray, new_positions: np.ndarray, uvs: np.ndarray | None, colors: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-vertex attributes of the new vertices, from the nearest old vertex."""
    if uvs is None and colors is None:
        return None, None
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(old_positions).query(new_positions)
    return (None if uvs is None else uvs[nearest]), (None if colors is None else colors[nearest])


def _cluster(
    positions: np.ndarray, faces: np.ndarray, origin: np.ndarray, cell: float
) -> tuple[np.ndarray, np.ndarray]:
    """Vertex -> cluster id on a grid of ``cell`` metres, and the surviving (non-degenerate, unique) faces."""
    keys = np.floor((positions - origin) / cell).astype(np.int64)
    _, cluster_of = np.unique(keys, axis=0, return_inverse=True)
    cluster_of = cluster_of.reshape(-1)
    clustered = cluster_of[faces]
    keep = (
        (clustered[:, 0] != clustered[:, 1])
        & (clustered[:, 1] != clustered[:, 2])
        & (clustered[:, 0] != clustered[:, 2])
    )
    clustered = clustered[keep]
    # The same triangle can arise from many source triangles; keep one per vertex set, first orientation.
    _, first = np.unique(np.sort(clustered, axis=1), axis=0, return_index=True)
    return cluster_of, clustered[np.sort(first)]


def decimate_vertex_clustering(
    positions: np.ndarray,
    faces: np.ndarray,
    target: int,
    *,
    uvs: np.ndarray | None = None,
    colors: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Grid vertex clustering: the finest grid (bisected) whose clustered mesh fits in ``target`` triangles.

    Each cluster's vertex is the mean of its members (attributes averaged alike). Works on any input,
    needs only numpy, and is deterministic.
    """
    positions = np.asarray(positions, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    origin = positions.min(axis=0)
    extent = float((positions.max(axis=0) - origin).max()) or 1.0
    coarse, fine = 1, 4096  # cells along the largest extent
    best: tuple[np.ndarray, np.ndarray] | None = None
    while coarse <= fine:
        cells = (coarse + fine) // 2
        cluster_of, clustered = _cluster(positions, faces, origin, extent * (1 + 1e-9) / cells)
        if len(clustered) <= target:
            best = (cluster_of, clustered)
            coarse = cells + 1
        else:
            fine = cells - 1
    if best is None or len(best[1]) == 0:
        raise ValueError(f"vertex clustering cannot reduce this mesh to {target} triangles")
    cluster_of, clustered = best
    clusters = int(cluster_of.max()) + 1
    counts = np.bincount(cluster_of, minlength=clusters).astype(np.float64)[:, None]

    def mean(values: np.ndarray | None) -> np.ndarray | None:
        if values is None:
            return None
        sums = np.zeros((clusters, values.shape[1]), dtype=np.float64)
        np.add.at(sums, cluster_of, values)
        return sums / counts

    new_positions = mean(positions)
    assert new_positions is not None
    kept, new_faces, _, new_uvs, new_colors = _compact(new_positions, clustered, None, mean(uvs), mean(colors))
    return kept, new_faces, new_uvs, new_colors
