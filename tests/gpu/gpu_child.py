"""GPU work for test_on_gpu.py, in a child process printing one JSON line (torch never shares a test process
with an EGL renderer: tests/conftest.py says why).

    python gpu_child.py -> {"graphs": {...}, "draw": {...}}
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.tiny_data import mosaic_pastes
from bench.train_step_profile import ultralytics_step
from sim2cloud.training import offline

CLASSES = 3


BOX_SLOTS = 8


def _batch(size: int, imgsz: int, seed: int, device: Any) -> dict[str, Any]:
    """A training batch as the trainer hands it to the model, with the padded targets the graphed loss reads."""
    import torch

    from sim2cloud.training import cuda_graphs, static_loss

    generator = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, BOX_SLOTS + 1, (size,), generator=generator)  # some images without boxes
    rows = int(counts.sum())
    centres = torch.rand(rows, 2, generator=generator) * 0.8 + 0.1
    sizes = torch.rand(rows, 2, generator=generator) * 0.2 + 0.03
    images = torch.rand(size, 3, imgsz, imgsz, generator=generator).to(device)
    labels = {
        "batch_idx": torch.arange(size).repeat_interleave(counts).float(),
        "cls": torch.randint(0, CLASSES, (rows, 1), generator=generator).float(),
        "bboxes": torch.cat((centres, sizes), 1),
    }
    padded = static_loss.pad_targets(
        labels["batch_idx"].numpy(), labels["cls"].numpy(), labels["bboxes"].numpy(), size, BOX_SLOTS
    )
    assert padded is not None
    return {
        "img": images.contiguous(memory_format=torch.channels_last),
        **{key: value.to(device) for key, value in labels.items()},
        cuda_graphs.PADDED_TARGETS: torch.from_numpy(padded).to(device),
    }


def _without_padding(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from sim2cloud.training import cuda_graphs

    return [{k: v for k, v in batch.items() if k != cuda_graphs.PADDED_TARGETS} for batch in batches]


def _train(model: Any, batches: list[dict[str, Any]]) -> list[float]:
    """Ultralytics' step as its trainer takes it: bf16 autocast (weight cache on), clipping, AdamW."""
    import torch

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    return [float(ultralytics_step(model, optimizer, batch).sum()) for batch in batches]


def graphs() -> dict[str, Any]:
    """The same model trained eagerly (Ultralytics' loss), through the graphed step (forward, fixed-shape loss,
    backward) and through the graphed forward and backward alone, on the same batches."""
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    from sim2cloud.training import cuda_graphs

    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = torch.device("cuda")
    torch.manual_seed(0)
    base = DetectionModel("yolov8n.yaml", nc=CLASSES, verbose=False)
    base.args = get_cfg()  # type: ignore[assignment]  # the loss reads its gains from the model's args
    for name, parameter in base.named_parameters():
        parameter.requires_grad = ".dfl" not in name  # frozen as Ultralytics' trainer freezes it

    def fresh() -> Any:
        return copy.deepcopy(base).to(device).to(memory_format=torch.channels_last).train()

    batches = [_batch(32, 320, seed, device) for seed in range(4)] + [_batch(24, 320, 9, device)]
    eager, graphed, forward_only, other = fresh(), fresh(), fresh(), fresh()
    forward = cuda_graphs.GraphedForward(graphed, box_slots=BOX_SLOTS)
    cuda_graphs.install(graphed, forward)
    forward_graph = cuda_graphs.GraphedForward(forward_only)
    cuda_graphs.install(forward_only, forward_graph)
    eager_losses = _train(eager, _without_padding(batches))
    graphed_losses = _train(graphed, batches)
    forward_graphed_losses = _train(forward_only, _without_padding(batches))
    other_losses = _train(other, [_batch(32, 320, 100 + seed, device) for seed in range(4)] + batches[-1:])

    def largest_difference(a: Any, b: Any, kind: str) -> float:
        pairs = zip(getattr(a, kind)(), getattr(b, kind)(), strict=True)
        return max(float((x.float() - y.float()).abs().max()) for x, y in pairs)

    cuda_graphs.remove(graphed)
    copied = copy.deepcopy(graphed)
    return {
        "captured_shape": list(forward.shape) if forward.shape is not None else None,
        "unavailable": forward.unavailable,
        "step_graphed": forward.step_graphed,
        "forward_graph_step_graphed": forward_graph.step_graphed,
        "forward_graph_captured_shape": list(forward_graph.shape) if forward_graph.shape is not None else None,
        "eager_losses": eager_losses,
        "graphed_losses": graphed_losses,
        "forward_graphed_losses": forward_graphed_losses,
        "other_data_losses": other_losses,
        "parameter_difference": largest_difference(eager, graphed, "parameters"),
        "buffer_difference": largest_difference(eager, graphed, "buffers"),
        "forward_graph_parameter_difference": largest_difference(eager, forward_only, "parameters"),
        "parameter_difference_to_other_data": largest_difference(eager, other, "parameters"),
        "removed": "forward" not in graphed.__dict__ and "forward" not in copied.__dict__,
    }


def draw() -> dict[str, Any]:
    """The Triton draw kernel on the GPU against the PyTorch draw on the GPU, on mosaic and single-image plans."""
    import torch

    from sim2cloud.training import gpu_augment

    device = torch.device("cuda")
    imgsz, count, rng = 320, 12, np.random.default_rng(0)
    buffer = torch.from_numpy(rng.integers(0, 256, count * imgsz * imgsz * 3, dtype=np.uint8))
    offsets = np.arange(count + 1) * imgsz * imgsz * 3
    store = gpu_augment.ImageStore(buffer, offsets, np.array([[imgsz, imgsz, 3]] * count), device)
    images = []
    for index in range(16):
        centre = (int(rng.integers(imgsz // 2, imgsz * 3 // 2)), int(rng.integers(imgsz // 2, imgsz * 3 // 2)))
        sources = [int(rng.integers(count)) for _ in range(4)]
        below: tuple[Any, ...] = ("mosaic", 2 * imgsz, mosaic_pastes(centre, imgsz, sources))
        scale = rng.uniform(0.5, 1.5)
        matrix = (scale, 0.05, -imgsz / 2 * scale, -0.05, scale, -imgsz / 2 * scale)
        if index % 4 == 3:
            below, matrix = ("source", int(rng.integers(count)), imgsz, imgsz), (1.1, 0.1, -9.0, -0.1, 0.9, 7.0)
        plan: tuple[Any, ...] = ("affine", below, matrix)
        if index % 5:
            plan = ("hsv", plan, tuple(float(g) for g in rng.uniform(-1, 1, 3) * [0.015, 0.7, 0.4]))
        if index % 2:
            plan = ("flip", plan, "horizontal")
        images.append(gpu_augment.PlannedImage((imgsz, imgsz, 3), plan))
    plan_batch = gpu_augment.pack_plans(images)
    parameters = gpu_augment.to_device(gpu_augment.image_parameters(plan_batch), device)
    reference = gpu_augment.draw_with_torch(plan_batch, store, parameters, True)
    drawn = gpu_augment.draw(plan_batch, store, device)
    difference = (drawn - reference).abs()
    return {
        "kernel_available": gpu_augment.draw_kernel_available(),
        "shape": list(drawn.shape),
        "mean_difference": float(difference.mean()),
        "share_above_one": float((difference > 1).float().mean()),
        "mean_difference_to_another_image": float((reference - reference.roll(1, 0)).abs().mean()),
        "tiles_per_image": sorted({int(row) for row in np.bincount(plan_batch.pastes[:, 0])}),
    }


def main() -> dict[str, Any]:
    offline.prepare_offline_ultralytics(Path(tempfile.mkdtemp(prefix="gpu-child-")) / "config")
    import torch

    if not torch.cuda.is_available():  # an NVIDIA driver with PyTorch's CPU wheel, say
        return {"cuda": False}
    return {"cuda": True, "graphs": graphs(), "draw": draw()}


if __name__ == "__main__":
    print(json.dumps(main()), flush=True)
