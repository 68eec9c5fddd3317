"""Checks a dataset channel before Ultralytics sees it, so a bad dataset ends in a clear reason, not a traceback.

Checked: the channel exists and is not empty; data.yaml exists, parses and has ``names``; both splits have
images; every image decodes; every label line has five numbers, a class id in range and normalized
coordinates. Ultralytics would instead skip corrupt files with a warning and train on what is left.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from PIL import Image
from tqdm import tqdm

from sim2cloud import contract

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MAX_REPORTED_PROBLEMS = 20
"""Problems listed in the failure reason; the count of the rest is appended."""
COORDINATE_TOLERANCE = 1e-3
"""Normalized coordinates may exceed [0, 1] by rounding; beyond this they are an error."""


class DatasetError(ValueError):
    """The dataset cannot be trained on; the message says what is wrong and where."""


@dataclass(frozen=True)
class DatasetSummary:
    root: Path
    class_names: list[str]
    image_counts: dict[str, int]
    split_dirs: dict[str, Path]
    manifest: dict[str, Any] | None = None
    manifest_sha256: str | None = None
    label_counts: dict[str, int] = field(default_factory=dict)


def _class_names(data: dict[str, Any], where: Path) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict):
        try:
            ordered = sorted((int(k), str(v)) for k, v in names.items())
        except (TypeError, ValueError) as error:
            raise DatasetError(f"{where}: 'names' keys must be class ids 0..N-1") from error
        if [k for k, _ in ordered] != list(range(len(ordered))):
            raise DatasetError(f"{where}: 'names' keys must be 0..{len(ordered) - 1} without gaps")
        return [v for _, v in ordered]
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return list(names)
    raise DatasetError(f"{where}: 'names' must be a list or a {{id: name}} mapping of class names")


def _split_dir(root: Path, data: dict[str, Any], split: str) -> Path:
    """Where a split's images are: data.yaml's entry, relative to its ``path`` (or the dataset root).

    An absolute ``path`` that does not exist here (written on the render machine) falls back to the root.
    """
    base = root
    declared = data.get("path")
    if isinstance(declared, str) and declared:
        candidate = Path(declared) if Path(declared).is_absolute() else root / declared
        if candidate.is_dir():
            base = candidate
    entry = data.get(split, f"{contract.IMAGES_DIR}/{split}")
    if not isinstance(entry, str):
        raise DatasetError(f"{root / contract.DATA_YAML_NAME}: '{split}' must be one directory path")
    path = Path(entry)
    return path if path.is_absolute() else base / path


def _label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` path component becomes ``labels``, the suffix ``.txt``."""
    parts = list(image.parts)
    index = len(parts) - 1 - parts[::-1].index(contract.IMAGES_DIR)
    parts[index] = contract.LABELS_DIR
    return Path(*parts).with_suffix(".txt")


def _label_problems(label: Path, n_classes: int) -> tuple[list[str], int]:
    problems: list[str] = []
    boxes = 0
    for line_no, line in enumerate(label.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{label}:{line_no}"
        tokens = line.split()
        if len(tokens) != 5:
            problems.append(f"{where}: expected 'class cx cy w h', got {len(tokens)} values")
            continue
        try:
            class_id = int(tokens[0])
            coords = [float(t) for t in tokens[1:]]
        except ValueError:
            problems.append(f"{where}: not numbers: {line.strip()!r}")
            continue
        if not 0 <= class_id < n_classes:
            problems.append(f"{where}: class id {class_id} out of range 0..{n_classes - 1}")
        if any(not -COORDINATE_TOLERANCE <= c <= 1 + COORDINATE_TOLERANCE for c in coords) or min(coords[2:]) <= 0:
            problems.append(f"{where}: box {coords} is not normalized to (0, 1]")
        boxes += 1
    return problems, boxes


def check_dataset(root: Path, progress: bool = True) -> DatasetSummary:
    """Validate the dataset at ``root`` (a channel directory) and summarize it, or raise DatasetError."""
    if not root.is_dir():
        raise DatasetError(f"dataset channel {root} does not exist")
    if not any(root.iterdir()):
        raise DatasetError(f"dataset channel {root} is empty")
    data_yaml = root / contract.DATA_YAML_NAME
    if not data_yaml.is_file():
        raise DatasetError(f"{data_yaml} is missing: the dataset channel must hold the YOLO data.yaml")
    try:
        data = yaml.safe_load(data_yaml.read_text())
    except yaml.YAMLError as error:
        raise DatasetError(f"{data_yaml} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise DatasetError(f"{data_yaml} must be a mapping with 'names', 'train' and 'val'")
    names = _class_names(data, data_yaml)
    if not names:
        raise DatasetError(f"{data_yaml}: 'names' is empty")

    problems: list[str] = []
    image_counts: dict[str, int] = {}
    label_counts: dict[str, int] = {}
    split_dirs: dict[str, Path] = {}
    for split in contract.SPLITS:
        split_dir = _split_dir(root, data, split)
        split_dirs[split] = split_dir
        if contract.IMAGES_DIR not in split_dir.parts:
            # YOLO finds a label by swapping the last 'images' path component for 'labels'.
            raise DatasetError(f"split '{split}' dir {split_dir} must lie under an '{contract.IMAGES_DIR}' directory")
        images = (
            sorted(p for p in split_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if split_dir.is_dir() else []
        )
        if not images:
            raise DatasetError(f"no images for split '{split}' in {split_dir}")
        image_counts[split] = len(images)
        label_counts[split] = 0
        for image in tqdm(images, desc=f"checking {split}", unit="img", disable=not progress, leave=False):
            try:
                with Image.open(image) as opened:
                    opened.load()  # full decode: truncated files fail here, not only on a bad header
            except (OSError, SyntaxError, ValueError) as error:
                problems.append(f"{image}: corrupt or unreadable image ({error})")
            label = _label_path(image)
            if label.is_file():
                found, boxes = _label_problems(label, len(names))
                problems.extend(found)
                label_counts[split] += boxes
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        suffix = f"\n... and {more} more" if more else ""
        raise DatasetError(f"dataset {root} has {len(problems)} problem(s):\n" + "\n".join(shown) + suffix)

    manifest_path = root / contract.DATASET_MANIFEST_NAME
    manifest: dict[str, Any] | None = None
    digest: str | None = None
    if manifest_path.is_file():
        raw = manifest_path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{manifest_path} is not valid JSON: {error}") from error
        manifest = loaded if isinstance(loaded, dict) else None
    return DatasetSummary(
        root=root,
        class_names=names,
        image_counts=image_counts,
        split_dirs=split_dirs,
        manifest=manifest,
        manifest_sha256=digest,
        label_counts=label_counts,
    )
