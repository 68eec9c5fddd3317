"""The domain-shift benchmark's mesh batch: seven everyday objects, and how each really looks.

    PYTHONPATH=$PWD .venv/bin/python bench/shift_meshes.py --out /tmp/shift/meshes

Generated procedurally (offline, deterministic, CC0-1.0 like samples/; nothing here is committed but this
script). The batch mixes what users upload, so the benchmark shows where appearance is missing:

| class  | file                                   | what the renderer gets from the file                        |
|--------|----------------------------------------|-------------------------------------------------------------|
| mug    | mug/mug.glb                            | vertex colours (blue glaze, white rim), like a SAM 3D mesh  |
| bottle | bottle/bottle.obj + .mtl + .png        | a base-colour texture (green glass, paper label)            |
| can    | can/can.obj + .mtl, textures/can.png   | the MTL names can.png beside the OBJ, but the image sits in |
|        |                                        | textures/: a texture that does not resolve as written       |
| book   | book/book.stl                          | nothing: STL has no colour                                  |
| banana | banana/banana.ply                      | nothing: a PLY with faces and no colour                     |
| box    | box/box.stl                            | nothing (a cardboard shipping box)                          |
| apple  | apple/apple.glb                        | nothing: a GLB with no material                             |

``APPEARANCE`` is the real-world look of each class (sRGB base colour, roughness, metallic, texture image):
the path-traced reference (bench/cycles_reference.py) renders every object that way; the GL renderer only sees
what the files carry. Sizes are real-world metres.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from samples.make_sample_meshes import (
    Z_UP_TO_Y_UP,
    bottle,
    bottle_texture,
    can_texture,
    mug,
    revolve,
    write_glb_vertex_colors,
    write_obj_textured,
    write_stl_binary,
)

APPEARANCE: Final[dict[str, dict[str, Any]]] = {
    # color: sRGB 0-1 (the albedo when the file has no colour); texture: image relative to the class folder,
    # used by the reference renderer whatever the file's own material says (the real object has that print).
    "mug": {"color": None, "roughness": 0.25, "metallic": 0.0},  # glazed ceramic: its vertex colours
    "bottle": {"color": None, "roughness": 0.15, "metallic": 0.0, "texture": "bottle.png"},
    "can": {"color": None, "roughness": 0.3, "metallic": 0.8, "texture": "textures/can.png"},
    "book": {"color": (0.12, 0.2, 0.45), "roughness": 0.55, "metallic": 0.0},  # dark blue paperback cover
    "banana": {"color": (0.93, 0.8, 0.18), "roughness": 0.5, "metallic": 0.0},
    "box": {"color": (0.66, 0.49, 0.31), "roughness": 0.9, "metallic": 0.0},  # brown corrugated cardboard
    "apple": {"color": (0.72, 0.08, 0.07), "roughness": 0.35, "metallic": 0.0},
}
"""Real-world look per class (see the module docstring)."""

HUE_JITTER: Final = 0.03
"""Reference instances vary this much in hue (fraction of the circle) and +-15% in value: real objects differ."""


def banana(segments: int = 56, sides: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A 20 cm banana: a tube along a 70 degree arc, thickest in the middle, pinched at both ends (Z-up)."""
    t = np.linspace(0.0, 1.0, segments)
    angle = np.radians(-35 + 70 * t)
    bend = 0.17
    centre = np.stack([bend * np.sin(angle), np.zeros_like(t), bend * (1 - np.cos(angle)) + 0.02], axis=1)
    radius = 0.0035 + 0.016 * np.sin(np.pi * t) ** 0.7
    tangent = np.gradient(centre, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    side = np.array([0.0, 1.0, 0.0])
    normal = np.cross(side, tangent)
    ring = np.linspace(0.0, 2.0 * np.pi, sides, endpoint=False)
    # A banana is five-sided with rounded ridges: modulate the radius a little with the angle.
    ridge = 1.0 + 0.06 * np.cos(5 * ring)
    offsets = np.cos(ring)[None, :, None] * normal[:, None, :] + np.sin(ring)[None, :, None] * side
    vertices = (centre[:, None, :] + (radius[:, None] * ridge[None, :])[..., None] * offsets).reshape(-1, 3)
    closed = np.concatenate([np.arange(sides), [0]])
    faces = []
    for row in range(segments - 1):
        for k in range(sides):
            a, b = row * sides + closed[k], row * sides + closed[k + 1]
            c, d = a + sides, b + sides
            faces += [(a, b, d), (a, d, c)]
    caps = len(vertices)
    vertices = np.concatenate([vertices, centre[[0, -1]]])
    for k in range(sides):
        faces.append((caps, closed[k + 1], closed[k]))
        last = (segments - 1) * sides
        faces.append((caps + 1, last + closed[k], last + closed[k + 1]))
    return vertices, np.asarray(faces, dtype=np.int64)


def shipping_box() -> tuple[np.ndarray, np.ndarray]:
    """A 30 x 22 x 15 cm cardboard box (12 triangles)."""
    import trimesh

    box = trimesh.creation.box(extents=(0.30, 0.22, 0.15))
    box.apply_translation((0.0, 0.0, 0.075))
    return np.asarray(box.vertices), np.asarray(box.faces)


def paperback() -> tuple[np.ndarray, np.ndarray]:
    """A 15 x 21 x 2.5 cm paperback lying flat."""
    import trimesh

    book = trimesh.creation.box(extents=(0.15, 0.21, 0.025))
    book.apply_translation((0.0, 0.0, 0.0125))
    return np.asarray(book.vertices), np.asarray(book.faces)


def apple(segments: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """An 8 cm apple: a revolved profile with dimples at the stem and the base."""
    t = np.linspace(0.0, 1.0, 24)
    height = 0.075 * t
    radius = 0.04 * np.sin(np.pi * np.clip(t, 0.0, 1.0)) ** 0.55 * (1.0 - 0.12 * t)
    profile = [(0.0, 0.006), *zip(radius[1:-1], height[1:-1], strict=True), (0.0, 0.068)]
    vertices, faces, _ = revolve(profile, segments)
    return vertices, faces


def write_ply_plain(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment generated by bench/shift_meshes.py (CC0-1.0)\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    face_dtype = np.dtype([("n", "u1"), ("idx", "<i4", 3)])
    face_data = np.empty(len(faces), dtype=face_dtype)
    face_data["n"], face_data["idx"] = 3, faces
    path.write_bytes(header.encode("ascii") + vertices.astype("<f4").tobytes() + face_data.tobytes())


def write_glb_plain(path: Path, vertices_y_up: np.ndarray, faces: np.ndarray) -> None:
    import trimesh

    mesh = trimesh.Trimesh(vertices_y_up, faces, process=False)
    path.write_bytes(mesh.export(file_type="glb"))


def make_shift_meshes(out: Path) -> list[Path]:
    """Write the batch into ``out/<class>/`` (replacing what was there) and return the mesh files."""
    if out.exists():
        shutil.rmtree(out)
    for name in APPEARANCE:
        (out / name).mkdir(parents=True)
    written: list[Path] = []

    vertices, faces, colors = mug()
    written.append(out / "mug" / "mug.glb")
    write_glb_vertex_colors(written[-1], vertices @ Z_UP_TO_Y_UP.T, faces, colors)

    vertices, faces, uvs = bottle()
    written.append(out / "bottle" / "bottle.obj")
    write_obj_textured(written[-1], vertices @ Z_UP_TO_Y_UP.T, faces, uvs, bottle_texture())

    vertices, faces, uvs = revolve(
        [(0.0, 0.0), (0.026, 0.0), (0.033, 0.012), (0.033, 0.104), (0.026, 0.115), (0.0, 0.115)], 48
    )
    written.append(out / "can" / "can.obj")
    write_obj_textured(written[-1], vertices @ Z_UP_TO_Y_UP.T, faces, uvs, can_texture(256))
    (out / "can" / "textures").mkdir()
    (out / "can" / "can.png").rename(out / "can" / "textures" / "can.png")  # the MTL still says map_Kd can.png

    vertices, faces = paperback()
    written.append(out / "book" / "book.stl")
    write_stl_binary(written[-1], vertices, faces)

    vertices, faces = banana()
    written.append(out / "banana" / "banana.ply")
    write_ply_plain(written[-1], vertices, faces)

    vertices, faces = shipping_box()
    written.append(out / "box" / "box.stl")
    write_stl_binary(written[-1], vertices, faces)

    vertices, faces = apple()
    written.append(out / "apple" / "apple.glb")
    write_glb_plain(written[-1], vertices @ Z_UP_TO_Y_UP.T, faces)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="batch folder to write <class>/<file> into")
    args = parser.parse_args(argv)
    for path in make_shift_meshes(args.out):
        print(f"{path.stat().st_size:>8} B  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
