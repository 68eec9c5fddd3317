"""Each kind of bad input is one MeshError naming the file and the problem; the file is left untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import trimesh

from isaac_jobs.mesh import MeshError, load_mesh


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def _expect_error(path: Path, *fragments: str, **kwargs: object) -> MeshError:
    before = _snapshot(path)
    with pytest.raises(MeshError) as caught:
        load_mesh(path, class_name="thing", **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message.lower(), message
    assert _snapshot(path) == before  # never modified
    return caught.value


def _copy(sample_batch: Path, relative: str, tmp_path: Path, transform: Callable[[bytes], bytes]) -> Path:
    source = sample_batch / relative
    target = tmp_path / source.name
    target.write_bytes(transform(source.read_bytes()))
    return target


def test_corrupt_glb(sample_batch: Path, tmp_path: Path) -> None:
    path = _copy(sample_batch, "mug/mug_sam3d.glb", tmp_path, lambda b: b[:20] + b"\x00garbage" * 50 + b[420:])
    _expect_error(path, "corrupt")


def test_random_bytes_as_ply(tmp_path: Path) -> None:
    path = tmp_path / "noise.ply"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    _expect_error(path, "ply")


@pytest.mark.parametrize("relative", ["mug/mug_sam3d.glb", "can/can.ply", "book/book.stl", "can/can_textured.glb"])
def test_truncated_files(sample_batch: Path, tmp_path: Path, relative: str) -> None:
    path = _copy(sample_batch, relative, tmp_path, lambda b: b[: len(b) * 2 // 3])
    _expect_error(path, "truncated")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing.obj"
    path.write_bytes(b"")
    _expect_error(path, "empty")


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "chair.fbx"
    path.write_bytes(b"Kaydara FBX Binary  \x00")
    _expect_error(path, "unsupported extension", ".fbx")


def test_gaussian_splat_ply_is_named(tmp_path: Path) -> None:
    count = 50
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    names += ["scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {count}\n"
    header += "".join(f"property float {name}\n" for name in names) + "end_header\n"
    path = tmp_path / "splat.ply"
    path.write_bytes(header.encode() + np.zeros((count, len(names)), dtype="<f4").tobytes())
    _expect_error(path, "no faces", "gaussian splat")


def test_point_cloud_ply_without_faces(tmp_path: Path) -> None:
    path = tmp_path / "points.ply"
    path.write_bytes(trimesh.PointCloud(np.random.default_rng(1).random((30, 3))).export(file_type="ply"))
    _expect_error(path, "no faces", "point cloud")


def test_obj_with_vertices_only_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "lonely.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    error = _expect_error(path)
    assert any(word in error.reason for word in ("empty", "no faces", "no triangles", "point cloud")), error.reason


def test_zero_area_mesh_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "flat.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    _expect_error(path, "empty", "zero area")


def test_non_finite_vertices(tmp_path: Path) -> None:
    path = tmp_path / "nan.obj"
    path.write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nv 0 0 inf\nf 1 2 3\nf 1 3 4\n")
    _expect_error(path, "non-finite", "2 of 4 vertices")


def test_far_over_budget(tmp_path: Path, generator: ModuleType) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4)  # 5120 triangles
    path = tmp_path / "scan.stl"
    generator.write_stl_binary(path, np.asarray(sphere.vertices), np.asarray(sphere.faces))
    error = _expect_error(path, "5120 triangles", "max_triangles", triangle_budget=100)  # default limit 2000
    assert "2000" in error.reason
    glb = tmp_path / "scan.glb"
    glb.write_bytes(sphere.export(file_type="glb"))
    _expect_error(glb, "far over", triangle_budget=100, max_triangles=5000)
    assert load_mesh(glb, class_name="scan", triangle_budget=100, max_triangles=6000).triangles <= 100
