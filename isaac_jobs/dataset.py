"""The dataset writer: shards that are complete or absent, and their merge into one YOLO dataset.

A shard (``<out>/shard-KKKK/``) holds ``images/<frame:06d>.<ext>``, ``labels/<frame:06d>.txt`` (YOLO
normalized ``class cx cy w h``) and, written last, the marker ``contract.SHARD_COMPLETE_MARKER`` (JSON
metadata). It is written into a hidden temporary sibling and renamed into place on commit, so readers see
either nothing or a whole shard. ``finalize`` merges complete shards into the Ultralytics detection layout
(``images/{train,val}``, ``labels/{train,val}``, ``data.yaml``) and writes ``manifest.json`` last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from sim2cloud import contract

Box = tuple[int, float, float, float, float]
"""class_id, x_min, y_min, x_max, y_max in pixels (max exclusive)."""

IMAGE_EXTENSIONS = {"jpg": ".jpg", "png": ".png"}
SPLIT_RULE = "frames ranked by sha256('<seed>:<frame>'); the first round(n * val_fraction) (at least 1) are val"


class ShardIncompleteError(RuntimeError):
    """A shard finalize needs is missing or has no completion marker; the message names it."""


class DatasetExistsError(RuntimeError):
    """The output folder holds something that is not a dataset written by finalize."""


def keep_box(
    box: Box,
    *,
    width: int,
    height: int,
    min_side_px: float,
    visible_fraction: float | None,
    min_visible_fraction: float,
) -> Box | None:
    """Clip ``box`` to the image and apply the drop rule (documented in default_spec.yaml).

    Dropped (None) when: the clipped box is empty (the object has no pixel inside the image); its clipped
    width or height is under ``min_side_px``; or ``visible_fraction`` (visible pixels / pixels the object
    covers alone inside the image; None = unknown, treated as fully visible) is under
    ``min_visible_fraction``. Otherwise the clipped box is returned.
    """
    class_id, x_min, y_min, x_max, y_max = box
    x_min, x_max = min(max(x_min, 0.0), float(width)), min(max(x_max, 0.0), float(width))
    y_min, y_max = min(max(y_min, 0.0), float(height)), min(max(y_max, 0.0), float(height))
    if x_max <= x_min or y_max <= y_min:
        return None
    if x_max - x_min < min_side_px or y_max - y_min < min_side_px:
        return None
    if visible_fraction is not None and visible_fraction < min_visible_fraction:
        return None
    return (class_id, x_min, y_min, x_max, y_max)


def frames_for_shard(frames: int, shard: int, shards: int) -> range:
    """Contiguous frame indices of shard ``shard`` of ``shards``: disjoint, covering 0..frames-1, stable."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1}")
    return range(shard * frames // shards, (shard + 1) * frames // shards)


def yolo_label_text(boxes: Sequence[Box], width: int, height: int) -> str:
    """YOLO lines ``class cx cy w h`` normalized to [0, 1], 6 decimals (stable bytes for reproducibility)."""
    lines = []
    for class_id, x_min, y_min, x_max, y_max in boxes:
        cx, cy = (x_min + x_max) / 2 / width, (y_min + y_max) / 2 / height
        w, h = (x_max - x_min) / width, (y_max - y_min) / height
        lines.append(f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "".join(line + "\n" for line in lines)


def frame_stem(frame_index: int) -> str:
    return f"{frame_index:06d}"


def replace_folder(build: Path, target: Path) -> None:
    """Put the fully written folder ``build`` in place of ``target`` (which may exist) by renames.

    Readers see the old folder or the new one, never a half-written one: the old one is renamed aside (beside
    ``target``, so on the same file system), the new one renamed in, and only then is the old one removed.
    """
    if not target.exists():
        build.rename(target)
        return
    stale = target.parent / f".{target.name}.stale-{os.getpid()}"
    target.rename(stale)
    build.rename(target)
    shutil.rmtree(stale)


def write_frame_files(
    folder: Path, frame_index: int, rgb: np.ndarray, label: str, *, image_format: str, quality: int
) -> None:
    """One frame's image (``image_format``; JPEG at ``quality``) and YOLO label file under a shard folder."""
    from PIL import Image

    stem = frame_stem(frame_index)
    image = Image.fromarray(rgb, "RGB")
    image_path = folder / contract.IMAGES_DIR / (stem + IMAGE_EXTENSIONS[image_format])
    if image_format == "jpg":
        image.save(image_path, format="JPEG", quality=quality)
    else:
        image.save(image_path, format="PNG", compress_level=1)
    (folder / contract.LABELS_DIR / (stem + ".txt")).write_text(label, encoding="utf-8")


class ShardWriter:
    """Writes one shard aside and renames it into ``out_dir/<shard_name>`` on commit (marker written last).

    Images are encoded on background threads (PIL releases the GIL while encoding), so the renderer draws the
    next frame meanwhile; at most ``max_pending`` frames wait, bounding memory. ``encoder_threads`` defaults to
    half the cores: one on a 2-core machine (llvmpipe needs the other), several on a GPU host where the GPU
    renders far faster than one core encodes JPEG. Each frame is its own file, so the thread count never
    changes the output.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        class_names: Sequence[str],
        shard: int,
        shards: int,
        image_format: str = "jpg",
        jpeg_quality: int = 92,
        max_pending: int | None = None,
        encoder_threads: int | None = None,
    ) -> None:
        if image_format not in IMAGE_EXTENSIONS:
            raise ValueError(f"image_format {image_format!r} is not one of {', '.join(IMAGE_EXTENSIONS)}")
        self.out_dir = Path(out_dir)
        self.class_names = list(class_names)
        self.shard, self.shards = shard, shards
        self.image_format, self.jpeg_quality = image_format, jpeg_quality
        self.final_dir = self.out_dir / contract.shard_name(shard)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.temp_dir = Path(tempfile.mkdtemp(prefix=f".{self.final_dir.name}.tmp-", dir=self.out_dir))
        (self.temp_dir / contract.IMAGES_DIR).mkdir()
        (self.temp_dir / contract.LABELS_DIR).mkdir()
        self.frames: list[int] = []
        self.box_counts = [0] * len(self.class_names)
        threads = encoder_threads or max(1, (os.cpu_count() or 2) // 2)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="shard-encode")
        self._pending: list[Future[None]] = []
        self._slots = threading.BoundedSemaphore(max_pending or 2 * threads + 2)
        self._closed = False

    def add_frame(
        self, frame_index: int, rgb: np.ndarray, boxes: Sequence[Box], *, jpeg_quality: int | None = None
    ) -> None:
        """Queue one frame; ``jpeg_quality`` (the plan's, drawn per frame) overrides the writer's for it."""
        if self._closed:
            raise RuntimeError("ShardWriter is already committed or aborted")
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"frame {frame_index}: expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
        height, width = rgb.shape[:2]
        self._count_boxes(frame_index, boxes)
        self.frames.append(frame_index)
        label = yolo_label_text(boxes, width, height)
        self._slots.acquire()
        quality = self.jpeg_quality if jpeg_quality is None else jpeg_quality
        self._pending.append(self._executor.submit(self._write_frame, frame_index, rgb, label, quality))

    def add_written_frame(self, frame_index: int, boxes: Sequence[Box]) -> None:
        """Record a frame whose image and label another process already wrote into ``temp_dir`` (with
        :func:`write_frame_files`): it is listed and counted as if queued here, and committed with the shard."""
        if self._closed:
            raise RuntimeError("ShardWriter is already committed or aborted")
        self._count_boxes(frame_index, boxes)
        self.frames.append(frame_index)

    def _count_boxes(self, frame_index: int, boxes: Sequence[Box]) -> None:
        for box in boxes:
            if not 0 <= box[0] < len(self.class_names):
                raise ValueError(f"frame {frame_index}: class id {box[0]} outside 0..{len(self.class_names) - 1}")
            self.box_counts[box[0]] += 1

    def _write_frame(self, frame_index: int, rgb: np.ndarray, label: str, quality: int) -> None:
        try:
            write_frame_files(self.temp_dir, frame_index, rgb, label, image_format=self.image_format, quality=quality)
        finally:
            self._slots.release()

    def wait(self) -> None:
        """Block until every frame queued so far is written (raises the first encode error)."""
        self._drain()

    def _drain(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def commit(self, metadata: dict[str, Any]) -> Path:
        """Wait for pending frames, rename the shard into place, then write the marker; returns the shard dir."""
        if self._closed:
            raise RuntimeError("ShardWriter is already committed or aborted")
        try:
            self._drain()
        except BaseException:
            self.abort()
            raise
        self._executor.shutdown()
        self._closed = True
        marker = {
            **metadata,
            "shard": self.shard,
            "shards": self.shards,
            "class_names": self.class_names,
            "frames": sorted(self.frames),
            "box_counts": dict(zip(self.class_names, self.box_counts, strict=True)),
            "image_format": self.image_format,
            "contract_version": contract.CONTRACT_VERSION,
        }
        # A previous attempt of this shard is replaced, but only once this one is fully written.
        replace_folder(self.temp_dir, self.final_dir)
        marker_temp = self.final_dir / (contract.SHARD_COMPLETE_MARKER + ".tmp")
        marker_temp.write_text(json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8")
        marker_temp.rename(self.final_dir / contract.SHARD_COMPLETE_MARKER)
        return self.final_dir

    def abort(self) -> None:
        """Drop everything written so far; the shard stays absent."""
        self._closed = True
        for future in self._pending:
            future.cancel()
        self._executor.shutdown(wait=True)
        self._pending = []
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._closed:
            self.abort()


# --------------------------------------------------------------------------------------------------------
# finalize
# --------------------------------------------------------------------------------------------------------
def read_shard_marker(shard_dir: Path) -> dict[str, Any]:
    """The marker's metadata; ShardIncompleteError if the shard is absent or was never committed."""
    marker = Path(shard_dir) / contract.SHARD_COMPLETE_MARKER
    if not Path(shard_dir).is_dir():
        raise ShardIncompleteError(f"shard {shard_dir}: missing")
    if not marker.is_file():
        raise ShardIncompleteError(f"shard {shard_dir}: incomplete (no {contract.SHARD_COMPLETE_MARKER}; rerun it)")
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ShardIncompleteError(f"shard {shard_dir}: unreadable {contract.SHARD_COMPLETE_MARKER} ({err})") from err
    if not isinstance(data, dict):
        raise ShardIncompleteError(f"shard {shard_dir}: {contract.SHARD_COMPLETE_MARKER} is not a JSON object")
    return data


def split_frames(frames: Sequence[int], *, seed: int, val_fraction: float) -> dict[int, str]:
    """Deterministic train/val split (see SPLIT_RULE): frame -> split; at least one val frame when n >= 2."""

    def rank(frame: int) -> str:
        return hashlib.sha256(f"{seed}:{frame}".encode()).hexdigest()

    ordered = sorted(frames, key=rank)
    n_val = round(len(ordered) * val_fraction)
    if val_fraction > 0 and len(ordered) >= 2:
        n_val = min(max(n_val, 1), len(ordered) - 1)
    val = set(ordered[:n_val])
    return {frame: contract.VAL_SPLIT if frame in val else contract.TRAIN_SPLIT for frame in frames}


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _class_counts(label_file: Path, counts: list[int]) -> int:
    boxes = 0
    for line in label_file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            counts[int(line.split()[0])] += 1
            boxes += 1
    return boxes


def _prepare_out_dir(out_dir: Path) -> None:
    is_previous_dataset = (out_dir / contract.DATASET_MANIFEST_NAME).is_file()
    if out_dir.exists() and any(out_dir.iterdir()) and not is_previous_dataset:
        raise DatasetExistsError(
            f"{out_dir} is not empty and is not a dataset written by finalize; choose another output folder"
        )


def finalize(
    shard_dirs: Sequence[Path],
    out_dir: Path,
    *,
    expected_shards: int | None = None,
    val_fraction: float | None = None,
    extra_manifest: dict[str, Any] | None = None,
    preview_frames: int = 16,
) -> dict[str, Any]:
    """Merge complete shards into a YOLO dataset at ``out_dir``; returns the manifest (written last).

    Every shard must carry its marker and agree on classes, spec and shard count; with ``expected_shards``
    every index 0..N-1 must be present. The dataset is assembled in a temporary sibling and renamed into
    place, so ``out_dir`` holds a whole dataset or the previous one. ``val_fraction`` defaults to the shards'
    spec. Shard files are hard-linked (copied across file systems), never moved: shards stay reusable.
    With ``preview_frames`` > 0 a preview grid (preview.PREVIEW_NAME) of that many frames is drawn first.
    """
    out_dir = Path(out_dir)
    markers: dict[int, tuple[Path, dict[str, Any]]] = {}
    problems: list[str] = []
    for shard_dir in sorted(Path(d) for d in shard_dirs):
        try:
            marker = read_shard_marker(shard_dir)
        except ShardIncompleteError as err:
            problems.append(str(err))
            continue
        markers[int(marker["shard"])] = (shard_dir, marker)
    if markers:
        total = expected_shards if expected_shards is not None else int(next(iter(markers.values()))[1]["shards"])
        for index in range(total):
            if index not in markers:
                problems.append(f"shard {contract.shard_name(index)}: missing (expected {total} shards)")
    elif not problems:
        problems.append("no shards given")
    if problems:
        raise ShardIncompleteError("cannot finalize: " + "; ".join(sorted(set(problems))))

    ordered = [markers[k] for k in sorted(markers)]
    first = ordered[0][1]
    for shard_dir, marker in ordered[1:]:
        for key in ("class_names", "spec", "shards", "image_format", contract.MANIFEST_TRAINING_FIELD):
            if marker.get(key) != first.get(key):
                raise ShardIncompleteError(f"shard {shard_dir}: its {key} differs from shard {ordered[0][0]}'s")
    class_names: list[str] = list(first["class_names"])
    spec = first.get("spec", {})
    seed = int(spec.get("seed", 0))
    if val_fraction is None:
        val_fraction = float(spec.get("val_fraction", 0.2))
    extension = IMAGE_EXTENSIONS[first.get("image_format", "jpg")]

    frame_sources: dict[int, Path] = {}
    for shard_dir, marker in ordered:
        for frame in marker["frames"]:
            if frame in frame_sources:
                raise ShardIncompleteError(f"frame {frame} appears in both {frame_sources[frame]} and {shard_dir}")
            frame_sources[frame] = shard_dir
    splits = split_frames(sorted(frame_sources), seed=seed, val_fraction=val_fraction)

    _prepare_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        for split in contract.SPLITS:
            (build / contract.IMAGES_DIR / split).mkdir(parents=True)
            (build / contract.LABELS_DIR / split).mkdir(parents=True)
        per_class = {split: [0] * len(class_names) for split in contract.SPLITS}
        images: dict[str, int] = dict.fromkeys(contract.SPLITS, 0)
        boxes: dict[str, int] = dict.fromkeys(contract.SPLITS, 0)
        for frame in sorted(frame_sources):
            shard_dir, split, stem = frame_sources[frame], splits[frame], frame_stem(frame)
            image_src = shard_dir / contract.IMAGES_DIR / (stem + extension)
            label_src = shard_dir / contract.LABELS_DIR / (stem + ".txt")
            if not image_src.is_file() or not label_src.is_file():
                raise ShardIncompleteError(f"shard {shard_dir}: frame {stem} lacks its image or label file")
            _link_or_copy(image_src, build / contract.IMAGES_DIR / split / image_src.name)
            _link_or_copy(label_src, build / contract.LABELS_DIR / split / label_src.name)
            images[split] += 1
            boxes[split] += _class_counts(label_src, per_class[split])

        data_yaml = contract.data_yaml_text(class_names)
        (build / contract.DATA_YAML_NAME).write_text(data_yaml, encoding="utf-8")
        preview_name = None
        if preview_frames > 0 and sum(images.values()) > 0:
            from isaac_jobs.preview import write_preview

            preview_name = write_preview(build, class_names, count=preview_frames).name
        manifest = {
            "schema_version": contract.MANIFEST_SCHEMA_VERSION,
            "contract_version": contract.CONTRACT_VERSION,
            "class_names": class_names,
            "counts": {
                split: {
                    "images": images[split],
                    "boxes": boxes[split],
                    "per_class": dict(zip(class_names, per_class[split], strict=True)),
                }
                for split in contract.SPLITS
            },
            "totals": {"images": sum(images.values()), "boxes": sum(boxes.values())},
            "seeds": {"seed": seed, "frame_rule": "each frame drawn from a generator seeded with (seed, frame)"},
            "split": {"val_fraction": val_fraction, "rule": SPLIT_RULE},
            "renderer": first.get("renderer", {}),
            "source_meshes": first.get("source_meshes", []),
            "mesh_errors": first.get("mesh_errors", []),
            # The USD assets every shard rendered (with hashes) and batch.yaml's training: section, which the
            # training launcher lays over its defaults; both come from the prepared batch plan.
            "assets": first.get("assets"),
            contract.MANIFEST_TRAINING_FIELD: first.get(contract.MANIFEST_TRAINING_FIELD) or {},
            "spec": spec,
            "image_format": first.get("image_format", "jpg"),
            "preview": preview_name,
            "shards": [
                {
                    "name": contract.shard_name(k),
                    "frames": len(marker["frames"]),
                    "renderer": marker.get("renderer", {}),
                }
                for k, (_, marker) in sorted(markers.items())
            ],
            **(extra_manifest or {}),
        }
        # Manifest last: its appearance is what tells consumers (the training trigger) the dataset is whole.
        (build / contract.DATASET_MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        replace_folder(build, out_dir)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return manifest


def shard_dirs_in(folder: Path) -> list[Path]:
    """Shard folders (``shard-KKKK``) directly under ``folder``, complete or not (hidden temp dirs excluded)."""
    prefix = contract.shard_name(0)[: -len("0000")]
    return sorted(p for p in Path(folder).iterdir() if p.is_dir() and p.name.startswith(prefix))
