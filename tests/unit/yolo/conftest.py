"""A tiny YOLO dataset in the layout the renderer's finalize step writes (test data, drawn here).

Coloured shapes on noise backgrounds with exact boxes: ``images/{train,val}``, ``labels/{train,val}``,
``data.yaml`` with ``names`` and a ``manifest.json``. Kept small (tens of images, ~128 px) so a training
epoch takes seconds on two CPU cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from sim2cloud import contract

CLASS_NAMES = ("square", "disc", "triangle")
SHAPE_COLOURS = ((230, 40, 40), (40, 200, 60), (40, 80, 230))


def _draw_shape(draw: ImageDraw.ImageDraw, class_id: int, box: tuple[int, int, int, int]) -> None:
    x1, y1, x2, y2 = box
    colour = SHAPE_COLOURS[class_id]
    if class_id == 0:
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=colour)
    elif class_id == 1:
        draw.ellipse((x1, y1, x2 - 1, y2 - 1), fill=colour)
    else:
        draw.polygon([((x1 + x2) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=colour)


def build_tiny_dataset(root: Path, train_images: int = 16, val_images: int = 8, size: int = 128, seed: int = 0) -> Path:
    """Write the dataset under ``root`` and return it. Boxes are exact: each shape touches its box edges."""
    rng = random.Random(seed)  # noqa: S311  # test pictures, not secrets
    noise = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for split, n_images in ((contract.TRAIN_SPLIT, train_images), (contract.VAL_SPLIT, val_images)):
        image_dir = root / contract.IMAGES_DIR / split
        label_dir = root / contract.LABELS_DIR / split
        image_dir.mkdir(parents=True)
        label_dir.mkdir(parents=True)
        for index in range(n_images):
            background = noise.integers(90, 160, size=(size, size, 3), dtype=np.uint8)
            image = Image.fromarray(background)
            draw = ImageDraw.Draw(image)
            lines = []
            for _ in range(rng.randint(1, 3)):
                class_id = rng.randrange(len(CLASS_NAMES))
                side = rng.randint(size // 5, size // 2)
                x1, y1 = rng.randint(0, size - side), rng.randint(0, size - side)
                _draw_shape(draw, class_id, (x1, y1, x1 + side, y1 + side))
                cx, cy, w = (x1 + side / 2) / size, (y1 + side / 2) / size, side / size
                lines.append(f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {w:.6f}")
            stem = f"{split}_{index:04d}"
            image.save(image_dir / f"{stem}.jpg", quality=95)
            (label_dir / f"{stem}.txt").write_text("\n".join(lines) + "\n")
        counts[split] = n_images
    data_yaml = {
        "path": ".",
        "train": f"{contract.IMAGES_DIR}/{contract.TRAIN_SPLIT}",
        "val": f"{contract.IMAGES_DIR}/{contract.VAL_SPLIT}",
        "names": dict(enumerate(CLASS_NAMES)),
    }
    (root / contract.DATA_YAML_NAME).write_text(yaml.safe_dump(data_yaml, sort_keys=False))
    manifest = {
        "schema_version": contract.MANIFEST_SCHEMA_VERSION,
        "contract_version": contract.CONTRACT_VERSION,
        "run": "tiny-test-run",
        "class_names": list(CLASS_NAMES),
        "counts": counts,
        "seeds": {"scene": seed},
        "renderer": "pil-test-shapes",
        "source_meshes": [
            {"key": f"meshes/tiny/{name}/{name}.glb", "etag": hashlib.md5(name.encode()).hexdigest()}  # noqa: S324
            for name in CLASS_NAMES
        ],
    }
    (root / contract.DATASET_MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return build_tiny_dataset(tmp_path / "dataset")


def png_declaring(width: int, height: int, with_pixels: bool = False) -> bytes:
    """An RGB PNG of the given size. Without pixels it ends before any pixel data: decoding fails as truncated, so
    only a check of the declared size can refuse it as too large. With pixels (all black, streamed through zlib
    row by row) it is a decompression bomb: 12000x12000 is about 420 KB that decodes to 432 MB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = b""
    if with_pixels:
        compressor = zlib.compressobj(9)
        row = bytes(1 + 3 * width)  # filter byte + RGB
        pixels = chunk(b"IDAT", b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def _run_ultralytics_child(script: str, payload: Any) -> Any:
    """Run ``script`` (reads JSON on stdin, prints JSON as its last line) in a child Python with Ultralytics
    offline, so torch stays out of the test process (tests/conftest.py says why); its answer, parsed."""
    completed = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env={**os.environ, "YOLO_OFFLINE": "1"},
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _run_child_script(name: str, work: Path, **extra_env: str) -> dict[str, Any]:
    """Run ``<this folder>/<name> WORK`` in a child Python (Ultralytics offline, the repository importable) and
    parse the JSON of its last stdout line: Ultralytics and torch stay out of the test process."""
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo), "YOLO_OFFLINE": "1", "OPENBLAS_NUM_THREADS": "1", **extra_env}
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).with_name(name)), str(work)],
        capture_output=True, text=True, env=env, cwd=repo, timeout=600, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="session")
def child_script() -> Callable[..., dict[str, Any]]:
    """:func:`_run_child_script`, for a module-scoped fixture that runs its child once."""
    return _run_child_script


@pytest.fixture
def ultralytics_child() -> Callable[[str, Any], Any]:
    """:func:`_run_ultralytics_child`: Ultralytics' own answer to compare ours with."""
    return _run_ultralytics_child
