"""Every supported format loads in metres, Z-up, with unit normals and its colour/texture data."""

from __future__ import annotations

import struct
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import trimesh

from isaac_jobs.mesh import Mesh, decimate_vertex_clustering, load_mesh

REPO = Path(__file__).resolve().parents[3]


def _check_invariants(mesh: Mesh) -> None:
    assert mesh.positions.dtype == np.float32 and mesh.positions.shape[1] == 3
    assert mesh.faces.dtype == np.int32 and mesh.faces.shape[1] == 3
    assert mesh.normals.dtype == np.float32 and mesh.normals.shape == mesh.positions.shape
    np.testing.assert_allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=1e-5)
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.positions)
    # Vertex normals agree with the winding (outward-facing surfaces stay outward after the axis change).
    face_normals = trimesh.Trimesh(mesh.positions, mesh.faces, process=False).face_normals
    assert (np.einsum("ij,ij->i", mesh.normals[mesh.faces[:, 0]], face_normals) > 0).mean() > 0.95


def test_committed_samples_match_the_generator(sample_batch: Path) -> None:
    committed = REPO / "samples" / "meshes"
    fresh = sorted(p.relative_to(sample_batch) for p in sample_batch.rglob("*") if p.is_file())
    assert fresh == sorted(
        p.relative_to(committed) for p in committed.rglob("*") if p.is_file() and p.name != "batch.yaml"
    )
    for relative in fresh:
        assert (committed / relative).read_bytes() == (sample_batch / relative).read_bytes(), relative
    assert all(p.is_dir() or p.name == "batch.yaml" for p in committed.iterdir())
    assert sum(p.stat().st_size for p in committed.rglob("*") if p.is_file()) < 2_000_000


def test_glb_y_up_vertex_colours_become_z_up(sample_batch: Path) -> None:
    mesh = load_mesh(sample_batch / "mug" / "mug_sam3d.glb", class_name="mug")
    _check_invariants(mesh)
    low, high = mesh.bounds
    # The mug stands 9.5 cm tall on z=0 and is 8.2 cm across: Y-up was turned into Z-up, metres kept.
    assert high[2] == pytest.approx(0.095, abs=1e-3) and low[2] == pytest.approx(0.0, abs=1e-3)
    assert high[1] - low[1] == pytest.approx(0.082, abs=2e-3)
    assert mesh.colors is not None and mesh.colors.shape == (len(mesh.positions), 3)
    assert mesh.colors[:, 2].mean() > mesh.colors[:, 0].mean()  # blue glaze
    assert mesh.uvs is None and mesh.texture is None
    assert mesh.extra["up_axis"] == "y" and mesh.class_name == "mug" and mesh.name == "mug_sam3d"


def test_glb_texture_and_uvs(sample_batch: Path) -> None:
    mesh = load_mesh(sample_batch / "can" / "can_textured.glb", class_name="can")
    _check_invariants(mesh)
    assert mesh.uvs is not None and mesh.uvs.shape == (len(mesh.positions), 2)
    assert mesh.texture is not None and mesh.texture.shape == (128, 128, 3) and mesh.texture.dtype == np.uint8
    # glTF stores v downwards; the loader gives OpenGL UVs: the can's bottom (z=0) maps to v=0.
    bottom = mesh.positions[:, 2] < 1e-4
    assert np.allclose(mesh.uvs[bottom & (np.linalg.norm(mesh.positions[:, :2], axis=1) < 1e-6), 1], 0.0, atol=1e-5)
    assert mesh.bounds[1][2] == pytest.approx(0.115, abs=1e-3)


def test_obj_with_mtl_texture_is_y_up_by_default(sample_batch: Path) -> None:
    mesh = load_mesh(sample_batch / "bottle" / "bottle.obj", class_name="bottle")
    _check_invariants(mesh)
    assert mesh.bounds[1][2] == pytest.approx(0.24, abs=1e-3)
    assert mesh.uvs is not None and mesh.texture is not None and mesh.texture.shape == (256, 256, 3)
    assert mesh.base_color == (1.0, 1.0, 1.0)


def test_ply_vertex_colours_and_stl_are_z_up(sample_batch: Path) -> None:
    can = load_mesh(sample_batch / "can" / "can.ply", class_name="can")
    _check_invariants(can)
    assert can.bounds[1][2] == pytest.approx(0.115, abs=1e-3)
    assert can.colors is not None and can.colors[:, 0].max() > 0.7
    book = load_mesh(sample_batch / "book" / "book.stl", class_name="book")
    _check_invariants(book)
    np.testing.assert_allclose(book.bounds[1] - book.bounds[0], [0.16, 0.23, 0.03], atol=1e-6)
    # STL soup is welded and shaded with creases: a box keeps 6 flat sides (4 vertices each).
    assert len(book.positions) == 24
    assert book.extra["format"] == "stl" and book.source_bytes == (sample_batch / "book" / "book.stl").stat().st_size


def test_up_axis_override_and_scale(sample_batch: Path) -> None:
    as_z = load_mesh(sample_batch / "bottle" / "bottle.obj", class_name="bottle", up_axis="z")
    assert as_z.bounds[1][1] == pytest.approx(0.24, abs=1e-3)  # left as authored: tall along Y
    scaled = load_mesh(sample_batch / "book" / "book.stl", class_name="book", scale=0.5)
    np.testing.assert_allclose(scaled.bounds[1] - scaled.bounds[0], [0.08, 0.115, 0.015], atol=1e-6)


def test_source_hash_recorded(sample_batch: Path) -> None:
    import hashlib

    path = sample_batch / "can" / "can.ply"
    mesh = load_mesh(path, class_name="can")
    assert mesh.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert mesh.source == path


def _dense_sam3d_glb(path: Path, subdivisions: int = 5) -> int:
    """A Y-up icosphere-ish blob with vertex colours, as SAM 3D writes it; returns its triangle count."""
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.05)
    sphere.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    colors = np.zeros((len(sphere.vertices), 4), dtype=np.uint8)
    colors[:, 0] = (sphere.vertices[:, 1] > 0) * 255  # top half (Y-up) red
    colors[:, 2], colors[:, 3] = 120, 255
    sphere.visual = trimesh.visual.ColorVisuals(sphere, vertex_colors=colors)
    path.write_bytes(sphere.export(file_type="glb"))
    return len(sphere.faces)


def test_dense_sam3d_glb_is_decimated_to_budget(tmp_path: Path) -> None:
    path = tmp_path / "blob.glb"
    triangles = _dense_sam3d_glb(path)
    mesh = load_mesh(path, class_name="blob", triangle_budget=2000)
    _check_invariants(mesh)
    assert triangles == 20480 and mesh.original_triangles == triangles
    assert 1000 < mesh.triangles <= 2000
    assert mesh.colors is not None
    top = mesh.positions[:, 2] > 0.02  # after Y-up -> Z-up the red half is on top
    assert mesh.colors[top, 0].mean() > 0.9 and mesh.colors[mesh.positions[:, 2] < -0.02, 0].mean() < 0.1
    assert np.linalg.norm(mesh.positions, axis=1).max() == pytest.approx(0.05, abs=2e-3)


def test_vertex_clustering_fallback_reaches_budget() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4)
    colors = np.repeat([[0.2, 0.4, 0.6]], len(sphere.vertices), axis=0)
    positions, faces, uvs, new_colors = decimate_vertex_clustering(
        np.asarray(sphere.vertices), np.asarray(sphere.faces), 500, colors=colors
    )
    assert 100 < len(faces) <= 500 and uvs is None
    assert new_colors is not None and np.allclose(new_colors, [0.2, 0.4, 0.6])
    assert np.linalg.norm(positions, axis=1).min() > 0.9  # still a sphere


def test_binary_stl_header_count_is_checked(tmp_path: Path, generator: ModuleType) -> None:
    vertices, faces = generator.book()
    path = tmp_path / "box.stl"
    generator.write_stl_binary(path, vertices, faces)
    assert struct.unpack_from("<I", path.read_bytes(), 80)[0] == 12
    assert load_mesh(path, class_name="box").triangles == 12
