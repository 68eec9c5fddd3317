"""Average precision as Ultralytics' val defines it (``ultralytics.utils.metrics.ap_per_class``): the project's
one AP, used by the training job for the quality gate, by ``sim2cloud evaluate`` and by the run report.

Matching: per class and image, predictions in descending confidence each take the unclaimed ground-truth box
they overlap most, a hit when that IoU reaches the threshold (IoU 0.50, 0.55, ..., 0.95). AP: the precision
envelope over recall with sentinels (recall 0 -> precision 1, beyond the last recall -> 0), linearly
interpolated at 101 recall points and integrated with the trapezoid rule. (COCO's own tool instead averages the
envelope sampled at those points as a step function: slightly different numbers, the main cause of the gap
between an earlier version of this module and Ultralytics.) mAP averages over the classes that have ground
truth in the evaluated images; such a class with no prediction counts 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
METRIC_DEFINITION = (
    "AP as Ultralytics' val (greedy matching by confidence, 101-point interpolated, trapezoid-integrated), "
    "conf 0.001, NMS IoU 0.7, multi-label, max 300 detections per image"
)
"""One sentence the evaluation JSON, model.json and the report carry, so a reader knows what the number is."""


@dataclass(frozen=True)
class ImageTruth:
    boxes: np.ndarray
    """n x 4 (x1, y1, x2, y2) in pixels."""
    classes: np.ndarray
    """n class ids."""


@dataclass(frozen=True)
class ImagePredictions:
    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class ClassAP:
    ap50: float
    ap50_95: float
    ground_truth: int
    predictions: int


@dataclass(frozen=True)
class EvaluationResult:
    map50: float
    map50_95: float
    per_class: dict[int, ClassAP] = field(default_factory=dict)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """len(a) x len(b) IoU matrix of xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clip(0).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-12)


def match_image(truth: ImageTruth, predicted: ImagePredictions, class_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, true-positive matrix n_pred x n_thresholds) for one class in one image."""
    pred_mask = predicted.classes == class_id
    scores = predicted.scores[pred_mask]
    order = np.argsort(-scores, kind="stable")
    scores, pred_boxes = scores[order], predicted.boxes[pred_mask][order]
    truth_boxes = truth.boxes[truth.classes == class_id]
    tp = np.zeros((len(scores), len(IOU_THRESHOLDS)), dtype=bool)
    if len(scores) == 0 or len(truth_boxes) == 0:
        return scores, tp
    ious = box_iou(pred_boxes, truth_boxes)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(truth_boxes), dtype=bool)
        for p in range(len(scores)):
            candidates = np.where(~taken & (ious[p] >= threshold), ious[p], -1.0)
            best = int(candidates.argmax())
            if candidates[best] >= 0:
                taken[best] = True
                tp[p, t] = True
    return scores, tp


def average_precision(tp: np.ndarray, scores: np.ndarray, n_truth: int) -> np.ndarray:
    """AP per IoU threshold: the envelope's 101-point linear interpolation, trapezoid-integrated (Ultralytics)."""
    if n_truth == 0:
        return np.full(tp.shape[1], np.nan)
    if len(scores) == 0:
        return np.zeros(tp.shape[1])
    order = np.argsort(-scores, kind="stable")
    tp = tp[order]
    tp_cum = np.cumsum(tp, axis=0)
    fp_cum = np.cumsum(~tp, axis=0)
    recall = tp_cum / n_truth
    precision = tp_cum / (tp_cum + fp_cum)
    aps = np.zeros(tp.shape[1])
    for t in range(tp.shape[1]):
        last_recall = recall[-1, t]
        padded_recall = np.concatenate(([0.0], recall[:, t], [last_recall, 1.0]))
        padded_precision = np.concatenate(([1.0], precision[:, t], [0.0, 0.0]))
        envelope = np.maximum.accumulate(padded_precision[::-1])[::-1]  # best precision at recall >= r
        sampled = np.interp(RECALL_POINTS, padded_recall, envelope)
        aps[t] = float(np.sum((sampled[1:] + sampled[:-1]) / 2 * np.diff(RECALL_POINTS)))
    return aps


def evaluate(truths: list[ImageTruth], predictions: list[ImagePredictions], n_classes: int) -> EvaluationResult:
    """mAP50 and mAP50-95 overall and per class over paired images."""
    if len(truths) != len(predictions):
        raise ValueError(f"{len(truths)} ground-truth images but {len(predictions)} prediction sets")
    per_class: dict[int, ClassAP] = {}
    for class_id in range(n_classes):
        all_scores, all_tp, n_truth = [], [], 0
        for truth, predicted in zip(truths, predictions, strict=True):
            scores, tp = match_image(truth, predicted, class_id)
            all_scores.append(scores)
            all_tp.append(tp)
            n_truth += int((truth.classes == class_id).sum())
        scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
        tp = np.concatenate(all_tp) if all_tp else np.zeros((0, len(IOU_THRESHOLDS)), dtype=bool)
        if n_truth == 0:
            continue
        aps = average_precision(tp, scores, n_truth)
        per_class[class_id] = ClassAP(float(aps[0]), float(aps.mean()), n_truth, len(scores))
    if not per_class:
        return EvaluationResult(float("nan"), float("nan"), {})
    return EvaluationResult(
        map50=float(np.mean([c.ap50 for c in per_class.values()])),
        map50_95=float(np.mean([c.ap50_95 for c in per_class.values()])),
        per_class=per_class,
    )
