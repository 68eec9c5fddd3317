"""The ONNX Runtime detector shared by the server and the evaluation: letterbox, infer, NMS, rescale.

Pre- and post-processing follow Ultralytics' predictor (letterbox to the static export size with grey 114
padding, linear resize, RGB 0-1 input; class-aware NMS on boxes scaled back to original pixels), so a
detection here matches ``YOLO(model.pt).predict`` on the same image.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sim2cloud import contract

PAD_VALUE = 114
"""Letterbox padding grey (Ultralytics' value)."""
MAX_NMS_CANDIDATES = 30000
"""Boxes above the confidence threshold kept for NMS (highest first), as Ultralytics does."""
CLASS_OFFSET = 7680.0
"""Per-class coordinate offset that turns one NMS pass into class-aware NMS (larger than any image side)."""


DECODABLE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
"""Raster formats a request may carry; PIL's other plugins (EPS runs Ghostscript, ...) are never tried."""


class ImageDecodeError(ValueError):
    """The bytes are not a complete image PIL can decode."""


class ImageTooLargeError(ImageDecodeError):
    """The image declares more pixels than the limit allows (refused before its pixel data is decoded)."""


@dataclass(frozen=True)
class Thresholds:
    """Detection thresholds; defaults are Ultralytics' predict defaults so results agree with it."""

    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    multi_label: bool = False
    """Each box once per class scoring above ``conf`` (Ultralytics' val) instead of once, with its best class
    (its predict). mAP is measured with it: a box's second class adds a point to the low-confidence tail."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"conf={self.conf} must be within [0, 1]")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"iou={self.iou} must be within (0, 1]")
        if not 1 <= self.max_det <= 10000:
            raise ValueError(f"max_det={self.max_det} must be within [1, 10000]")


@dataclass(frozen=True)
class Detection:
    class_id: int
    class_name: str
    confidence: float
    box: tuple[float, float, float, float]
    """x1, y1, x2, y2 in original-image pixels."""

    def to_json(self) -> dict[str, Any]:
        return {
            "class_id": self.class_id,
            "class_name": self.class_name,
            "confidence": round(self.confidence, 5),
            "box": [round(v, 2) for v in self.box],
        }


def decode_image(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """RGB uint8 HxWx3 array from encoded bytes; truncated or malformed data raises ImageDecodeError, an image
    whose header declares more than ``max_pixels`` raises ImageTooLargeError before anything is decompressed."""
    try:
        with Image.open(io.BytesIO(data), formats=DECODABLE_FORMATS) as image:  # reads the header only
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageTooLargeError(
                    f"declares {width}x{height} = {width * height} pixels, above the limit of {max_pixels}"
                )
            image.load()
            rgb = image.convert("RGB")
    except ImageDecodeError:
        raise
    except Image.UnidentifiedImageError as error:
        # PIL's message names an in-memory buffer object; say what the client can act on.
        raise ImageDecodeError(f"not a decodable image ({len(data)} bytes in no known image format)") from error
    except Image.DecompressionBombError as error:  # PIL's own guard, far above any sensible max_pixels
        raise ImageTooLargeError(str(error)) from error
    except Exception as error:  # PIL decoders fail in many ways (OSError, EOFError, struct.error, ...) on bad bytes
        raise ImageDecodeError(f"not a decodable image: {error}") from error
    return np.asarray(rgb)


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """(1x3xSxS float32 tensor, scale, (pad_x, pad_y)) the way Ultralytics' LetterBox(auto=False) does it."""
    import cv2

    height, width = rgb.shape[:2]
    scale = min(size / height, size / width)
    new_w, new_h = round(width * scale), round(height * scale)
    pad_w, pad_h = (size - new_w) / 2, (size - new_h) / 2
    resized = rgb if (new_w, new_h) == (width, height) else cv2.resize(rgb, (new_w, new_h), interpolation=1)
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    return tensor, scale, (left, top)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first; each step suppresses in one vectorized IoU pass."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        inter_w = (np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])).clip(0)
        inter_h = (np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])).clip(0)
        inter = inter_w * inter_h
        iou = inter / (areas[best] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def postprocess(
    output: np.ndarray, thresholds: Thresholds, scale: float, pad: tuple[float, float], image_size: tuple[int, int]
) -> list[tuple[int, float, tuple[float, float, float, float]]]:
    """(class id, confidence, box) from the raw ``1 x (4+nc) x anchors`` output, best first."""
    predictions = output[0].T  # anchors x (4 + nc): cx, cy, w, h, class scores
    class_scores = predictions[:, 4:]
    if thresholds.multi_label:
        anchors, class_ids = np.nonzero(class_scores > thresholds.conf)
        confidences = class_scores[anchors, class_ids]
    else:
        class_ids = class_scores.argmax(axis=1)
        confidences = class_scores[np.arange(len(class_ids)), class_ids]
        anchors = np.flatnonzero(confidences > thresholds.conf)
        class_ids, confidences = class_ids[anchors], confidences[anchors]
    if not len(anchors):
        return []
    boxes_cxcywh = predictions[anchors, :4]
    if len(confidences) > MAX_NMS_CANDIDATES:
        top = np.argsort(-confidences)[:MAX_NMS_CANDIDATES]
        boxes_cxcywh, confidences, class_ids = boxes_cxcywh[top], confidences[top], class_ids[top]
    half = boxes_cxcywh[:, 2:] / 2
    boxes = np.concatenate([boxes_cxcywh[:, :2] - half, boxes_cxcywh[:, :2] + half], axis=1)
    kept = nms(boxes + class_ids[:, None] * CLASS_OFFSET, confidences, thresholds.iou)[: thresholds.max_det]
    boxes = boxes[kept]
    boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - pad[0]) / scale).clip(0, image_size[0])
    boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - pad[1]) / scale).clip(0, image_size[1])
    return [
        (int(c), float(s), (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
        for c, s, b in zip(class_ids[kept], confidences[kept], boxes, strict=True)
    ]


def default_intra_op_threads(workers: int, cores: int | None = None) -> int:
    """ONNX Runtime threads per worker: the cores shared out among workers, but at least two.

    An even share alone (one thread each with one worker per core) leaves a lone request on one core, about
    1.5x slower than the bare model on a 2-core host (bench/serving_latency.py); two threads let it use two
    cores while the pool is quiet, at worst oversubscribing 2x under full load (measured about 7% less
    throughput at concurrency 8 there). Spinning is off (OnnxDetector), so idle threads cost nothing.
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = max(1, cores // max(1, workers))
    return min(max(cores, 1), max(2, share))


class OnnxDetector:
    """One ONNX Runtime session over a model dir (model.onnx + model.json); create once per process."""

    def __init__(self, model_dir: Path, intra_op_threads: int | None = None) -> None:
        import onnxruntime as ort

        self.model_dir = model_dir
        self.card: dict[str, Any] = json.loads((model_dir / contract.MODEL_JSON_NAME).read_text())
        self.class_names: list[str] = list(self.card["class_names"])
        self.imgsz = int(self.card["imgsz"])
        self.version = str(self.card.get("model_version", "unknown"))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        # Idle ORT threads spin by default; with several workers on few cores that steals the others' CPU.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        if "CUDAExecutionProvider" in available and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA/cuDNN come from the nvidia-* wheels in the GPU image, not system paths
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.session = ort.InferenceSession(str(model_dir / contract.MODEL_ONNX_NAME), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.providers = self.session.get_providers()

    def detect(self, rgb: np.ndarray, thresholds: Thresholds | None = None) -> list[Detection]:
        thresholds = thresholds or Thresholds()
        tensor, scale, pad = letterbox(rgb, self.imgsz)
        (output,) = self.session.run(None, {self.input_name: tensor})
        height, width = rgb.shape[:2]
        return [
            Detection(class_id, self._name(class_id), confidence, box)
            for class_id, confidence, box in postprocess(output, thresholds, scale, pad, (width, height))
        ]

    def _name(self, class_id: int) -> str:
        return self.class_names[class_id] if class_id < len(self.class_names) else str(class_id)


@contextmanager
def opened_model(path: Path) -> Iterator[Path]:
    """``resolve_model_dir`` for the lifetime of a with-block; an extracted archive is removed afterwards."""
    model_dir = resolve_model_dir(path)
    extracted = path.is_file() and path.suffix != ".onnx"  # only an archive is unpacked into a temp dir
    owner_pid = os.getpid()
    try:
        yield model_dir
    finally:
        # Server workers forked inside the block leave it too (SystemExit); only the process that extracted cleans up.
        if extracted and os.getpid() == owner_pid:
            shutil.rmtree(model_dir, ignore_errors=True)


def resolve_model_dir(path: Path, extract_root: Path | None = None) -> Path:
    """A model dir from ``path``: the dir itself, the ``model/`` dir of a training output folder (``sim2cloud
    train --out``), the dir of a ``model.onnx`` file, or a model.tar.gz extracted into a fresh temp dir."""
    if path.is_file() and path.suffix == ".onnx":
        path = path.parent
    elif path.is_dir() and not (path / contract.MODEL_ONNX_NAME).exists():
        training_model_dir = Path(contract.SageMakerPaths(base=str(path)).model_dir)
        path = training_model_dir if training_model_dir.is_dir() else path
    if path.is_dir():
        missing = [n for n in (contract.MODEL_ONNX_NAME, contract.MODEL_JSON_NAME) if not (path / n).is_file()]
        if missing:
            raise FileNotFoundError(f"model dir {path} lacks {', '.join(missing)}")
        return path
    if path.is_file() and tarfile.is_tarfile(path):
        target = Path(tempfile.mkdtemp(prefix="sim2cloud-model-", dir=extract_root))
        with tarfile.open(path) as archive:
            archive.extractall(target, filter="data")  # 'data' refuses links and paths escaping the target
        target.chmod(0o755)  # mkdtemp makes it owner-only; workers may run as another (unprivileged) user
        return resolve_model_dir(target)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    raise FileNotFoundError(
        f"{path} is neither a model dir ({contract.MODEL_ONNX_NAME} + {contract.MODEL_JSON_NAME}), "
        f"a {contract.MODEL_ONNX_NAME} nor a {contract.MODEL_ARCHIVE_NAME}"
    )
