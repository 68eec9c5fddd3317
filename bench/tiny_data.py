"""The test suite's small-data makers (tests/unit/yolo/conftest.py: a tiny YOLO dataset, crafted PNG headers),
loaded once for the benches that need a model or a hostile image without shipping data; and the synthetic
mosaic plans the GPU draw is timed (bench/train_step_profile.py) and checked (tests/gpu) with."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@functools.cache
def yolo_test_helpers() -> Any:
    """The module tests/unit/yolo/conftest.py (``build_tiny_dataset``, ``png_declaring``, ...)."""
    spec = importlib.util.spec_from_file_location("yolo_tiny_dataset", REPO / "tests/unit/yolo/conftest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mosaic_pastes(centre: tuple[int, int], size: int, sources: list[int]) -> tuple[tuple[Any, ...], ...]:
    """The four tiles of Ultralytics' 4-image mosaic around ``centre`` (y, x) on a ``2 * size`` canvas, as
    ``PlannedMosaic`` records them: (source, canvas y1, y2, x1, x2, source y1, y2, x1, x2) for size x size sources."""
    yc, xc = centre
    pastes = []
    for tile, (top, left) in enumerate(((True, True), (True, False), (False, True), (False, False))):
        y1a, y2a = (max(yc - size, 0), yc) if top else (yc, min(yc + size, 2 * size))
        x1a, x2a = (max(xc - size, 0), xc) if left else (xc, min(xc + size, 2 * size))
        y1b = size - (y2a - y1a) if top else 0
        x1b = size - (x2a - x1a) if left else 0
        source = ("source", sources[tile], size, size)
        pastes.append((source, y1a, y2a, x1a, x2a, y1b, y1b + y2a - y1a, x1b, x1b + x2a - x1a))
    return tuple(pastes)
