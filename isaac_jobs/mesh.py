"""In-memory mesh shared by the USD exporter and the renderers.

INTERFACE (owned by the mesh helper; renderers rely on exactly these fields):
every loader returns a ``Mesh`` in metres, Z-up, with per-vertex normals, triangles only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


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
    source_sha256: str = ""
    source_bytes: int = 0
    original_triangles: int = 0
    """Triangle count before decimation to the budget."""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def triangles(self) -> int:
        return int(self.faces.shape[0])

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.positions.min(axis=0), self.positions.max(axis=0)
