"""Ultralytics work for test_gpu_augment.py, in a child process printing one JSON line.

Why a child: importing Ultralytics patches process-wide functions (PIL's ``Image.open`` tries HEIF), which
would change what other tests in the same pytest worker see; the training job imports it only after its checks.

    python gpu_augment_child.py WORK_DIR -> {"mosaic": [...], "closed": {...}, "collate": {...}, "unsupported": [...]}
"""

from __future__ import annotations

import copy
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sim2cloud.training import offline

IMGSZ = 64
SEEDS = range(6)


def _write_dataset(root: Path, count: int = 6) -> Path:
    import cv2

    rng = np.random.default_rng(0)
    images, labels = root / "images" / "train", root / "labels" / "train"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for index in range(count):
        image = (rng.random((IMGSZ, IMGSZ, 3)) * 80 + 40).astype(np.uint8)
        lines = []
        for box in range(2):
            x1, y1 = rng.integers(2, IMGSZ // 2, size=2)
            w, h = rng.integers(10, IMGSZ // 2, size=2)
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            cv2.rectangle(image, (int(x1), int(y1)), (int(x1 + w), int(y1 + h)), colour, thickness=-1)
            cx, cy = (x1 + w / 2) / IMGSZ, (y1 + h / 2) / IMGSZ
            lines.append(f"{box} {cx:.6f} {cy:.6f} {w / IMGSZ:.6f} {h / IMGSZ:.6f}")
        cv2.imwrite(str(images / f"{index:03d}.png"), image)
        (labels / f"{index:03d}.txt").write_text("\n".join(lines) + "\n")
    return images


def _sample(dataset: Any, index: int, seed: int) -> dict[str, Any]:
    random.seed(seed)
    np.random.seed(seed)
    return dict(dataset[index])


def _compare(expected: dict[str, Any], got: dict[str, Any], store: Any) -> dict[str, Any]:
    import torch

    from sim2cloud.training import gpu_augment

    drawn = gpu_augment.draw(gpu_augment.pack_plans([got["img"]]), store, torch.device("cpu"))[0]
    reference = expected["img"].float()
    difference = (drawn - reference).abs()
    return {
        "plan": got["img"].plan[0],
        "has_mosaic": "mosaic" in repr(got["img"].plan),
        "shapes": [list(drawn.shape), list(reference.shape)],
        "mean_difference": float(difference.mean()),
        "p99_difference": float(torch.quantile(difference.flatten(), 0.99)),
        "mean_difference_to_another_draw": None,
        "same_classes": bool(torch.equal(got["cls"], expected["cls"])),
        "boxes_difference": float((got["bboxes"] - expected["bboxes"]).abs().max()) if len(got["bboxes"]) else 0.0,
        "boxes": len(got["bboxes"]),
    }


def _switching_at_an_epoch(planned: Any, planned_closed: Any, hyp: Any) -> dict[str, Any]:
    """A dataset told to close mosaic at epoch 1 draws epoch 0 with mosaic and epoch 1 as a closed dataset does."""
    switching, closed = copy.copy(planned), copy.copy(planned_closed)
    switching.seed = closed.seed = 0
    switching.switch_at_epoch(1, copy.copy(hyp))
    size = len(switching.labels)
    first, second, reference = switching[2], switching[size + 2], closed[size + 2]
    return {
        "epoch_0_mosaic": "mosaic" in repr(first["img"].plan),
        "epoch_1_mosaic": "mosaic" in repr(second["img"].plan),
        "epoch_1_as_closed": second["img"].plan == reference["img"].plan
        and second["bboxes"].tolist() == reference["bboxes"].tolist(),
    }


def _graph_guards() -> dict[str, Any]:
    """When the CUDA-graph trainer stays eager, and that a model copied mid-training gets its own forward."""
    import types

    import torch
    from ultralytics.nn.tasks import DetectionModel

    from sim2cloud.training import cuda_graphs

    def trainer(device: str, world_size: int = 1, accumulate: int = 1) -> Any:
        args = types.SimpleNamespace(nbs=64)
        return types.SimpleNamespace(
            device=torch.device(device), world_size=world_size, accumulate=accumulate, batch_size=64, args=args
        )

    model = DetectionModel("yolov8n.yaml", nc=2, verbose=False).train()
    forward = cuda_graphs.GraphedForward(model)
    cuda_graphs.install(model, forward)
    images = torch.rand(2, 3, 64, 64)
    eager_shapes = [list(t.shape) for t in type(model).forward(model, images)["feats"]]
    through_installed = [list(t.shape) for t in model(images)["feats"]]  # on the CPU: the model's own forward
    holder = types.SimpleNamespace(model=model)
    with cuda_graphs._eager_forward(holder):  # what NaN recovery's deep copy sees
        copied = copy.deepcopy(model)
    return {
        "reasons": {
            "cpu": cuda_graphs.graphs_unsupported_reason(trainer("cpu")),
            "ddp": cuda_graphs.graphs_unsupported_reason(trainer("cuda", world_size=2)),
            "accumulating": cuda_graphs.graphs_unsupported_reason(trainer("cuda", accumulate=4)),
            "one_gpu": cuda_graphs.graphs_unsupported_reason(trainer("cuda")),
        },
        "cpu_forward_is_eager": forward.graphed is None and through_installed == eager_shapes,
        "copy_has_own_forward": "forward" not in copied.__dict__,
        "reinstalled": cuda_graphs.installed(model) is forward,
    }


def _kernel_agreement(plan: Any, store: Any) -> dict[str, Any]:
    """The Triton draw kernel, run by Triton's interpreter on the CPU (TRITON_INTERPRET=1, set by the test), against
    the PyTorch draw of the same plans: mosaics and single images in one batch, with flips and HSV gains."""
    import torch

    from sim2cloud.training import draw_kernel, gpu_augment

    parameters = gpu_augment.to_device(gpu_augment.image_parameters(plan), torch.device("cpu"))
    hsv = bool((plan.hsv_gains != 0).any())
    reference = gpu_augment.draw_with_torch(plan, store, parameters, hsv)
    tiles = torch.from_numpy(draw_kernel.tile_table(plan.pastes, len(plan)))
    drawn = draw_kernel.draw(store.images, tiles, parameters, plan.output_hw, hsv)
    return {
        "interpreted": os.environ.get("TRITON_INTERPRET") == "1",
        "shape": list(drawn.shape),
        "mean_difference": float((drawn - reference).abs().mean()),
        "share_above_one": float(((drawn - reference).abs() > 1).float().mean()),
        "tiles_per_image": sorted({int((row[:, 2] > row[:, 1]).sum()) for row in tiles.numpy()}),
        "flipped_images": int(plan.flip_lr.sum() + plan.flip_ud.sum()),
        "images_with_hsv_gains": int((plan.hsv_gains != 0).any(1).sum()),
        "mean_difference_to_another_batch": float((drawn - drawn.roll(1, 0)).abs().mean()),
    }


def _epochs_of_plans(dataset: Any, workers: int, seeded: bool, epochs: int = 2) -> list[Any]:
    """Two epochs through a DataLoader as Ultralytics builds it (worker seeds from ``seed_worker``): each batch's
    plan tensors and boxes, in order."""
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler
    from ultralytics.data.build import seed_worker

    from sim2cloud.training import gpu_augment

    dataset.seed = 0 if seeded else None
    sampler: Any = gpu_augment.EpochSampler(len(dataset), 0) if seeded else RandomSampler(dataset)
    torch.manual_seed(0)
    loader = DataLoader(
        dataset,
        batch_sampler=BatchSampler(sampler, batch_size=2, drop_last=False),
        num_workers=workers,
        collate_fn=gpu_augment.PlannedDataset.collate_fn,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(0),
    )
    batches = []
    for _ in range(epochs):
        for batch in loader:
            plan = batch["img"]
            batches.append(
                [plan.pastes.tolist(), plan.inverse_affine.tolist(), plan.hsv_gains.tolist(), batch["bboxes"].tolist()]
            )
    return batches


def _worker_independence(planned: Any) -> dict[str, Any]:
    import copy as copy_module

    from sim2cloud.training import gpu_augment

    dataset = copy_module.copy(planned)
    seeded = {workers: _epochs_of_plans(dataset, workers, seeded=True) for workers in (0, 1, 3)}
    unseeded = {workers: _epochs_of_plans(dataset, workers, seeded=False) for workers in (0, 3)}
    half = len(seeded[0]) // 2
    sampler = gpu_augment.EpochSampler(4, 0)
    first, second = list(sampler), list(sampler)
    sampler.next_epoch = 5
    restarted = list(sampler)
    return {
        "same_with_0_1_3_workers": seeded[0] == seeded[1] == seeded[3],
        "ultralytics_seeding_differs_with_0_and_3_workers": unseeded[0] != unseeded[3],
        "epochs_differ": seeded[0][:half] != seeded[0][half:],
        "epoch_tags": [sorted(first), sorted(second), sorted(restarted)],
        "orders_differ": [i % 4 for i in first] != [i % 4 for i in second],
    }


def main(work: Path) -> dict[str, Any]:
    offline.prepare_offline_ultralytics(work / "config")
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.data.augment import Compose, MixUp, RandomPerspective
    from ultralytics.data.dataset import YOLODataset

    from sim2cloud.training import gpu_augment

    images = _write_dataset(work / "data")
    hyp = get_cfg(overrides={"imgsz": IMGSZ, "cache": "ram"})
    data = {"names": {0: "a", 1: "b"}, "nc": 2, "channels": 3}
    cpu = YOLODataset(img_path=str(images), imgsz=IMGSZ, augment=True, hyp=hyp, cache="ram", data=data)
    planned = YOLODataset(img_path=str(images), imgsz=IMGSZ, augment=True, hyp=hyp, cache="ram", data=data)
    supported = gpu_augment.gpu_unsupported_reason(planned)
    planned.__class__ = gpu_augment.PlannedDataset
    planned.transforms = planned.build_transforms(hyp=copy.copy(hyp))
    store = gpu_augment.ImageStore.from_cache(planned.ims, torch.device("cpu"))

    mosaic = []
    for seed in SEEDS:
        index = seed % len(cpu)
        result = _compare(_sample(cpu, index, seed), _sample(planned, index, seed), store)
        other = _sample(cpu, index, seed + 100)["img"].float()
        got = _sample(planned, index, seed)
        drawn = gpu_augment.draw(gpu_augment.pack_plans([got["img"]]), store, torch.device("cpu"))[0]
        result["mean_difference_to_another_draw"] = float((drawn - other).abs().mean())
        mosaic.append(result)

    cpu_closed, planned_closed = copy.copy(cpu), copy.copy(planned)
    cpu_closed.close_mosaic(hyp=copy.copy(hyp))
    planned_closed.close_mosaic(hyp=copy.copy(hyp))
    closed = _compare(_sample(cpu_closed, 1, 7), _sample(planned_closed, 1, 7), store)
    switching = _switching_at_an_epoch(planned, planned_closed, hyp)
    planned_images = [_sample(planned, seed % len(cpu), seed)["img"] for seed in SEEDS]
    planned_images += [_sample(planned_closed, index, 7 + index)["img"] for index in range(3)]
    kernel = _kernel_agreement(gpu_augment.pack_plans(planned_images), store)

    batch = gpu_augment.PlannedDataset.collate_fn([_sample(planned, i, i) for i in range(3)])
    plan = batch["img"]
    samples = [{k: v for k, v in _sample(planned, i, i).items() if k != "img"} for i in range(3)]
    reference = YOLODataset.collate_fn(samples)
    restored = gpu_augment.tensors_from_transfer(batch)
    transfer = {
        "tensors_in_the_batch": sorted(k for k, v in batch.items() if isinstance(v, torch.Tensor)),
        "plan_tensors": sorted(k for k, v in vars(plan).items() if isinstance(v, torch.Tensor)),
        "restored_equal": sorted(
            k for k, v in reference.items() if isinstance(v, torch.Tensor) and torch.equal(restored[k], v)
        ),
        "reference_tensors": sorted(k for k, v in reference.items() if isinstance(v, torch.Tensor)),
    }
    collate = {
        "is_plan": isinstance(plan, gpu_augment.BatchPlan),
        "size": len(plan),
        "output_hw": list(plan.output_hw),
        "canvas_hw": list(plan.canvas_hw),
        "pasted_into": sorted(set(plan.pastes[:, 0].tolist())),
        "max_batch_idx": int(batch["batch_idx"].max()),
    }
    workers = _worker_independence(planned)
    from sim2cloud.training import trainers

    trainer_names = {
        f"gpu_augment={g} channels_last={c} cuda_graphs={k}": getattr(
            trainers.trainer_class(gpu_augment=g, channels_last=c, cuda_graphs=k), "__name__", None
        )
        for g in (False, True)
        for c in (False, True)
        for k in (False, True)
    }
    order = [cls.__name__ for cls in trainers.ChannelsLastGpuAugmentCudaGraphTrainer.__mro__[:6]]
    unsupported = [
        gpu_augment.unsupported_reason(Compose([MixUp(cpu, p=0.5)])),
        gpu_augment.unsupported_reason(Compose([RandomPerspective(perspective=0.001)])),
        gpu_augment.unsupported_reason(Compose([lambda labels: labels])),
    ]
    return {
        "supported": supported,
        "mosaic": mosaic,
        "closed": closed,
        "collate": collate,
        "unsupported": unsupported,
        "workers": workers,
        "trainers": trainer_names,
        "transfer": transfer,
        "all_options_trainer_order": order,
        "kernel": kernel,
        "switching": switching,
        "graph_guards": _graph_guards(),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))), flush=True)
