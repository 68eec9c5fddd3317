"""The fixed-shape detection loss the CUDA graph holds equals Ultralytics' own (checked on the CPU).

Same model, same images, same labels: Ultralytics' ``v8DetectionLoss`` on its own padding (the batch's most
boxes in one image) against :class:`StaticShapeDetectionLoss` on targets padded to a fixed count. Losses,
parameter gradients and the assignment itself must agree, including images without boxes, padding that is
exactly full, anchors claimed by two boxes, a batch without any box, and a model without DFL (``reg_max: 1``,
where Ultralytics' loss takes L1 distances of the box sides). Ultralytics runs in a child process
(static_loss_child.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

CASES = ("mixed_counts", "tight_padding", "overlapping_boxes", "no_boxes", "l1_box_sides")


@pytest.fixture(scope="module")
def child(child_script: Callable[..., dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return child_script("static_loss_child.py", tmp_path_factory.mktemp("static-loss"))


@pytest.mark.parametrize("case", CASES)
def test_the_fixed_shape_loss_equals_ultralytics_loss(child: dict[str, Any], case: str) -> None:
    result = child["cases"][case]
    # Only the float summation order differs (masked sums over every anchor vs sums over gathered anchors).
    assert result["our_loss"] == pytest.approx(result["their_loss"], rel=1e-5, abs=1e-6)
    assert result["gradient_difference"] < 1e-4 and result["gradient_scale"] > 0


@pytest.mark.parametrize("case", CASES)
def test_the_dense_assigner_assigns_as_ultralytics_assigner(child: dict[str, Any], case: str) -> None:
    result = child["cases"][case]
    assert result["same_foreground"]
    assert result["target_box_difference"] < 1e-4 and result["target_score_difference"] < 1e-5


def test_the_cases_cover_what_could_differ(child: dict[str, Any]) -> None:
    cases = child["cases"]
    assert cases["mixed_counts"]["our_padding"] > cases["mixed_counts"]["their_padding"]  # extra masked rows
    assert cases["tight_padding"]["our_padding"] == cases["tight_padding"]["their_padding"]
    assert cases["overlapping_boxes"]["claimed_twice"] > 0  # the highest-overlap tie-break runs
    assert cases["no_boxes"]["foreground_anchors"] == 0 and cases["no_boxes"]["their_padding"] == 0
    assert all(cases[case]["foreground_anchors"] > 0 for case in CASES if case != "no_boxes")
    assert not cases["l1_box_sides"]["uses_dfl"]  # the L1 branch of the box-side loss
    assert all(cases[case]["uses_dfl"] for case in CASES if case != "l1_box_sides")


def test_targets_are_padded_per_image_in_order(child: dict[str, Any]) -> None:
    pad = child["pad"]
    assert pad["shape"] == [3, 3, 5]
    first, empty, third = pad["rows"]
    assert [row[0] for row in first] == [0.0, 1.0, 0.0] and first[2] == [0.0] * 5  # class, then x y w h
    assert first[1][1:] == pytest.approx([0.2, 0.25, 0.3, 0.35])
    assert empty == [[0.0] * 5] * 3
    assert [row[0] for row in third] == [2.0, 3.0, 4.0]
    assert pad["over_capacity"]  # an image with more boxes than slots: no padded targets (Ultralytics' loss runs)


def test_the_padding_holds_what_augmentation_can_put_in_one_image(child: dict[str, Any]) -> None:
    slots = child["slots"]
    assert slots["mosaic"] == 16  # four sources of at most 4 boxes
    assert slots["no_mosaic"] == 4
    assert slots["crowded"] == slots["cap"] == 64
    assert slots["no_labels"] == 1


def test_the_fixed_shape_loss_makes_no_host_round_trip(child: dict[str, Any]) -> None:
    # What a CUDA graph cannot hold (a copy from host memory, a wait for the GPU) raises on the CPU here, so a
    # change that brings one back fails on CI rather than as "could not be captured" on a GPU.
    assert child["host_round_trip"] is None
    assert child["ultralytics_host_round_trip"] is not None  # Ultralytics' own loss makes them: the check can tell
