"""Ultralytics' detection loss vs the fixed-shape loss, for test_static_loss.py, in a child process printing one
JSON line (gpu_augment_child.py says why Ultralytics runs in a child).

    python static_loss_child.py WORK_DIR -> {"cases": {...}, "pad": {...}, "slots": {...}}
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sim2cloud.training import offline

IMGSZ, CLASSES = 128, 4


def _targets(counts: list[int], seed: int, overlapping: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = np.concatenate([[i] * count for i, count in enumerate(counts)]).astype(np.float32)
    rows = image.size
    centres = rng.uniform(0.2, 0.8, (rows, 2))
    sizes = rng.uniform(0.08, 0.5, (rows, 2))
    if overlapping and rows > 1:  # a near copy of each box: anchors inside both are claimed twice
        centres[1::2] = centres[0::2][: rows // 2] + 0.01
        sizes[1::2] = sizes[0::2][: rows // 2]
    return {
        "batch_idx": image,
        "cls": rng.integers(0, CLASSES, (rows, 1)).astype(np.float32),
        "bboxes": np.concatenate((centres, sizes), 1).astype(np.float32),
    }


def _case(model: Any, counts: list[int], slots: int, seed: int, overlapping: bool = False) -> dict[str, Any]:
    import torch

    from sim2cloud.training import static_loss

    torch.manual_seed(seed)
    images = torch.rand(len(counts), 3, IMGSZ, IMGSZ)
    targets = _targets(counts, seed, overlapping)
    batch = {key: torch.from_numpy(value) for key, value in targets.items()}
    parameters = [p for p in model.parameters() if p.requires_grad]
    criterion = model.init_criterion()

    theirs, _ = criterion(model.predict(images), batch)
    their_gradients = torch.autograd.grad(theirs.sum(), parameters)

    padded = static_loss.pad_targets(targets["batch_idx"], targets["cls"], targets["bboxes"], len(counts), slots)
    assert padded is not None
    loss = static_loss.StaticShapeDetectionLoss(criterion)
    ours = loss(model.predict(images), torch.from_numpy(padded))
    ours = ours * len(counts)  # as Ultralytics' loss returns it
    our_gradients = torch.autograd.grad(ours.sum(), parameters)

    # The assignment itself, on the same predictions: Ultralytics' targets padded its way and ours.
    with torch.no_grad():
        preds = criterion.parse_output(model.predict(images))
        scores = preds["scores"].permute(0, 2, 1).sigmoid()
        anchors, strides = static_loss.make_anchors(preds["feats"], criterion.stride, 0.5)
        boxes = criterion.bbox_decode(anchors, preds["boxes"].permute(0, 2, 1)) * strides
        scale = torch.tensor([IMGSZ] * 4, dtype=torch.float32)
        their_targets = criterion.preprocess(
            torch.cat((batch["batch_idx"][:, None], batch["cls"], batch["bboxes"]), 1), len(counts), scale
        )
        our_targets = torch.from_numpy(padded)
        our_targets = torch.cat((our_targets[..., :1], static_loss.xywh2xyxy(our_targets[..., 1:] * scale)), -1)
        assigned = []
        for assigner, gt in (
            (criterion.assigner, their_targets),
            (loss.assigner, our_targets),
        ):
            mask = gt[..., 1:].sum(2, keepdim=True).gt_(0.0)
            assigned.append(assigner(scores, boxes, anchors * strides, gt[..., :1], gt[..., 1:], mask))
            if assigner is criterion.assigner:  # anchors that more than one box claims before the tie is resolved
                positive = assigner.get_pos_mask(scores, boxes, gt[..., :1], gt[..., 1:], anchors * strides, mask)[0]
                claimed_twice = int((positive.sum(-2) > 1).sum())
    (_, their_boxes, their_scores, their_fg, _), (_, our_boxes, our_scores, our_fg, _) = assigned

    def relative(a: Any, b: Any) -> float:
        return float((a - b).abs().max() / a.abs().max().clamp(min=1e-12))

    return {
        "their_loss": theirs.tolist(),
        "our_loss": ours.tolist(),
        "gradient_difference": max(relative(a, b) for a, b in zip(their_gradients, our_gradients, strict=True)),
        "gradient_scale": max(float(g.abs().max()) for g in their_gradients),
        "foreground_anchors": int(their_fg.sum()),
        "same_foreground": bool(torch.equal(their_fg, our_fg)),
        "target_box_difference": float(((their_boxes - our_boxes) * their_fg[..., None]).abs().max()),
        "target_score_difference": float((their_scores - our_scores).abs().max()),
        "claimed_twice": claimed_twice,
        "uses_dfl": bool(criterion.use_dfl),
        "their_padding": int(their_targets.shape[1]),
        "our_padding": slots,
    }


@contextlib.contextmanager
def _host_round_trips_refused() -> Iterator[None]:
    """Operations that, on a GPU, copy from host memory or wait for the GPU raise inside this block: the calls a
    CUDA graph cannot hold, caught on the CPU (where they would go unnoticed)."""
    import torch

    def refuse(name: str, original: Any, allowed: Any = None) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            if allowed is not None and allowed(*args, **kwargs):
                return original(*args, **kwargs)
            raise AssertionError(f"{name} inside the graphed loss")

        return refused

    patches = {
        (torch, "tensor"): None,
        (torch, "as_tensor"): None,
        (torch, "arange"): lambda *a, **k: "device" in k,  # made on the host unless given a device
        (torch, "nonzero"): None,
        (torch, "unique"): None,
        (torch.Tensor, "item"): None,
        (torch.Tensor, "tolist"): None,
        (torch.Tensor, "nonzero"): None,
        (torch.Tensor, "__bool__"): None,
    }
    saved = {key: getattr(*key) for key in patches}
    try:
        for (owner, name), allowed in patches.items():
            setattr(owner, name, refuse(name, saved[(owner, name)], allowed))
        yield
    finally:
        for (owner, name), original in saved.items():
            setattr(owner, name, original)


def _graphable(model: Any) -> str | None:
    """None when the fixed-shape loss, forward and backward, makes no host round trip once its constants exist;
    else what it made."""
    import torch

    from sim2cloud.training import static_loss

    loss = static_loss.StaticShapeDetectionLoss(model.init_criterion())
    targets = _targets([2, 0, 3], seed=5)
    padded = torch.from_numpy(static_loss.pad_targets(targets["batch_idx"], targets["cls"], targets["bboxes"], 3, 8))
    images = torch.rand(3, 3, IMGSZ, IMGSZ)
    loss(model.predict(images), padded)  # the first call makes the constants, outside any graph
    preds = model.predict(images)
    try:
        with _host_round_trips_refused():
            loss(preds, padded).sum().backward()
    except AssertionError as error:
        return str(error)
    return None


def _ultralytics_graphable(model: Any) -> str | None:
    """The same check on Ultralytics' own loss: it must fail it (else the check proves nothing)."""
    import torch

    criterion = model.init_criterion()
    batch = {key: torch.from_numpy(value) for key, value in _targets([2, 0, 3], seed=5).items()}
    images = torch.rand(3, 3, IMGSZ, IMGSZ)
    criterion(model.predict(images), batch)
    preds = model.predict(images)
    try:
        with _host_round_trips_refused():
            criterion(preds, batch)[0].sum().backward()
    except AssertionError as error:
        return str(error)
    return None


def main(work: Path) -> dict[str, Any]:
    offline.prepare_offline_ultralytics(work / "config")
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    from sim2cloud.training import static_loss

    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=CLASSES, verbose=False)
    model.args = get_cfg()  # the loss reads its gains from the model's args
    model.train()
    without_dfl = yaml_model_load("yolov8n.yaml")
    without_dfl["reg_max"] = 1  # one bin per side: an L1 box-side loss replaces DFL
    l1_model = DetectionModel(without_dfl, nc=CLASSES, verbose=False)
    l1_model.args = get_cfg()
    l1_model.train()
    cases = {
        "mixed_counts": _case(model, [3, 0, 5, 1, 2, 4], slots=20, seed=1),
        "tight_padding": _case(model, [2, 4, 4, 1], slots=4, seed=2),
        "overlapping_boxes": _case(model, [6, 4, 2], slots=12, seed=3, overlapping=True),
        "no_boxes": _case(model, [0, 0, 0], slots=8, seed=4),
        "l1_box_sides": _case(l1_model, [3, 0, 5, 1], slots=8, seed=7),
    }
    image = np.array([0, 0, 2, 2, 2], dtype=np.float32)
    cls = np.arange(5, dtype=np.float32)[:, None]
    boxes = np.arange(20, dtype=np.float32).reshape(5, 4) / 20
    padded = static_loss.pad_targets(image, cls, boxes, 3, 3)
    assert padded is not None
    return {
        "cases": cases,
        "host_round_trip": _graphable(model),
        "ultralytics_host_round_trip": _ultralytics_graphable(model),
        "pad": {
            "shape": list(padded.shape),
            "rows": padded.tolist(),
            "over_capacity": static_loss.pad_targets(image, cls, boxes, 3, 2) is None,
        },
        "slots": {
            "mosaic": static_loss.box_slots([1, 4, 2], mosaic=True),
            "no_mosaic": static_loss.box_slots([1, 4, 2], mosaic=False),
            "crowded": static_loss.box_slots([1, 40], mosaic=True),
            "no_labels": static_loss.box_slots([0, 0], mosaic=True),
            "cap": static_loss.MAX_BOX_SLOTS,
        },
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))), flush=True)
