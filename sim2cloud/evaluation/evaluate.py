"""Evaluation on a dataset split through one of two predictors: the model file or a running endpoint.

Both predictors use the same thresholds as Ultralytics' validation (conf 0.001, iou 0.7, max_det 300,
multi-label NMS) and the endpoint receives the image file's bytes unchanged, so the two paths give the same mAP
for the same model; measuring through the endpoint checks what is actually deployed. This is the project's one
mAP: the training job measures the exported model.onnx with it for the quality gate (model.json's ``metrics``),
``sim2cloud evaluate`` and the run report show it, and it agrees with Ultralytics' val on the same model file
(tests/integration/test_train_serve_evaluate.py).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from sim2cloud import contract
from sim2cloud.evaluation.metrics import METRIC_DEFINITION, EvaluationResult, ImagePredictions, ImageTruth, evaluate
from sim2cloud.report.collect import GROUND_TRUTH_COLOUR, PREDICTION_PALETTE
from sim2cloud.serving.model import Thresholds, decode_image

EVAL_THRESHOLDS = Thresholds(conf=0.001, iou=0.7, max_det=300, multi_label=True)
"""mAP needs the low-confidence tail of the precision/recall curve; these match Ultralytics' val."""
ENDPOINT_TIMEOUT_SECONDS = 60
PICTURE_SAMPLES = 6
PICTURE_MIN_CONFIDENCE = 0.25
"""Detections drawn in the picture (the mAP itself uses everything above EVAL_THRESHOLDS.conf)."""
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}

Prediction = list[tuple[str, float, tuple[float, float, float, float]]]
"""(class name, confidence, x1 y1 x2 y2 pixels) per detection."""


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    truth: ImageTruth


def load_split(image_dir: Path, n_classes: int) -> list[LabelledImage]:
    """Images with their YOLO labels converted to pixel xyxy boxes."""
    items = []
    for path in sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp")):
        parts = list(path.parts)
        index = len(parts) - 1 - parts[::-1].index(contract.IMAGES_DIR)
        parts[index] = contract.LABELS_DIR
        label = Path(*parts).with_suffix(".txt")
        with Image.open(path) as image:
            width, height = image.size
        rows = np.loadtxt(label, ndmin=2) if label.is_file() and label.read_text().strip() else np.zeros((0, 5))
        classes = rows[:, 0].astype(int)
        cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        if np.any(classes >= n_classes):
            raise ValueError(f"{label}: class id out of range 0..{n_classes - 1}")
        items.append(LabelledImage(path, ImageTruth(boxes, classes)))
    return items


def model_predictor(model_path: Path) -> Callable[[Path], Prediction]:
    from sim2cloud.serving.model import OnnxDetector, resolve_model_dir

    detector = OnnxDetector(resolve_model_dir(model_path))

    def predict(path: Path) -> Prediction:
        detections = detector.detect(decode_image(path.read_bytes()), EVAL_THRESHOLDS)
        return [(d.class_name, d.confidence, d.box) for d in detections]

    return predict


def endpoint_predictor(url: str) -> Callable[[Path], Prediction]:
    target = url.rstrip("/") + contract.INVOCATIONS_PATH
    if not target.startswith(("http://", "https://")):
        raise ValueError(f"--endpoint {url!r} must be an http(s) URL")
    attributes = (
        f"conf={EVAL_THRESHOLDS.conf},iou={EVAL_THRESHOLDS.iou},max_det={EVAL_THRESHOLDS.max_det},"
        f"multi_label={int(EVAL_THRESHOLDS.multi_label)}"
    )

    def predict(path: Path) -> Prediction:
        content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/x-image")
        request = urllib.request.Request(  # noqa: S310  # scheme checked above
            target,
            data=path.read_bytes(),
            headers={"Content-Type": content_type, contract.CUSTOM_ATTRIBUTES_HEADER: attributes},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=ENDPOINT_TIMEOUT_SECONDS) as response:  # noqa: S310
            document = json.loads(response.read())
        (prediction,) = document["predictions"]
        return [(d["class_name"], float(d["confidence"]), tuple(d["box"])) for d in prediction["detections"]]

    return predict


def _as_arrays(prediction: Prediction, class_ids: dict[str, int]) -> ImagePredictions:
    known = [(class_ids[name], score, box) for name, score, box in prediction if name in class_ids]
    return ImagePredictions(
        boxes=np.array([k[2] for k in known], dtype=float).reshape(-1, 4),
        classes=np.array([k[0] for k in known], dtype=int),
        scores=np.array([k[1] for k in known], dtype=float),
    )


def result_document(result: EvaluationResult, class_names: list[str], source: str, images: int) -> dict[str, Any]:
    return {
        "source": source,
        "images": images,
        "mAP50": result.map50,
        "mAP50-95": result.map50_95,
        "per_class": {
            class_names[class_id]: {
                "class_id": class_id,
                "AP50": ap.ap50,
                "AP50-95": ap.ap50_95,
                "ground_truth": ap.ground_truth,
                "predictions": ap.predictions,
            }
            for class_id, ap in result.per_class.items()
        },
        "thresholds": {
            "conf": EVAL_THRESHOLDS.conf,
            "iou": EVAL_THRESHOLDS.iou,
            "max_det": EVAL_THRESHOLDS.max_det,
            "multi_label": EVAL_THRESHOLDS.multi_label,
        },
        "definition": METRIC_DEFINITION,
    }


def draw_samples(
    samples: list[tuple[LabelledImage, Prediction]], class_names: list[str], destination: Path, tile: int = 320
) -> None:
    """A grid of sample images: ground truth in thin white, detections in a colour per class with labels."""
    palette = PREDICTION_PALETTE
    font = ImageFont.load_default()  # bundled with Pillow: no font download
    columns = min(3, max(1, len(samples)))
    rows = (len(samples) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tile, max(1, rows) * tile), (30, 30, 30))
    for index, (item, prediction) in enumerate(samples):
        with Image.open(item.path) as opened:
            image = opened.convert("RGB")
        scale = tile / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        draw = ImageDraw.Draw(image)
        for box in item.truth.boxes:
            draw.rectangle([float(v) * scale for v in box], outline=GROUND_TRUTH_COLOUR, width=1)
        for name, score, box in prediction:
            if score < PICTURE_MIN_CONFIDENCE:
                continue
            colour = palette[class_names.index(name) % len(palette)] if name in class_names else (255, 255, 255)
            scaled = [float(v) * scale for v in box]
            draw.rectangle(scaled, outline=colour, width=2)
            draw.text((scaled[0] + 2, scaled[1] + 1), f"{name} {score:.2f}", fill=colour, font=font)
        sheet.paste(image, ((index % columns) * tile, (index // columns) * tile))
    destination.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(destination)


def run_evaluation(
    predictor: Callable[[Path], Prediction],
    image_dir: Path,
    class_names: list[str],
    source: str,
    out_dir: Path | None,
    progress: bool = True,
) -> dict[str, Any]:
    items = load_split(image_dir, len(class_names))
    if not items:
        raise ValueError(f"no images in {image_dir}")
    class_ids = {name: index for index, name in enumerate(class_names)}
    predictions: list[Prediction] = [
        predictor(item.path) for item in tqdm(items, desc="evaluating", unit="img", disable=not progress)
    ]
    result = evaluate([i.truth for i in items], [_as_arrays(p, class_ids) for p in predictions], len(class_names))
    document = result_document(result, class_names, source, len(items))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        picture = out_dir / contract.DETECTIONS_PICTURE_NAME
        draw_samples(list(zip(items, predictions, strict=True))[:PICTURE_SAMPLES], class_names, picture)
        document["picture"] = str(picture)
        (out_dir / contract.EVALUATION_JSON_NAME).write_text(json.dumps(document, indent=2))
    return document
