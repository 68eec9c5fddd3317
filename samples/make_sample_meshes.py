"""Regenerate the sample meshes in samples/meshes/ (procedural, offline, byte-for-byte reproducible).

    .venv/bin/python samples/make_sample_meshes.py [--out samples/meshes]

Each class is a small real-world object built from revolved profiles and boxes, written in the
format (and the up-axis convention) it typically arrives in; see samples/README.md for the table.
"""

from __future__ import annotations

import argparse
import io
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DEFAULT_OUT = Path(__file__).resolve().parent / "meshes"

# Z-up (our internal frame) -> Y-up (glTF and OBJ convention): (x, y, z) -> (x, z, -y).
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def grid_faces(rows: int, cols: int) -> np.ndarray:
    """Two triangles per cell of a rows x cols vertex grid (row-major), counter-clockwise seen from outside."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a = (r * cols + c).ravel()
    b, d = a + 1, a + cols
    e = d + 1
    return np.concatenate([np.stack([a, d, b], axis=1), np.stack([b, d, e], axis=1)]).astype(np.int64)


def drop_degenerate(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    return faces[area > 1e-12]


def revolve(profile: Sequence[tuple[float, float]], segments: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surface of revolution about +Z of a (radius, height) polyline; the seam is duplicated so UVs are clean.

    Returns vertices (Z-up), faces, and UVs (u around, v along the profile's arc length, 0 at its start).
    """
    prof = np.asarray(profile, dtype=np.float64)
    angles = np.linspace(0.0, 2.0 * np.pi, segments + 1)
    radius, height = prof[:, 0][:, None], prof[:, 1][:, None]
    grid = (len(prof), segments + 1)
    vertices = np.stack(
        [radius * np.cos(angles)[None, :], radius * np.sin(angles)[None, :], np.broadcast_to(height, grid)], axis=-1
    ).reshape(-1, 3)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(prof, axis=0), axis=1))])
    u, v = np.meshgrid(angles / (2.0 * np.pi), arc / arc[-1], indexing="xy")
    uvs = np.stack([u, v], axis=-1).reshape(-1, 2)
    faces = grid_faces(len(prof), segments + 1)[:, ::-1]  # profile runs up the outside: flip to face outward
    return vertices, drop_degenerate(vertices, faces), uvs


def tube(path_points: np.ndarray, radius: float, sides: int) -> tuple[np.ndarray, np.ndarray]:
    """A round tube along an open polyline (the ends stay open; they sink into the mug wall)."""
    tangents = np.gradient(path_points, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    side = np.array([0.0, 1.0, 0.0])  # the handle lies in the XZ plane, so +Y is always normal to it
    normals = np.cross(side, tangents)
    angles = np.linspace(0.0, 2.0 * np.pi, sides + 1)
    ring = np.cos(angles)[None, :, None] * normals[:, None, :] + np.sin(angles)[None, :, None] * side
    vertices = (path_points[:, None, :] + radius * ring).reshape(-1, 3)
    return vertices, grid_faces(len(path_points), sides + 1)[:, ::-1]


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(length > 0, length, 1.0)


def mug() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 9.5 cm ceramic mug with a handle; vertex colours (glaze, white rim, speckle) like a SAM 3D mesh."""
    outer_r, wall, height, base = 0.041, 0.004, 0.095, 0.006
    profile = [
        (0.0, 0.0),
        (outer_r - 0.004, 0.0),
        (outer_r, 0.004),
        *[(outer_r, z) for z in np.linspace(0.01, height - 0.002, 14)],
        (outer_r - wall / 2, height),
        (outer_r - wall, height - 0.002),
        *[(outer_r - wall, z) for z in np.linspace(height - 0.01, base + 0.004, 12)],
        (outer_r - wall - 0.004, base),
        (0.0, base),
    ]
    body_v, body_f, _ = revolve(profile, 72)
    arc = np.linspace(-0.45 * np.pi, 0.45 * np.pi, 28)
    centre = np.array([outer_r - 0.002, 0.0, 0.05])
    path = centre + np.stack([0.028 * np.cos(arc), np.zeros_like(arc), 0.03 * np.sin(arc)], axis=1)
    handle_v, handle_f = tube(path, 0.0055, 16)
    vertices = np.concatenate([body_v, handle_v])
    faces = np.concatenate([body_f, handle_f + len(body_v)])
    rng = np.random.default_rng(7)
    glaze = np.array([0.16, 0.33, 0.62])
    colors = np.tile(glaze, (len(vertices), 1)) * rng.uniform(0.9, 1.1, (len(vertices), 1))
    rim = (vertices[:, 2] > height - 0.008) & (np.arange(len(vertices)) < len(body_v))
    colors[rim] = [0.93, 0.92, 0.88]
    return vertices, faces, np.clip(colors, 0.0, 1.0)


def bottle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 24 cm glass bottle with a paper label (texture via UVs)."""
    profile = [
        (0.0, 0.0),
        (0.030, 0.0),
        (0.033, 0.004),
        *[(0.033, z) for z in np.linspace(0.01, 0.15, 8)],
        (0.030, 0.17),
        (0.020, 0.19),
        (0.013, 0.205),
        (0.013, 0.232),
        (0.0145, 0.234),
        (0.0145, 0.24),
        (0.0, 0.24),
    ]
    return revolve(profile, 48)


def bottle_texture(size: int = 256) -> Image.Image:
    """Green glass with a cream label band (v is along the profile, so the label sits mid-height)."""
    image = Image.new("RGB", (size, size), (46, 110, 62))
    draw = ImageDraw.Draw(image)
    top, bottom = int(size * 0.30), int(size * 0.62)  # rows from the top = profile fraction from the end
    draw.rectangle((0, top, size, bottom), fill=(236, 226, 198))
    draw.rectangle((0, top + 8, size, top + 14), fill=(170, 30, 40))
    draw.rectangle((0, bottom - 14, size, bottom - 8), fill=(170, 30, 40))
    for column in range(10, size, 64):
        draw.rectangle((column, top + 28, column + 36, bottom - 28), fill=(40, 40, 48))
    return image


def can_texture(size: int = 128) -> Image.Image:
    """Aluminium ends, a blue body and a yellow logo band (v along the profile: bottom rows = can bottom)."""
    image = Image.new("RGB", (size, size), (200, 202, 208))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, int(size * 0.12), size, int(size * 0.88)), fill=(24, 70, 160))
    draw.rectangle((0, int(size * 0.42), size, int(size * 0.56)), fill=(250, 205, 40))
    for column in range(0, size, 32):
        draw.ellipse((column + 4, int(size * 0.2), column + 26, int(size * 0.34)), fill=(240, 240, 240))
    return image


def can() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 330 ml drink can (6.6 x 11.5 cm) with silver rims and a red body, vertex-coloured."""
    profile = [
        (0.0, 0.004),
        (0.025, 0.004),
        (0.027, 0.0),
        (0.031, 0.006),
        (0.033, 0.014),
        *[(0.033, z) for z in np.linspace(0.02, 0.10, 6)],
        (0.033, 0.104),
        (0.028, 0.112),
        (0.0285, 0.115),
        (0.026, 0.113),
        (0.0, 0.111),
    ]
    vertices, faces, _ = revolve(profile, 48)
    body = (vertices[:, 2] > 0.012) & (vertices[:, 2] < 0.105) & (np.hypot(vertices[:, 0], vertices[:, 1]) > 0.03)
    colors = np.where(body[:, None], [0.78, 0.08, 0.1], [0.8, 0.8, 0.82])
    stripe = body & (vertices[:, 2] > 0.05) & (vertices[:, 2] < 0.07)
    colors[stripe] = [0.95, 0.95, 0.95]
    return vertices, faces, colors


def book() -> tuple[np.ndarray, np.ndarray]:
    """A 16 x 23 x 3 cm paperback lying flat: a box with a slightly recessed page block (triangle soup)."""
    import trimesh

    cover = trimesh.creation.box(extents=(0.16, 0.23, 0.03))
    cover.apply_translation((0.0, 0.0, 0.015))
    return np.asarray(cover.vertices), np.asarray(cover.faces)


# --------------------------------------------------------------------------------------
# Writers (hand-rolled where a library would add timestamps or vary its output)
# --------------------------------------------------------------------------------------
def write_glb_vertex_colors(path: Path, vertices_y_up: np.ndarray, faces: np.ndarray, colors: np.ndarray) -> None:
    import trimesh

    mesh = trimesh.Trimesh(vertices_y_up, faces, process=False)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.round(colors * 255).astype(np.uint8))
    path.write_bytes(mesh.export(file_type="glb", include_normals=True))


def write_glb_textured(
    path: Path, vertices_y_up: np.ndarray, faces: np.ndarray, uvs: np.ndarray, image: Image.Image
) -> None:
    import trimesh

    material = trimesh.visual.material.PBRMaterial(baseColorTexture=image, metallicFactor=0.0, roughnessFactor=0.6)
    mesh = trimesh.Trimesh(vertices_y_up, faces, process=False)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uvs, material=material)
    path.write_bytes(mesh.export(file_type="glb", include_normals=True))


def write_obj_textured(
    path: Path, vertices_y_up: np.ndarray, faces: np.ndarray, uvs: np.ndarray, image: Image.Image
) -> None:
    normals = vertex_normals(vertices_y_up, faces)
    material, texture = f"{path.stem}.mtl", f"{path.stem}.png"
    lines = [
        f"# {path.name}: generated by samples/make_sample_meshes.py (CC0-1.0)",
        f"mtllib {material}",
        "o " + path.stem,
    ]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices_y_up]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uvs]
    lines += [f"vn {x:.5f} {y:.5f} {z:.5f}" for x, y, z in normals]
    lines.append("usemtl label")
    lines += ["f " + " ".join(f"{i + 1}/{i + 1}/{i + 1}" for i in face) for face in faces]
    path.write_text("\n".join(lines) + "\n")
    path.with_name(material).write_text(
        "# generated by samples/make_sample_meshes.py (CC0-1.0)\nnewmtl label\nKa 1 1 1\nKd 1 1 1\nKs 0.2 0.2 0.2\n"
        f"Ns 40\nd 1\nillum 2\nmap_Kd {texture}\n"
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    path.with_name(texture).write_bytes(buffer.getvalue())


def write_ply_vertex_colors(path: Path, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray) -> None:
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment generated by samples/make_sample_meshes.py (CC0-1.0)\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    vertex_dtype = np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)])
    vertex_data = np.empty(len(vertices), dtype=vertex_dtype)
    vertex_data["xyz"], vertex_data["rgb"] = vertices, np.round(colors * 255)
    face_dtype = np.dtype([("n", "u1"), ("idx", "<i4", 3)])
    face_data = np.empty(len(faces), dtype=face_dtype)
    face_data["n"], face_data["idx"] = 3, faces
    path.write_bytes(header.encode("ascii") + vertex_data.tobytes() + face_data.tobytes())


def write_stl_binary(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    record = np.dtype([("normal", "<f4", 3), ("tri", "<f4", (3, 3)), ("attr", "<u2")])
    data = np.zeros(len(faces), dtype=record)
    data["normal"], data["tri"] = normals, tri
    header = b"binary STL generated by samples/make_sample_meshes.py (CC0-1.0)".ljust(80, b" ")
    path.write_bytes(header + struct.pack("<I", len(faces)) + data.tobytes())


def make_samples(out: Path) -> list[Path]:
    """Write every sample into ``out/<class>/`` and return the files written."""
    for folder in ("mug", "bottle", "can", "book"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    vertices, faces, colors = mug()
    written.append(out / "mug" / "mug_sam3d.glb")
    write_glb_vertex_colors(written[-1], vertices @ Z_UP_TO_Y_UP.T, faces, colors)

    vertices, faces, uvs = bottle()
    written.append(out / "bottle" / "bottle.obj")
    write_obj_textured(written[-1], vertices @ Z_UP_TO_Y_UP.T, faces, uvs, bottle_texture())

    vertices, faces, colors = can()
    written.append(out / "can" / "can.ply")
    write_ply_vertex_colors(written[-1], vertices, faces, colors)
    vertices, faces, uvs = revolve(
        [(0.0, 0.0), (0.026, 0.0), (0.033, 0.012), (0.033, 0.104), (0.026, 0.115), (0.0, 0.115)], 48
    )
    written.append(out / "can" / "can_textured.glb")
    write_glb_textured(written[-1], vertices @ Z_UP_TO_Y_UP.T, faces, uvs, can_texture())

    vertices, faces = book()
    written.append(out / "book" / "book.stl")
    write_stl_binary(written[-1], vertices, faces)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="batch folder to write <class>/<file> into")
    args = parser.parse_args(argv)
    for path in make_samples(args.out):
        print(f"{path.stat().st_size:>8} B  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
