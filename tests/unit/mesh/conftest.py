"""Fixtures for the mesh tests: small meshes written fresh into tmp_path by the sample generator."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample_meshes", REPO / "samples" / "make_sample_meshes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    return _load_generator()


@pytest.fixture(scope="session")
def sample_batch(tmp_path_factory: pytest.TempPathFactory, generator: ModuleType) -> Path:
    """A fresh copy of the sample batch (the committed one must match it byte for byte)."""
    out = tmp_path_factory.mktemp("samples")
    generator.make_samples(out)
    return out
