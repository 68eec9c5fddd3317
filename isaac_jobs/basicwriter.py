"""Convert Replicator BasicWriter output into one of our dataset shards.

Isaac Sim's BasicWriter (``rgb=True, bounding_box_2d_tight=True``) writes, per frame ``NNNN``:

* ``rgb_NNNN.png``: RGBA, 8 bit; the alpha channel is dropped.
* ``bounding_box_2d_tight_NNNN.npy``: a structured array with :data:`BASICWRITER_BOX_DTYPE`, one row per
  labelled prim with visible pixels. ``x_max``/``y_max`` are the *inclusive* last pixel column/row covered;
  our :data:`isaac_jobs.dataset.Box` uses *exclusive* maxima (a box over pixel 0 only is ``0..1``), so
  one is added to both maxima here. ``occlusionRatio`` is the occluded fraction of the prim, or -1 when
  Replicator could not compute it (kept: unknown is not hidden).
* ``bounding_box_2d_tight_labels_NNNN.json``: ``{"<semanticId>": {"class": "mug"}}`` with string keys;
  a prim carrying several ``class`` labels has them comma-joined (``"mug,cup"``).
* ``bounding_box_2d_tight_prim_paths_NNNN.json``: prim paths, only logged here.

Rules (each skipped item is logged with its reason and counted in the :class:`ConversionReport`):

* The files sit directly in the output folder, or in the one subfolder some Replicator releases name
  after the render product (output of several render products is refused: frames would collide).
* Frames are matched across files by their ``NNNN`` number. A missing or unreadable PNG / npy, or boxes
  without a labels file, makes that frame a problem; it is not written and the other frames go on.
* A frame with no boxes writes an image with an empty label file (a valid negative example).
* A semantic id absent from the labels file, or a label that names none of our classes, skips the box.
  Of comma-joined labels the one that is one of our classes is used; if several of ours appear the box is
  ambiguous and skipped rather than guessed.
* Clipping to the image and the tiny/hidden drop rule are :func:`isaac_jobs.dataset.keep_box`, with
  ``visible_fraction = 1 - occlusionRatio`` when known (``None`` when -1).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from isaac_jobs.dataset import Box, keep_box

if TYPE_CHECKING:
    from isaac_jobs.dataset import ShardWriter
    from isaac_jobs.spec import SceneSpec

log = logging.getLogger(__name__)

BASICWRITER_BOX_DTYPE: Final = np.dtype(
    [
        ("semanticId", "<u4"),
        ("x_min", "<i4"),
        ("y_min", "<i4"),
        ("x_max", "<i4"),
        ("y_max", "<i4"),
        ("occlusionRatio", "<f4"),
    ]
)
"""The structured dtype BasicWriter saves ``bounding_box_2d_tight_NNNN.npy`` with."""

SEMANTIC_TYPE: Final = "class"
"""The semantic type our USD assets label (``UsdSemantics.LabelsAPI`` instance ``class``)."""
LABEL_SEPARATOR: Final = ","
"""BasicWriter joins several labels of one prim and one semantic type with this."""
UNKNOWN_OCCLUSION: Final = -1.0
"""``occlusionRatio`` value meaning Replicator did not compute it."""

RGB_FILE: Final = re.compile(r"^rgb_(\d+)\.png$")
BOXES_FILE: Final = re.compile(r"^bounding_box_2d_tight_(\d+)\.npy$")
LABELS_FILE: Final = re.compile(r"^bounding_box_2d_tight_labels_(\d+)\.json$")
PRIM_PATHS_FILE: Final = re.compile(r"^bounding_box_2d_tight_prim_paths_(\d+)\.json$")


@dataclass(frozen=True)
class FrameProblem:
    """A BasicWriter frame that could not be converted (nothing was written for it)."""

    frame: int
    reason: str


@dataclass
class ConversionReport:
    converted: list[int] = field(default_factory=list)
    """BasicWriter frame numbers written into the shard."""
    problems: list[FrameProblem] = field(default_factory=list)
    skipped_boxes: list[str] = field(default_factory=list)
    """One line per box left out for a reason other than the drop rule (unknown id or class, ambiguity)."""
    dropped_boxes: int = 0
    """Boxes removed by the tiny/hidden drop rule of :func:`isaac_jobs.dataset.keep_box`."""


@dataclass
class _FrameFiles:
    rgb: Path | None = None
    boxes: Path | None = None
    labels: Path | None = None
    prim_paths: Path | None = None


def _index_frames(src_dir: Path) -> dict[int, _FrameFiles]:
    frames: dict[int, _FrameFiles] = {}
    for path in sorted(src_dir.iterdir()):
        if not path.is_file():
            continue
        for pattern, attribute in (
            (RGB_FILE, "rgb"),
            (BOXES_FILE, "boxes"),
            (LABELS_FILE, "labels"),
            (PRIM_PATHS_FILE, "prim_paths"),
        ):
            match = pattern.match(path.name)
            if match:
                setattr(frames.setdefault(int(match.group(1)), _FrameFiles()), attribute, path)
                break
    return frames


def read_rgb(path: Path) -> np.ndarray:
    """Return the PNG as (H, W, 3) uint8; RGBA loses its alpha. Raises ValueError when unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise ValueError(f"{path.name}: not a readable PNG ({err})") from err


def read_boxes(path: Path) -> np.ndarray:
    """Return the structured box array. Raises ValueError when unreadable or not BasicWriter's dtype."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path.name}: not a readable .npy ({err})") from err
    names = set(array.dtype.names or ())
    missing = sorted(set(BASICWRITER_BOX_DTYPE.names or ()) - names)
    if missing:
        raise ValueError(f"{path.name}: dtype {array.dtype} lacks BasicWriter fields {missing}")
    return np.atleast_1d(array)


def read_labels(path: Path) -> dict[int, str]:
    """Return semanticId -> raw ``class`` label string. Raises ValueError when unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path.name}: not readable JSON ({err})") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path.name}: expected an object keyed by semantic id, got {type(raw).__name__}")
    labels: dict[int, str] = {}
    for key, value in raw.items():
        if not str(key).isdigit() or not isinstance(value, dict):
            raise ValueError(f"{path.name}: entry {key!r} is not '<semanticId>': {{'{SEMANTIC_TYPE}': ...}}")
        label = value.get(SEMANTIC_TYPE)
        if isinstance(label, str):
            labels[int(key)] = label
    return labels


def resolve_class(label: str, class_names: Sequence[str]) -> tuple[int | None, str]:
    """Map a (possibly comma-joined) BasicWriter label to our class id; on None the second item says why."""
    candidates = [part.strip() for part in label.split(LABEL_SEPARATOR) if part.strip()]
    ours = list(dict.fromkeys(name for name in candidates if name in class_names))
    if len(ours) == 1:
        return class_names.index(ours[0]), ours[0]
    if not ours:
        return None, f"label {label!r} names none of our classes {list(class_names)}"
    return None, f"label {label!r} names several of our classes {ours}; ambiguous"


def convert_frame_boxes(
    boxes: np.ndarray,
    labels: dict[int, str],
    *,
    class_names: Sequence[str],
    width: int,
    height: int,
    min_side_px: float,
    min_visible_fraction: float,
    report: ConversionReport | None = None,
    frame: int = -1,
) -> list[Box]:
    """Turn one frame's BasicWriter rows into our boxes (exclusive maxima, clipped, drop rule applied)."""
    report = report if report is not None else ConversionReport()
    kept: list[Box] = []
    for row in boxes:
        semantic_id = int(row["semanticId"])
        label = labels.get(semantic_id)
        if label is None:
            reason = f"frame {frame}: semantic id {semantic_id} has no '{SEMANTIC_TYPE}' label; box skipped"
            report.skipped_boxes.append(reason)
            log.warning(reason)
            continue
        class_id, why = resolve_class(label, class_names)
        if class_id is None:
            reason = f"frame {frame}: semantic id {semantic_id}: {why}; box skipped"
            report.skipped_boxes.append(reason)
            log.warning(reason)
            continue
        occlusion = float(row["occlusionRatio"])
        # -1 is "not computed": the box stays and only the size rule applies.
        visible = None if occlusion < 0 or not np.isfinite(occlusion) else 1.0 - occlusion
        # BasicWriter's maxima are the last covered pixel (inclusive); ours are one past it.
        box: Box = (
            class_id,
            float(row["x_min"]),
            float(row["y_min"]),
            float(row["x_max"]) + 1.0,
            float(row["y_max"]) + 1.0,
        )
        result = keep_box(
            box,
            width=width,
            height=height,
            min_side_px=min_side_px,
            visible_fraction=visible,
            min_visible_fraction=min_visible_fraction,
        )
        if result is None:
            report.dropped_boxes += 1
        else:
            kept.append(result)
    return kept


def convert_basicwriter_report(
    src_dir: Path,
    writer: ShardWriter,
    *,
    class_names: Sequence[str],
    spec: SceneSpec,
    frame_indices: Sequence[int] | None = None,
    transform_rgb: Callable[[int, np.ndarray], np.ndarray] | None = None,
    jpeg_quality: Callable[[int], int | None] | None = None,
) -> ConversionReport:
    """Convert every frame in ``src_dir`` into ``writer`` (not committed here) and say what happened.

    ``frame_indices[n]`` is the dataset frame index of BasicWriter frame ``n`` (BasicWriter numbers the
    frames it wrote from 0); without it frame ``n`` keeps index ``n``. ``transform_rgb(frame_index, rgb)``,
    when given, changes the picture before it is written (the isaac backend's whole-image colour jitter);
    it must keep the size, as the boxes are not moved. ``jpeg_quality(frame_index)`` is the frame's planned
    JPEG quality (None: the writer's).
    """
    report = ConversionReport()
    frames = _index_frames(src_dir)
    if not frames:
        # Some Replicator releases put one render product's files in a subfolder named after it.
        nested = [d for d in sorted(src_dir.iterdir()) if d.is_dir() and _index_frames(d)]
        if len(nested) == 1:
            frames = _index_frames(nested[0])
        elif len(nested) > 1:
            raise ValueError(f"{src_dir}: BasicWriter output of several render products {[d.name for d in nested]}")
        else:
            log.warning("%s: no BasicWriter files found", src_dir)
    for number in sorted(frames):
        files = frames[number]
        try:
            index = _dataset_index(number, frame_indices)
            rgb, boxes, labels = _read_frame(number, files)
        except ValueError as err:
            report.problems.append(FrameProblem(number, str(err)))
            log.error("BasicWriter frame %04d not converted: %s", number, err)
            continue
        if files.prim_paths is not None:
            log.debug("frame %04d prim paths: %s", number, files.prim_paths.read_text(errors="replace")[:500])
        height, width = rgb.shape[:2]
        kept = convert_frame_boxes(
            boxes,
            labels,
            class_names=class_names,
            width=width,
            height=height,
            min_side_px=spec.min_box_side_px,
            min_visible_fraction=spec.min_visible_fraction,
            report=report,
            frame=number,
        )
        if transform_rgb is not None:
            rgb = transform_rgb(index, rgb)
        writer.add_frame(index, rgb, kept, jpeg_quality=jpeg_quality(index) if jpeg_quality is not None else None)
        report.converted.append(number)
    return report


def convert_basicwriter_output(
    src_dir: Path,
    writer: ShardWriter,
    *,
    class_names: Sequence[str],
    spec: SceneSpec,
    frame_indices: Sequence[int] | None = None,
) -> int:
    """Convert BasicWriter output into ``writer``; return the number of frames converted.

    Per-frame problems are logged (see :func:`convert_basicwriter_report` for the details as data).
    """
    report = convert_basicwriter_report(
        src_dir, writer, class_names=class_names, spec=spec, frame_indices=frame_indices
    )
    if report.problems:
        log.warning("%d BasicWriter frame(s) in %s not converted", len(report.problems), src_dir)
    return len(report.converted)


def _dataset_index(number: int, frame_indices: Sequence[int] | None) -> int:
    if frame_indices is None:
        return number
    if number >= len(frame_indices):
        raise ValueError(f"frame {number:04d} is beyond the {len(frame_indices)} frames this shard rendered")
    return int(frame_indices[number])


def _read_frame(number: int, files: _FrameFiles) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    if files.rgb is None:
        raise ValueError(f"frame {number:04d}: rgb_{number:04d}.png is missing")
    if files.boxes is None:
        raise ValueError(f"frame {number:04d}: bounding_box_2d_tight_{number:04d}.npy is missing")
    rgb = read_rgb(files.rgb)
    boxes = read_boxes(files.boxes)
    labels: dict[int, str] = {}
    if files.labels is not None:
        labels = read_labels(files.labels)
    elif len(boxes):
        raise ValueError(f"frame {number:04d}: {len(boxes)} boxes but no bounding_box_2d_tight_labels file")
    return rgb, boxes, labels


def describe(report: ConversionReport) -> dict[str, Any]:
    """A JSON-able summary for shard metadata."""
    return {
        "converted_frames": len(report.converted),
        "problems": [{"frame": p.frame, "reason": p.reason} for p in report.problems],
        "skipped_boxes": report.skipped_boxes,
        "dropped_boxes": report.dropped_boxes,
    }
