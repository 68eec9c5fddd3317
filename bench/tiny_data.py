"""The test suite's small-data makers (tests/unit/yolo/conftest.py: a tiny YOLO dataset, crafted PNG headers),
loaded once for the benches that need a model or a hostile image without shipping data."""

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
