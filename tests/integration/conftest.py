"""Integration tests make their models from the YOLO unit tests' tiny dataset, loaded through the one loader the
benches use too (bench/tiny_data.py); bench/ lives at the repository root, which is not installed."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
