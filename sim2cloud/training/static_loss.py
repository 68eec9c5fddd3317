"""Ultralytics' YOLOv8 detection loss with fixed shapes and no host synchronisation, so CUDA graphs can hold it.

Why: with the model's forward and backward replayed as a CUDA graph, an H200 step of YOLOv8n (batch 64, 640 px)
still took about 51 ms for about 40 ms of GPU kernels. The rest was the loss: its target assignment is several
hundred small kernels, each launched from Python, and three host synchronisations per step size tensors by
the batch's contents (the most boxes in an image, the anchors inside boxes, the foreground anchors), so the
CPU can never run ahead of the GPU. Here the same loss is written with every shape fixed in advance:

* targets arrive padded to a fixed number of boxes per image (:func:`pad_targets`, on the CPU, where the counts
  are known without asking the GPU); Ultralytics pads to the batch's own largest count, which only adds
  masked rows;
* the assigner scores every (box, anchor) pair and masks, instead of gathering the pairs inside boxes
  (:class:`DenseTaskAlignedAssigner`); the pairs' values are computed by the same functions;
* constants (anchor points, image size, gains) are made once, outside the graph: made per call, they are copies
  from host memory, which a graph cannot hold;
* the box and DFL losses are summed over all anchors with the non-foreground ones masked to zero, instead of
  gathering the foreground ones.

The values equal Ultralytics' ``v8DetectionLoss`` up to float summation order (``tests/unit/yolo/
test_static_loss.py`` compares losses, assignments and gradients on the CPU), so the graph trains the model as
Ultralytics' loss does. A batch with more boxes in one image than the padding holds runs Ultralytics' own loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.metrics import bbox_iou
from ultralytics.utils.ops import xywh2xyxy, xyxy2xywh
from ultralytics.utils.tal import TaskAlignedAssigner, bbox2dist, make_anchors

MAX_BOX_SLOTS = 64
"""Most boxes per image the padded targets hold. The assigner's tensors grow with it (batch x slots x anchors):
at batch 64 and 640 px, 64 slots are 34 M pairs per tensor, about 20 such tensors. A dataset whose bound is
larger pads to this many, and the rare batch above it runs Ultralytics' own loss."""
MOSAIC_TILES = 4
"""A mosaic image holds at most the boxes of its four source images (fewer once cropped)."""
TARGET_COLUMNS = 5
"""A padded target row: class, then the box as normalised x, y, w, h (Ultralytics' label layout); zeros pad."""


def box_slots(boxes_per_image: list[int], mosaic: bool) -> int:
    """Boxes per image the padded targets hold for a dataset: the most any training image can carry after
    augmentation (a mosaic: four sources), at least 1, at most :data:`MAX_BOX_SLOTS`."""
    most = max(boxes_per_image, default=0) * (MOSAIC_TILES if mosaic else 1)
    return int(min(max(most, 1), MAX_BOX_SLOTS))


def pad_targets(
    batch_idx: np.ndarray, cls: np.ndarray, bboxes: np.ndarray, images: int, slots: int
) -> np.ndarray | None:
    """float32 [images, slots, 5]: each image's targets in the order given, zero rows after; None when an image
    has more than ``slots`` boxes. Rows come grouped by image, as Ultralytics' collate concatenates them."""
    image = batch_idx.astype(np.int64).reshape(-1)
    counts = np.bincount(image, minlength=images)
    if counts.max(initial=0) > slots:
        return None
    padded = np.zeros((images, slots, TARGET_COLUMNS), dtype=np.float32)
    if image.size:
        first_row = np.concatenate(([0], np.cumsum(counts)[:-1]))
        within = np.arange(image.size) - first_row[image]
        padded[image, within, 0] = cls.reshape(-1)
        padded[image, within, 1:] = bboxes.reshape(-1, 4)
    return padded


@dataclass(frozen=True)
class _Constants:
    anchor_points: torch.Tensor
    stride_tensor: torch.Tensor
    whwh: torch.Tensor
    """[w, h, w, h] in pixels: normalised xywh -> pixels."""
    unit_box: torch.Tensor
    gains: torch.Tensor
    """The box, cls and dfl gains (hyperparameters box, cls, dfl)."""


class DenseTaskAlignedAssigner(TaskAlignedAssigner):
    """Ultralytics' assigner with the per-pair metrics computed for every (box, anchor) pair and masked, rather
    than gathered for the pairs inside boxes (the gather's size depends on the data: a host synchronisation)."""

    def get_box_metrics(self, pd_scores, pd_bboxes, gt_labels, gt_bboxes, mask_gt, **extra):
        anchors = pd_bboxes.shape[-2]
        inside = mask_gt.bool()  # b, boxes, anchors
        labels = gt_labels.long().squeeze(-1).clamp_(0)  # b, boxes
        # scores[b, box, anchor] = pd_scores[b, anchor, label of box]
        scores = pd_scores.transpose(1, 2).gather(1, labels.unsqueeze(-1).expand(-1, -1, anchors))
        overlap_values = self.iou_calculation(gt_bboxes.unsqueeze(2), pd_bboxes.unsqueeze(1))  # b, boxes, anchors
        align_values = scores.pow(self.alpha) * overlap_values.pow(self.beta)
        overlaps = torch.where(inside, overlap_values, 0.0).to(pd_bboxes.dtype)
        align_metric = torch.where(inside, align_values, 0.0)
        return align_metric, overlaps

    def select_candidates_in_gts(self, xy_centers, gt_bboxes, mask_gt, eps=1e-9):
        # Ultralytics' own, with the side floor as a Python number: its torch.tensor(stride_val, device=...)
        # copies from host memory at every call, which a CUDA graph cannot hold.
        gt_bboxes_xywh = xyxy2xywh(gt_bboxes)
        small = (gt_bboxes_xywh[..., 2:] < self.stride_val) * mask_gt
        gt_bboxes_xywh[..., 2:] = torch.where(small.bool(), float(self.stride_val), gt_bboxes_xywh[..., 2:])
        lt, rb = xywh2xyxy(gt_bboxes_xywh).unsqueeze(2).chunk(2, 3)  # (b, n_boxes, 1, 2) left-top, right-bottom
        mask = xy_centers[:, 0] - lt[..., 0] > eps
        mask &= xy_centers[:, 1] - lt[..., 1] > eps
        mask &= rb[..., 0] - xy_centers[:, 0] > eps
        mask &= rb[..., 1] - xy_centers[:, 1] > eps
        return mask


class StaticShapeDetectionLoss:
    """``v8DetectionLoss`` for padded targets: (predictions, targets [b, slots, 5]) -> the gain-weighted
    (box, cls, dfl) losses, the vector Ultralytics multiplies by the batch size."""

    def __init__(self, criterion: v8DetectionLoss) -> None:
        self.criterion = criterion
        self.assigner = DenseTaskAlignedAssigner.__new__(DenseTaskAlignedAssigner)
        self.assigner.__dict__.update(criterion.assigner.__dict__)  # the same topk, alpha, beta, strides
        self._constants: dict[tuple[Any, ...], _Constants] = {}

    def _constants_for(self, feats: list[torch.Tensor]) -> _Constants:
        """Tensors that depend only on the feature shapes, made once: making them copies from host memory,
        which a CUDA graph cannot hold (the first, uncaptured call makes them)."""
        key = (feats[0].dtype, feats[0].device, *(tuple(f.shape[2:]) for f in feats))
        if key not in self._constants:
            strides = torch.as_tensor(self.criterion.stride)
            anchor_points, stride_tensor = make_anchors(feats, strides, 0.5)
            height, width = (float(side) * float(strides[0]) for side in feats[0].shape[2:])
            device = feats[0].device
            self._constants[key] = _Constants(
                anchor_points=anchor_points,
                stride_tensor=stride_tensor,
                whwh=torch.tensor((width, height, width, height), device=device),
                unit_box=torch.tensor((0.0, 0.0, 1.0, 1.0), device=device),
                gains=torch.tensor(
                    [float(getattr(self.criterion.hyp, name)) for name in ("box", "cls", "dfl")], device=device
                ),
            )
        return self._constants[key]

    def __call__(self, preds: Any, targets: torch.Tensor) -> torch.Tensor:
        criterion = self.criterion
        preds = criterion.parse_output(preds)
        loss = torch.zeros(3, device=targets.device)  # box, cls, dfl
        pred_distri = preds["boxes"].permute(0, 2, 1).contiguous()
        pred_scores = preds["scores"].permute(0, 2, 1).contiguous()
        constants = self._constants_for(preds["feats"])
        anchor_points, stride_tensor = constants.anchor_points, constants.stride_tensor
        dtype = pred_scores.dtype

        gt_labels = targets[..., :1]
        gt_bboxes = xywh2xyxy(targets[..., 1:5] * constants.whwh)
        mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0.0)

        pred_bboxes = criterion.bbox_decode(anchor_points, pred_distri)  # xyxy, (b, anchors, 4)
        _, target_bboxes, target_scores, fg_mask, _ = self.assigner(
            pred_scores.detach().sigmoid(),
            (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
            anchor_points * stride_tensor,
            gt_labels,
            gt_bboxes,
            mask_gt,
        )
        target_scores_sum = target_scores.sum().clamp_(min=1)

        bce_loss = criterion.bce(pred_scores, target_scores.to(dtype))
        if criterion.class_weights is not None:
            bce_loss = bce_loss * criterion.class_weights
        loss[1] = bce_loss.sum() / target_scores_sum
        loss[0], loss[2] = self._box_losses(
            pred_distri, pred_bboxes, anchor_points, target_bboxes / stride_tensor, target_scores, target_scores_sum,
            fg_mask, constants, stride_tensor,
        )  # fmt: skip
        return loss * constants.gains  # box, cls and dfl gains

    def _box_losses(
        self,
        pred_dist: torch.Tensor,
        pred_bboxes: torch.Tensor,
        anchor_points: torch.Tensor,
        target_bboxes: torch.Tensor,
        target_scores: torch.Tensor,
        target_scores_sum: torch.Tensor,
        fg_mask: torch.Tensor,
        constants: _Constants,
        stride: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``BboxLoss`` over every anchor, the non-foreground ones masked to zero."""
        foreground = fg_mask.unsqueeze(-1)  # b, anchors, 1
        # Non-foreground anchors compare a unit box with itself: finite values and gradients, then masked out.
        unit = constants.unit_box
        pred_safe = torch.where(foreground, pred_bboxes, unit.to(pred_bboxes.dtype))
        target_safe = torch.where(foreground, target_bboxes, unit.to(target_bboxes.dtype))
        weight = target_scores.sum(-1, keepdim=True)  # zero off the foreground: the assigner masked its scores
        iou = bbox_iou(pred_safe, target_safe, xywh=False, CIoU=True)
        loss_iou = torch.where(foreground, (1.0 - iou) * weight, 0.0).sum() / target_scores_sum

        dfl = self.criterion.bbox_loss.dfl_loss
        if dfl:
            reg_max = dfl.reg_max
            target_ltrb = bbox2dist(anchor_points, target_safe, reg_max - 1)
            per_anchor = dfl(pred_dist.reshape(-1, reg_max), target_ltrb.reshape(-1, 4)).view(weight.shape)
        else:
            target_ltrb = bbox2dist(anchor_points, target_safe) * stride
            pred_scaled = pred_dist * stride
            scale = constants.whwh
            per_anchor = torch.nn.functional.l1_loss(pred_scaled / scale, target_ltrb / scale, reduction="none").mean(
                -1, keepdim=True
            )
        loss_dfl = torch.where(foreground, per_anchor * weight, 0.0).sum() / target_scores_sum
        return loss_iou, loss_dfl
