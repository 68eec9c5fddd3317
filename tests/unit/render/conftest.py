"""Fixtures for the renderer tests: small meshes built from trimesh primitives and small scene specs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest
import trimesh

from isaac_jobs.mesh import Mesh
from isaac_jobs.spec import SceneSpec, load_spec


def mesh_from_trimesh(name: str, class_name: str, shape: trimesh.Trimesh, *, colored: bool = False) -> Mesh:
    positions = np.asarray(shape.vertices, dtype=np.float32)
    colors = None
    if colored:
        colors = ((positions - positions.min(0)) / np.ptp(positions, axis=0).clip(1e-6)).astype(np.float32)
    return Mesh(
        name=name,
        class_name=class_name,
        source=Path(f"{class_name}/{name}.stl"),
        positions=positions,
        faces=np.asarray(shape.faces, dtype=np.int32),
        normals=np.asarray(shape.vertex_normals, dtype=np.float32),
        colors=colors,
        source_sha256="0" * 64,
        source_bytes=100,
        original_triangles=len(shape.faces),
    )


@pytest.fixture
def meshes() -> list[Mesh]:
    """Three classes: flat-coloured box, vertex-coloured sphere, textured cylinder."""
    box = mesh_from_trimesh("box", "box", trimesh.creation.box(extents=(1.0, 0.6, 0.4)))
    ball = mesh_from_trimesh("ball", "ball", trimesh.creation.icosphere(subdivisions=3), colored=True)
    tube = mesh_from_trimesh("tube", "tube", trimesh.creation.cylinder(radius=0.3, height=1.0, sections=32))
    tube.uvs = (tube.positions[:, :2] * 0.5 + 0.5).astype(np.float32)
    tube.texture = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    return [box, ball, tube]


CLASS_NAMES = ["ball", "box", "tube"]


@pytest.fixture
def class_names() -> list[str]:
    return list(CLASS_NAMES)


@pytest.fixture
def small_spec() -> Callable[..., SceneSpec]:
    """load_spec with small images and the given overrides."""

    def make(**overrides: Any) -> SceneSpec:
        return load_spec(overrides={"width": 128, "height": 96, "frames": 6, **overrides})

    return make
