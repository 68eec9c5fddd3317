"""Snapshot of every template of every environment, with asset hashes normalised away.

A change to the infrastructure shows up here as a diff to review. To accept it, regenerate the snapshots:

    UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/infra/test_stack_snapshots.py
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from infra_assembly import Synthesized

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def normalise(templates: dict[str, Any]) -> dict[str, Any]:
    """Asset hashes (Lambda bundles, file assets) change with any code edit; the infrastructure does not."""
    text = _ASSET_HASH.sub("<asset-hash>", json.dumps(templates, sort_keys=True, indent=1))
    normalised: dict[str, Any] = json.loads(text)
    return normalised


def test_templates_match_snapshot(env: Synthesized) -> None:
    current = normalise(env.templates)
    path = SNAPSHOTS / f"{env.settings.name}.json"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, sort_keys=True, indent=1) + "\n")
    assert path.exists(), f"no snapshot {path}: create it with UPDATE_SNAPSHOTS=1"
    expected = json.loads(path.read_text())
    assert current == expected, f"templates changed: review, then UPDATE_SNAPSHOTS=1 to accept ({path})"
