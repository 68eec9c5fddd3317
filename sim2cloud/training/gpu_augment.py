"""Ultralytics' training augmentation with its pixel work on the GPU: the CPU only decides, the GPU draws.

On SageMaker's common GPU instances (ml.g5.xlarge: 4 vCPUs for one A10G) the CPU-side mosaic, affine warp and
HSV jitter of every training image cap the images/s far below what the GPU trains. Here Ultralytics' own
transforms still run in the dataloader workers and still draw every random parameter and transform every box
(``get_params`` / ``apply_instances``: the same code, the same random streams), but their ``apply_image`` only
records what it would have done to the pixels (:class:`PlannedImage`). The collate function packs a batch's
plans into a few small tensors, and the trainer draws the batch on the GPU from the decoded images kept there
(Ultralytics' RAM cache, uploaded once): the mosaic tiles on a 114-grey canvas, warped with the affine matrix
(bilinear, grey border, as ``cv2.warpAffine``), HSV gains as ``RandomHSV``'s lookup tables, flips (folded into
the warp). On CUDA one Triton kernel draws a batch (:mod:`sim2cloud.training.draw_kernel`); PyTorch operations
(:func:`draw_with_torch`) are the reference and the path without Triton. Labels, mosaic, close_mosaic and the
loss are Ultralytics' own, unchanged.

Used when every training image is cached in RAM and the pipeline holds only the transforms this module
draws (Ultralytics' detection defaults: mosaic 4, affine without perspective, HSV, flips; no mixup, cutmix,
copy-paste or albumentations); otherwise :func:`unsupported_reason` says why and the CPU pipeline runs.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler
from ultralytics.data.augment import (
    Albumentations,
    Compose,
    CopyPaste,
    CutMix,
    Format,
    MixUp,
    Mosaic,
    RandomFlip,
    RandomHSV,
    RandomPerspective,
)
from ultralytics.data.build import InfiniteDataLoader
from ultralytics.data.dataset import YOLODataset
from ultralytics.models.yolo.detect import DetectionTrainer

BORDER_VALUE = 114.0
"""Ultralytics' grey for the mosaic canvas and the warp's border."""


class PlannedImage:
    """Stands in for an H x W x C uint8 image inside Ultralytics' transforms: its shape and how to draw it."""

    __slots__ = ("plan", "shape")

    def __init__(self, shape: tuple[int, int, int], plan: tuple[Any, ...]) -> None:
        self.shape = shape
        self.plan = plan

    @property
    def ndim(self) -> int:
        return 3


# --------------------------------------------------------------------------------------
# The transforms: Ultralytics' classes with apply_image recording instead of drawing
# --------------------------------------------------------------------------------------
class PlannedMosaic(Mosaic):
    def apply_image(self, labels: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        assert params is not None
        pastes = tuple(
            (
                item["labels_patch"]["img"].plan,
                *(int(item[k]) for k in ("y1a", "y2a", "x1a", "x2a", "y1b", "y2b", "x1b", "x2b")),
            )
            for item in params["layout"]
        )
        size = self.imgsz * 2
        labels["img"] = PlannedImage((size, size, 3), ("mosaic", size, pastes))
        return labels


class PlannedPerspective(RandomPerspective):
    def apply_image(self, labels: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        assert params is not None
        width, height = params["size"]
        matrix = tuple(float(v) for v in np.asarray(params["M"], dtype=np.float64)[:2].reshape(-1))
        labels["img"] = PlannedImage((int(height), int(width), 3), ("affine", labels["img"].plan, matrix))
        labels["resized_shape"] = (int(height), int(width))
        return labels


class PlannedHSV(RandomHSV):
    def apply_image(self, labels: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.hgain or self.sgain or self.vgain:  # the same draw as RandomHSV.apply_image
            gains = np.random.uniform(-1, 1, 3) * [self.hgain, self.sgain, self.vgain]
            image = labels["img"]
            labels["img"] = PlannedImage(image.shape, ("hsv", image.plan, tuple(float(g) for g in gains)))
        return labels


class PlannedFlip(RandomFlip):
    def apply_image(self, labels: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        assert params is not None
        if params["flip"]:
            image = labels["img"]
            labels["img"] = PlannedImage(image.shape, ("flip", image.plan, params["direction"]))
        return labels


class PlannedFormat(Format):
    def apply_image(self, labels: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        return labels  # the plan stays; the collate function packs it


_PLANNED = {
    Mosaic: PlannedMosaic,
    RandomPerspective: PlannedPerspective,
    RandomHSV: PlannedHSV,
    RandomFlip: PlannedFlip,
    Format: PlannedFormat,
}


def unsupported_reason(transforms: Compose) -> str | None:
    """Why this pipeline cannot be drawn on the GPU (a transform this module does not draw), else None."""
    for transform in transforms.transforms:
        kind = type(transform)
        if isinstance(transform, Compose):
            reason = unsupported_reason(transform)
        elif kind in (MixUp, CutMix, CopyPaste):
            reason = f"{kind.__name__} p={transform.p}" if transform.p > 0 else None
        elif kind is Albumentations:
            reason = "albumentations transforms" if transform.transform is not None else None
        elif kind is Mosaic:
            reason = f"mosaic of {transform.n}" if transform.n != 4 else None
        elif kind is RandomPerspective:
            reason = f"perspective={transform.perspective}" if transform.perspective else None
        elif kind is Format:
            reason = f"bgr={transform.bgr}" if transform.bgr else None
        elif kind in _PLANNED or kind in _PLANNED.values():
            reason = None
        else:
            reason = f"transform {kind.__name__}"
        if reason:
            return reason
    return None


def plan_transforms(transforms: Compose) -> None:
    """Switch every drawing transform of ``transforms`` (nested ones too) to its planning subclass, in place."""
    for transform in transforms.transforms:
        if isinstance(transform, Compose):
            plan_transforms(transform)
            continue
        planned = _PLANNED.get(type(transform))
        if planned is not None:
            transform.__class__ = planned
        pre_transform = getattr(transform, "pre_transform", None)
        if isinstance(pre_transform, Compose):
            plan_transforms(pre_transform)


# --------------------------------------------------------------------------------------
# A batch of plans as tensors (built in the dataloader workers)
# --------------------------------------------------------------------------------------
@dataclass
class BatchPlan:
    """What the GPU draws for one batch, as NumPy arrays (see :func:`arrays_for_transfer`)."""

    pastes: np.ndarray
    """int64 [K, 10]: batch index, source image index, canvas y1,y2,x1,x2, source y1,y2,x1,x2."""
    canvas_hw: tuple[int, int]
    inverse_affine: np.ndarray
    """float64 [B, 2, 3]: output pixel -> canvas pixel."""
    output_hw: tuple[int, int]
    hsv_gains: np.ndarray
    """float64 [B, 3]; zeros: unchanged."""
    flip_lr: np.ndarray
    flip_ud: np.ndarray

    def __len__(self) -> int:
        return int(self.inverse_affine.shape[0])


def _unwrap(plan: tuple[Any, ...]) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    """The pointwise steps (hsv, flip) above the affine step, outermost first, and the affine step."""
    pointwise = []
    while plan[0] in ("hsv", "flip"):
        pointwise.append(plan)
        plan = plan[1]
    if plan[0] != "affine":
        raise ValueError(f"expected an affine step under the colour and flip steps, got {plan[0]!r}")
    return pointwise, plan


def pack_plans(images: Sequence[PlannedImage]) -> BatchPlan:
    """One batch's plans as tensors (sources are ``("source", index, height, width)``)."""
    pastes: list[list[int]] = []
    inverse = np.zeros((len(images), 2, 3))
    gains = np.zeros((len(images), 3))
    flip_lr = np.zeros(len(images), dtype=bool)
    flip_ud = np.zeros(len(images), dtype=bool)
    canvas_h = canvas_w = 0
    output_hw: tuple[int, int] | None = None
    for b, image in enumerate(images):
        pointwise, (_, below, matrix) = _unwrap(image.plan)
        if output_hw not in (None, image.shape[:2]):
            raise ValueError(f"images of one batch differ in size: {output_hw} and {image.shape[:2]}")
        output_hw = (int(image.shape[0]), int(image.shape[1]))
        if below[0] == "mosaic":
            for source, *box in below[2]:
                if source[0] != "source":
                    raise ValueError(f"expected source images as mosaic tiles, got {source[0]!r}")
                pastes.append([b, int(source[1]), *box])
            canvas_h, canvas_w = max(canvas_h, below[1]), max(canvas_w, below[1])
        elif below[0] == "source":
            h, w = int(below[2]), int(below[3])
            pastes.append([b, int(below[1]), 0, h, 0, w, 0, h, 0, w])
            canvas_h, canvas_w = max(canvas_h, h), max(canvas_w, w)
        else:
            raise ValueError(f"expected a mosaic or a source image under the affine step, got {below[0]!r}")
        forward = np.vstack([np.asarray(matrix, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])
        inverse[b] = np.linalg.inv(forward)[:2]
        for step in pointwise:
            if step[0] == "hsv":
                gains[b] = step[2]
            elif step[2] == "horizontal":
                flip_lr[b] = not flip_lr[b]
            else:
                flip_ud[b] = not flip_ud[b]
    assert output_hw is not None
    return BatchPlan(
        pastes=np.asarray(pastes, dtype=np.int64).reshape(-1, 10),
        canvas_hw=(canvas_h, canvas_w),
        inverse_affine=inverse,
        output_hw=output_hw,
        hsv_gains=gains,
        flip_lr=flip_lr,
        flip_ud=flip_ud,
    )


# --------------------------------------------------------------------------------------
# Drawing a batch on the GPU
# --------------------------------------------------------------------------------------
class ImageStore:
    """Every cached training image on the device as one uint8 tensor [N, 3, H, W], RGB (all of one size)."""

    def __init__(self, buffer: torch.Tensor, offsets: np.ndarray, shapes: np.ndarray, device: torch.device) -> None:
        sizes = {tuple(int(v) for v in shape) for shape in shapes}
        if len(sizes) != 1:
            raise ValueError(f"images of {len(sizes)} different sizes; the GPU draws images of one size")
        (height, width, channels) = sizes.pop()
        if channels != 3:
            raise ValueError("only 3-channel images are drawn on the GPU")
        count = len(shapes)
        flat = buffer[: int(offsets[count])].to(device)
        self.images = flat.view(count, height, width, 3).permute(0, 3, 1, 2).flip(1).contiguous()  # BGR -> RGB

    @classmethod
    def from_cache(cls, cache: Any, device: torch.device) -> ImageStore:
        """From Ultralytics' RAM cache (``BaseDataset._ImageCache``: one uint8 buffer, offsets, shapes)."""
        return cls(cache.buffer, cache.offsets, cache.shapes, device)


def _rgb_to_hsv(image: torch.Tensor) -> torch.Tensor:
    """OpenCV's 8-bit RGB -> HSV on floats 0-255: H in [0, 180), S and V in [0, 255]."""
    red, green, blue = image.unbind(1)
    value, _ = image.max(1)
    low, _ = image.min(1)
    delta = value - low
    saturation = torch.where(value > 0, delta * 255.0 / value.clamp(min=1e-6), torch.zeros_like(value))
    safe = delta.clamp(min=1e-6)
    hue = torch.where(
        value == red,
        60.0 * (green - blue) / safe,
        torch.where(value == green, 120.0 + 60.0 * (blue - red) / safe, 240.0 + 60.0 * (red - green) / safe),
    )
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue)) % 360.0
    return torch.stack((torch.round(hue / 2.0) % 180.0, torch.round(saturation), value), 1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    hue, saturation, value = hsv.unbind(1)
    h = (hue * 2.0 / 60.0) % 6.0
    chroma = value * saturation / 255.0
    x = chroma * (1.0 - torch.abs(h % 2.0 - 1.0))
    zero = torch.zeros_like(h)
    sector = h.floor()
    red = torch.where((sector == 0) | (sector == 5), chroma, torch.where((sector == 1) | (sector == 4), x, zero))
    green = torch.where((sector == 1) | (sector == 2), chroma, torch.where((sector == 0) | (sector == 3), x, zero))
    blue = torch.where((sector == 3) | (sector == 4), chroma, torch.where((sector == 2) | (sector == 5), x, zero))
    low = value - chroma
    return torch.round(torch.stack((red + low, green + low, blue + low), 1)).clamp(0.0, 255.0)


def random_hsv(image: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """``RandomHSV``'s lookup tables applied per image (gains [B, 3]); rows of zeros leave the image alone."""
    hsv = _rgb_to_hsv(image)
    g = gains.to(image.dtype)[:, :, None, None]
    hue = torch.floor((hsv[:, 0:1] + g[:, 0:1] * 180.0) % 180.0)
    saturation = torch.floor((hsv[:, 1:2] * (g[:, 1:2] + 1.0)).clamp(0.0, 255.0))
    saturation = torch.where(hsv[:, 1:2] == 0, torch.zeros_like(saturation), saturation)
    value = torch.floor((hsv[:, 2:3] * (g[:, 2:3] + 1.0)).clamp(0.0, 255.0))
    changed = _hsv_to_rgb(torch.cat((hue, saturation, value), 1))
    untouched = (gains == 0).all(1)[:, None, None, None]
    return torch.where(untouched, image, changed)


def image_parameters(plan: BatchPlan) -> np.ndarray:
    """float32 [B, 9] per image: output pixel (x, y, 1) -> canvas pixel (x, y) as a 2 x 3 matrix, then the HSV gains.

    The flips are folded into the matrix: a flip mirrors where each output pixel samples the canvas, and HSV works
    pixel by pixel, so mirroring the sampling positions equals flipping the finished image.
    """
    batch = len(plan)
    out_h, out_w = plan.output_hw
    mirror_x = np.array([[-1.0, 0.0, out_w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mirror_y = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, out_h - 1.0], [0.0, 0.0, 1.0]])
    inverse = np.concatenate([plan.inverse_affine, np.tile([[[0.0, 0.0, 1.0]]], (batch, 1, 1))], axis=1)
    inverse = np.where(plan.flip_lr[:, None, None], inverse @ mirror_x, inverse)
    inverse = np.where(plan.flip_ud[:, None, None], inverse @ mirror_y, inverse)
    return np.concatenate([inverse[:, :2].reshape(batch, 6), plan.hsv_gains], axis=1).astype(np.float32)


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A small per-batch array on ``device`` without waiting for the GPU: copied from pinned memory, asynchronously
    (a plain ``.to(device)`` of a NumPy array waits until the GPU has finished all queued work)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def draw(plan: BatchPlan, store: ImageStore, device: torch.device) -> torch.Tensor:
    """The batch's images, float 0-255, RGB, [B, 3, H, W] on ``device``: the mosaic tiles on a grey canvas, warped
    as ``cv2.warpAffine`` does (bilinear, grey border), then HSV, then flips.

    On CUDA with Triton one kernel draws the batch (:mod:`sim2cloud.training.draw_kernel`); elsewhere PyTorch
    operations do (:func:`draw_with_torch`, the reference).
    """
    parameters = to_device(image_parameters(plan), device)
    hsv = bool((plan.hsv_gains != 0).any())
    if device.type == "cuda" and draw_kernel_available():
        from sim2cloud.training import draw_kernel

        tiles = to_device(draw_kernel.tile_table(plan.pastes, len(plan)), device)
        return draw_kernel.draw(store.images, tiles, parameters, plan.output_hw, hsv)
    return draw_with_torch(plan, store, parameters, hsv)


@functools.cache
def draw_kernel_available() -> bool:
    """Whether Triton is installed (PyTorch's CUDA wheels bring it; its CPU wheels do not); asked once."""
    return importlib.util.find_spec("triton") is not None


def draw_with_torch(plan: BatchPlan, store: ImageStore, parameters: torch.Tensor, hsv: bool) -> torch.Tensor:
    """:func:`draw` with PyTorch operations (``parameters``: :func:`image_parameters` on the store's device)."""
    batch = len(plan)
    device = store.images.device
    canvas_h, canvas_w = plan.canvas_hw
    # Pasted as uint8 (one copy kernel per tile), shifted to floats around the grey once for the whole canvas.
    pasted = torch.full((batch, 3, canvas_h, canvas_w), int(BORDER_VALUE), dtype=torch.uint8, device=device)
    for b, source, y1a, y2a, x1a, x2a, y1b, y2b, x1b, x2b in plan.pastes.tolist():
        if y2a > y1a and x2a > x1a:
            pasted[b, :, y1a:y2a, x1a:x2a] = store.images[source, :, y1b:y2b, x1b:x2b]
    canvas = pasted.float() - BORDER_VALUE  # 0 = grey
    out_h, out_w = plan.output_hw
    matrix = parameters[:, :6].reshape(batch, 2, 3, 1, 1)
    xs = torch.arange(out_w, dtype=torch.float32, device=device)[None, None, :]
    ys = torch.arange(out_h, dtype=torch.float32, device=device)[None, :, None]
    canvas_x = matrix[:, 0, 0] * xs + matrix[:, 0, 1] * ys + matrix[:, 0, 2]
    canvas_y = matrix[:, 1, 0] * xs + matrix[:, 1, 1] * ys + matrix[:, 1, 2]
    # grid_sample with align_corners=True puts -1 and 1 on the centres of the first and last pixels, as OpenCV
    # puts pixel centres on integer coordinates; zero padding of (canvas - grey) is OpenCV's grey border.
    grid = torch.stack(
        (canvas_x * (2.0 / max(canvas_w - 1, 1)) - 1.0, canvas_y * (2.0 / max(canvas_h - 1, 1)) - 1.0), -1
    )
    warped = torch.nn.functional.grid_sample(canvas, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    images = torch.round(warped + BORDER_VALUE).clamp(0.0, 255.0)
    if hsv:
        images = random_hsv(images, parameters[:, 6:9])
    return images


# --------------------------------------------------------------------------------------
# Random draws that do not depend on the number of dataloader workers
# --------------------------------------------------------------------------------------
class EpochSampler(torch.utils.data.Sampler[int]):
    """The training order as ``epoch * size + index``: a permutation per epoch drawn from ``(seed, epoch)``.

    Ultralytics seeds each dataloader worker once, so which random draws a sample gets depends on which worker
    builds it, that is on the number of workers (the CPUs of the instance): the same job trained with 3 and with
    15 workers sees different augmentations. Tagging each index with its epoch lets :class:`PlannedDataset` seed
    every sample from ``(seed, epoch, index)``: the order and every augmentation are then the same whatever the
    worker count. The loader fetches ahead across epochs, so the trainer sets :attr:`next_epoch` whenever it
    restarts the loader (close_mosaic, resume) rather than counting iterations.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.next_epoch = 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        epoch, self.next_epoch = self.next_epoch, self.next_epoch + 1
        generator = torch.Generator().manual_seed(sample_seed(self.seed, epoch, -1))
        offset = epoch * self.size
        return iter((torch.randperm(self.size, generator=generator) + offset).tolist())


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """One 32-bit seed per (job seed, epoch, sample index); index -1 is the epoch's order."""
    return int(np.random.SeedSequence([seed, epoch, index + 1]).generate_state(1)[0])


# --------------------------------------------------------------------------------------
# Ultralytics integration: the dataset and the trainer
# --------------------------------------------------------------------------------------
class PlannedDataset(YOLODataset):
    """A training YOLODataset whose samples carry plans instead of pixels (built by :class:`GpuAugmentTrainer`).

    With :attr:`seed` set, indices arrive tagged by :class:`EpochSampler` and each sample's random draws
    (Python's ``random`` and NumPy's, which Ultralytics' transforms use) are seeded from (seed, epoch, index), and
    the epoch in the tag picks the pipeline: from :attr:`close_epoch` on, the one Ultralytics switches to at
    ``close_mosaic`` (:meth:`switch_at_epoch`). The dataloader's workers then need no restart at the switch.
    """

    seed: int | None = None
    close_epoch: int | None = None
    closed_transforms: Compose | None = None

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.seed is None:
            return super().__getitem__(index)
        epoch, index = divmod(index, len(self.labels))
        draw_seed = sample_seed(self.seed, epoch, index)
        random.seed(draw_seed)
        np.random.seed(draw_seed)
        if self.close_epoch is not None and epoch >= self.close_epoch:
            assert self.closed_transforms is not None  # set together by switch_at_epoch
            return dict(self.closed_transforms(self.get_image_and_label(index)))
        return super().__getitem__(index)

    def switch_at_epoch(self, close_epoch: int, hyp: Any) -> None:
        """Draw the epochs from ``close_epoch`` on with the pipeline ``YOLODataset.close_mosaic(hyp)`` builds."""
        closed = copy.copy(self)
        closed.close_mosaic(hyp=copy.copy(hyp))
        self.closed_transforms = closed.transforms
        self.close_epoch = close_epoch

    def load_image(self, i: int, rect_mode: bool = True, resize_short: bool = False) -> Any:
        cache: Any = self.ims  # BaseDataset._ImageCache once cached in RAM
        height, width, channels = (int(v) for v in cache.shapes[i])
        image = PlannedImage((height, width, channels), ("source", i, height, width))
        return image, self.im_hw0[i], (height, width)

    def build_transforms(self, hyp: Any = None) -> Compose:
        transforms = super().build_transforms(hyp)
        plan_transforms(transforms)
        return transforms

    @staticmethod
    def collate_fn(batch: list[dict[str, Any]]) -> dict[str, Any]:
        images = [sample.pop("img") for sample in batch]
        collated = arrays_for_transfer(YOLODataset.collate_fn(batch))
        collated["img"] = pack_plans(images)
        return collated


class GpuAugmentTrainer(DetectionTrainer):
    """Ultralytics' DetectionTrainer with the training images drawn on the GPU when the pipeline allows it.

    On one GPU the training order and augmentations come from :class:`EpochSampler` (the same whatever the
    number of dataloader workers); under DDP Ultralytics' DistributedSampler and worker seeds stay.
    """

    store: ImageStore | None = None
    epoch_sampler: EpochSampler | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_callback("on_train_start", _start_epoch_order)

    def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train") -> Any:
        loader = super().get_dataloader(dataset_path, batch_size, rank, mode)
        dataset = loader.dataset
        batches = getattr(loader.batch_sampler, "sampler", None)  # Ultralytics' _RepeatSampler(BatchSampler)
        if mode == "train" and isinstance(dataset, PlannedDataset) and rank == -1 and isinstance(batches, BatchSampler):
            self.epoch_sampler = EpochSampler(len(dataset), int(self.args.seed))
            batches.sampler = self.epoch_sampler
            dataset.seed = int(self.args.seed)
            if self.args.close_mosaic and isinstance(loader, InfiniteDataLoader):
                # Ultralytics closes mosaic at the first epoch >= epochs - close_mosaic and restarts the workers
                # so that they see the change; these workers switch by the epoch in each index instead.
                dataset.switch_at_epoch(max(self.epochs - int(self.args.close_mosaic), 0), self.args)
                loader.__class__ = ContinuousLoader
        return loader

    def _close_dataloader_mosaic(self) -> None:
        dataset = self.train_loader.dataset
        if isinstance(dataset, PlannedDataset) and dataset.close_epoch is not None:
            print(f"gpu augmentation: epochs from {dataset.close_epoch + 1} are drawn without mosaic", flush=True)
            return
        super()._close_dataloader_mosaic()
        if self.epoch_sampler is not None:  # Ultralytics restarts the loader next: it begins at this epoch
            self.epoch_sampler.next_epoch = self.epoch

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None) -> Any:
        dataset = super().build_dataset(img_path, mode, batch)
        if mode != "train" or self.device.type != "cuda":
            return dataset
        reason = gpu_unsupported_reason(dataset)
        if reason:
            print(f"gpu augmentation: off ({reason}); augmenting on the CPU", flush=True)
            return dataset
        dataset.__class__ = PlannedDataset
        dataset.transforms = dataset.build_transforms(hyp=self.args)
        self.store = ImageStore.from_cache(dataset.ims, self.device)
        print(f"gpu augmentation: on ({len(dataset)} images on {self.device})", flush=True)
        return dataset

    def preprocess_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        plan = batch.get("img")
        if isinstance(plan, BatchPlan):
            assert self.store is not None
            batch = tensors_from_transfer(batch)
            # Ultralytics calls this under bf16 autocast: pixel coordinates need fp32 (bf16 is off by pixels).
            with torch.autocast(device_type=self.device.type, enabled=False):
                batch["img"] = draw(plan, self.store, self.device)
        return super().preprocess_batch(batch)


class ContinuousLoader(InfiniteDataLoader):
    """Ultralytics' training loader whose :meth:`reset` keeps its workers (and the batches they have prepared):
    for a :class:`PlannedDataset` that switches its pipeline at close_mosaic by itself. Restarting 15 workers
    cost about a second of an H200 training run (the close-mosaic epoch trained at about half speed)."""

    def reset(self) -> None:
        return None


def arrays_for_transfer(batch: dict[str, Any]) -> dict[str, Any]:
    """The collated batch's tensors as NumPy arrays, for the trip from a dataloader worker to the trainer.

    PyTorch passes each tensor a worker returns through shared memory, one file descriptor per tensor: profiled
    on the H200 bench host, the trainer's side spent about 2.3 ms per tensor receiving them (13 small tensors, about
    30 ms a batch, beside a step of about 65 ms). NumPy arrays travel pickled inline (10x faster on the 2-core dev
    machine). Once the GPU draws the pixels a batch is only small label arrays and the plan;
    :func:`tensors_from_transfer` turns them back into tensors in the trainer.
    """
    return {key: value.numpy() if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


def tensors_from_transfer(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch as Ultralytics expects it: the arrays :func:`arrays_for_transfer` made, tensors again."""
    return {key: torch.from_numpy(value) if isinstance(value, np.ndarray) else value for key, value in batch.items()}


def _start_epoch_order(trainer: GpuAugmentTrainer) -> None:
    """``on_train_start``: a resumed job's loader begins at its first epoch still to train."""
    if trainer.epoch_sampler is not None:
        trainer.epoch_sampler.next_epoch = trainer.start_epoch


def gpu_unsupported_reason(dataset: Any) -> str | None:
    """Why ``dataset`` (an Ultralytics training dataset) cannot be drawn on the GPU, else None."""
    if type(dataset) is not YOLODataset:
        return f"dataset type {type(dataset).__name__}"
    if not isinstance(dataset.ims, YOLODataset._ImageCache):
        return "the images are not cached in RAM (cache=ram)"
    if dataset.rect:
        return "rectangular batches"
    if len({tuple(shape) for shape in dataset.ims.shapes}) != 1:
        return "cached images of different sizes (render at one size to draw on the GPU)"
    return unsupported_reason(dataset.transforms)
