"""Multi-label NMS (what mAP is measured with, as Ultralytics' val) against the serving default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sim2cloud.serving.model import Thresholds, postprocess
from sim2cloud.serving.requests import ClientError, parse_thresholds


def _raw(anchors: list[tuple[float, float, float, float, list[float]]]) -> np.ndarray:
    """1 x (4 + nc) x anchors, as the exported model returns it (cx, cy, w, h, class scores)."""
    return np.array([[*box, *scores] for *box, scores in anchors], dtype=np.float32).T[None]


RAW = _raw(
    [
        (50, 50, 20, 20, [0.6, 0.3, 0.0005]),  # one box, two classes above conf 0.001
        (51, 50, 20, 20, [0.5, 0.0, 0.0]),  # overlaps the first in class 0: suppressed
        (10, 10, 8, 8, [0.0, 0.0, 0.2]),
    ]
)


def test_multi_label_keeps_every_class_above_conf_per_box() -> None:
    single = postprocess(RAW, Thresholds(conf=0.001), 1.0, (0, 0), (100, 100))
    multi = postprocess(RAW, Thresholds(conf=0.001, multi_label=True), 1.0, (0, 0), (100, 100))
    assert [(c, round(s, 3)) for c, s, _ in single] == [(0, 0.6), (2, 0.2)]
    assert [(c, round(s, 3)) for c, s, _ in multi] == [(0, 0.6), (1, 0.3), (2, 0.2)]
    assert multi[1][2] == pytest.approx(multi[0][2])  # the second label is the same box


def test_max_det_applies_after_multi_label() -> None:
    multi = postprocess(RAW, Thresholds(conf=0.001, max_det=2, multi_label=True), 1.0, (0, 0), (100, 100))
    assert [c for c, _, _ in multi] == [0, 1]


def test_the_attribute_header_turns_it_on_and_refuses_other_values() -> None:
    assert parse_thresholds("conf=0.001,multi_label=1").multi_label is True
    assert parse_thresholds("conf=0.001").multi_label is False
    with pytest.raises(ClientError, match="multi_label='yes' is not 0 or 1"):
        parse_thresholds("multi_label=yes")


ULTRALYTICS_NMS = """
import json, sys
import numpy as np, torch
from ultralytics.utils.nms import non_max_suppression
raw = np.array(json.load(sys.stdin), dtype=np.float32)
(kept,) = non_max_suppression(torch.from_numpy(raw), 0.001, 0.7, multi_label=True, max_det=300)
kept[:, :4] = kept[:, :4].clamp(0, 96)  # val clips boxes to the image when it scales them back (scale_boxes)
print(json.dumps(kept.numpy().tolist()))
"""


def test_multi_label_nms_equals_ultralytics_val_nms(ultralytics_child: Callable[[str, Any], Any]) -> None:
    # Ultralytics' val NMS (multi-label, conf 0.001, IoU 0.7, 300 detections) on a random raw output with
    # many overlapping, low-confidence boxes: the same boxes, classes and scores as ours (in a child process:
    # torch stays out of this one, tests/conftest.py says why).
    rng = np.random.default_rng(3)
    anchors, classes = 400, 3
    centres = rng.uniform(10, 86, size=(2, anchors))
    sizes = rng.uniform(4, 40, size=(2, anchors))
    scores = rng.uniform(0, 1, size=(classes, anchors)) ** 6  # mostly tiny, a few confident
    raw = np.concatenate([centres, sizes, scores])[None].astype(np.float32)
    theirs = sorted(
        (int(r[5]), round(r[4], 5), *(round(v, 2) for v in r[:4]))
        for r in ultralytics_child(ULTRALYTICS_NMS, raw.tolist())
    )
    ours = postprocess(raw, Thresholds(conf=0.001, iou=0.7, max_det=300, multi_label=True), 1.0, (0, 0), (96, 96))
    mine = sorted((c, round(s, 5), *(round(v, 2) for v in box)) for c, s, box in ours)
    assert len(mine) > 50  # a real workout: many labels kept, many suppressed
    assert mine == theirs
