from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sim2cloud.evaluation.metrics import (
    ImagePredictions,
    ImageTruth,
    average_precision,
    box_iou,
    evaluate,
    match_image,
)

PERFECT = 0.995
"""Ultralytics' AP of a perfect result: the trapezoid's last step falls to the precision-0 sentinel at recall 1."""
HALF_RECALL = 0.495
"""Precision 1 up to recall 0.5, nothing after: half of PERFECT."""

TRUTH = [
    ImageTruth(np.array([[10, 10, 50, 50], [60, 60, 100, 90]], float), np.array([0, 1])),
    ImageTruth(np.array([[0, 0, 30, 30]], float), np.array([0])),
]


def _predictions(boxes: list[list[list[float]]], classes: list[list[int]], scores: list[list[float]]):
    return [
        ImagePredictions(np.array(b, float).reshape(-1, 4), np.array(c, int), np.array(s, float))
        for b, c, s in zip(boxes, classes, scores, strict=True)
    ]


def test_iou_of_hand_made_boxes() -> None:
    iou = box_iou(
        np.array([[0, 0, 10, 10]], float), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    )
    assert iou[0] == pytest.approx([1.0, 50 / 150, 0.0])


def test_perfect_predictions_score_one() -> None:
    predictions = _predictions(
        [t.boxes.tolist() for t in TRUTH], [t.classes.tolist() for t in TRUTH], [[0.9, 0.8], [0.7]]
    )
    result = evaluate(TRUTH, predictions, n_classes=2)
    assert result.map50 == pytest.approx(PERFECT)
    assert result.map50_95 == pytest.approx(PERFECT)
    assert result.per_class[1].ground_truth == 1


def test_no_predictions_score_zero() -> None:
    result = evaluate(TRUTH, _predictions([[], []], [[], []], [[], []]), n_classes=2)
    assert result.map50 == 0.0
    assert result.map50_95 == 0.0


def test_wrong_class_is_not_a_match() -> None:
    predictions = _predictions([t.boxes.tolist() for t in TRUTH], [[1, 0], [1]], [[0.9, 0.8], [0.7]])
    assert evaluate(TRUTH, predictions, n_classes=2).map50 == 0.0


def test_half_recall_gives_half_ap() -> None:
    # Class 0 has two boxes; only one is found (class 1 found perfectly): precision 1 up to recall 0.5.
    predictions = _predictions(
        [[TRUTH[0].boxes[0].tolist(), TRUTH[0].boxes[1].tolist()], []], [[0, 1], []], [[0.9, 0.8], []]
    )
    result = evaluate(TRUTH, predictions, n_classes=2)
    assert result.per_class[0].ap50 == pytest.approx(HALF_RECALL)
    assert result.per_class[1].ap50 == pytest.approx(PERFECT)
    assert result.map50 == pytest.approx((HALF_RECALL + PERFECT) / 2)


def test_shifted_box_counts_only_at_low_iou_thresholds() -> None:
    # A 40x40 box shifted by 4 px: IoU = 36*40/(2*1600-36*40) = 0.818 -> a hit at 0.50..0.80 (7 of 10 thresholds).
    truth = [ImageTruth(np.array([[0, 0, 40, 40]], float), np.array([0]))]
    predictions = _predictions([[[4, 0, 44, 40]]], [[0]], [[0.9]])
    result = evaluate(truth, predictions, n_classes=1)
    assert result.map50 == pytest.approx(PERFECT)
    assert result.map50_95 == pytest.approx(0.7 * PERFECT)


def test_a_confident_false_positive_lowers_precision() -> None:
    truth = [ImageTruth(np.array([[0, 0, 40, 40]], float), np.array([0]))]
    predictions = _predictions([[[50, 50, 90, 90], [0, 0, 40, 40]]], [[0, 0]], [[0.95, 0.5]])
    # The true positive arrives second: precision 0.5 up to recall 1.0 -> AP 0.5 less the last half-step.
    assert evaluate(truth, predictions, n_classes=1).map50 == pytest.approx(0.4975)


def test_duplicate_detections_are_false_positives() -> None:
    truth = [ImageTruth(np.array([[0, 0, 40, 40]], float), np.array([0]))]
    predictions = _predictions([[[0, 0, 40, 40], [0, 0, 40, 40]]], [[0, 0]], [[0.9, 0.8]])
    assert evaluate(truth, predictions, n_classes=1).map50 == pytest.approx(PERFECT)  # recall reached before the FP


def test_classes_without_ground_truth_are_left_out() -> None:
    truth = [ImageTruth(np.array([[0, 0, 40, 40]], float), np.array([0]))]
    predictions = _predictions([[[0, 0, 40, 40]]], [[0]], [[0.9]])
    result = evaluate(truth, predictions, n_classes=3)
    assert set(result.per_class) == {0}
    assert result.map50 == pytest.approx(PERFECT)


def test_one_ground_truth_box_is_matched_at_most_once() -> None:
    # Two boxes of class 0; two confident detections both on the first one and none on the second. The second
    # detection is a false positive: recall stops at 0.5, it must not count the box twice (AP of a perfect result).
    truth = [ImageTruth(np.array([[0, 0, 40, 40], [60, 60, 100, 100]], float), np.array([0, 0]))]
    predictions = _predictions([[[0, 0, 40, 40], [1, 0, 41, 40]]], [[0, 0]], [[0.9, 0.8]])
    scores, tp = match_image(truth[0], predictions[0], class_id=0)
    assert scores.tolist() == [0.9, 0.8]
    assert tp[:, 0].tolist() == [True, False]
    result = evaluate(truth, predictions, n_classes=1)
    assert result.map50 == pytest.approx(HALF_RECALL)
    assert result.per_class[0].predictions == 2 and result.per_class[0].ground_truth == 2


def test_a_match_just_over_half_overlap_counts_for_map50_only() -> None:
    # IoU 0.52: a hit at the 0.50 threshold (AP50 perfect) and at none of the nine stricter ones.
    truth = [ImageTruth(np.array([[0, 0, 100, 100]], float), np.array([0]))]
    predictions = _predictions([[[0, 0, 100, 52]]], [[0]], [[0.9]])
    result = evaluate(truth, predictions, n_classes=1)
    assert result.per_class[0].ap50 == pytest.approx(PERFECT)
    assert result.map50 == pytest.approx(PERFECT)
    assert result.map50_95 == pytest.approx(0.1 * PERFECT)


def test_a_class_without_ground_truth_does_not_end_the_evaluation() -> None:
    # Class 0 has no ground truth and comes first: classes after it are still evaluated.
    truth = [ImageTruth(np.array([[0, 0, 40, 40]], float), np.array([2]))]
    predictions = _predictions([[[0, 0, 40, 40], [50, 50, 60, 60]]], [[2, 0]], [[0.9, 0.8]])
    result = evaluate(truth, predictions, n_classes=3)
    assert set(result.per_class) == {2}
    assert result.map50 == pytest.approx(PERFECT)


def test_average_precision_without_ground_truth_is_undefined() -> None:
    aps = average_precision(np.zeros((0, 10), dtype=bool), np.zeros(0), n_truth=0)
    assert aps.shape == (10,)
    assert np.isnan(aps).all()


ULTRALYTICS_AP = """
import json, sys
import numpy as np
from ultralytics.utils.metrics import ap_per_class
cases = json.load(sys.stdin)
out = []
for case in cases:
    tp, scores, n_truth = np.array(case["tp"], bool), np.array(case["scores"]), case["n_truth"]
    out.append(ap_per_class(tp, scores, np.zeros(len(scores)), np.zeros(n_truth))[5][0].tolist())
print(json.dumps(out))
"""


def test_average_precision_equals_ultralytics_ap_per_class(ultralytics_child: Callable[[str, Any], Any]) -> None:
    # The one AP definition is Ultralytics' val: random match outcomes, scores and truth counts must give the
    # same per-threshold AP as ultralytics.utils.metrics.ap_per_class (in a child: torch stays out of this
    # process, tests/conftest.py says why).
    rng = np.random.default_rng(7)
    cases = []
    for _ in range(20):
        n_pred = int(rng.integers(1, 60))
        tp = rng.random((n_pred, 10)) < np.linspace(0.8, 0.1, 10)
        cases.append({"tp": tp.tolist(), "scores": rng.random(n_pred).tolist(), "n_truth": int(rng.integers(1, 30))})
    references = ultralytics_child(ULTRALYTICS_AP, cases)
    for case, reference in zip(cases, references, strict=True):
        ours = average_precision(np.array(case["tp"], bool), np.array(case["scores"]), case["n_truth"])
        assert ours == pytest.approx(reference, abs=1e-6)
