"""Where a GPU training step's time goes: YOLOv8n steps on synthetic batches, and the GPU draw of a batch.

Not a throughput figure (bench/train_throughput.py is): this times one optimizer step of the training
entrypoint's GPU path and the draw of one batch, each on its own, so a change can be aimed at the part that
costs. Each row gives the median wall time over ``--steps`` runs after ``--warmup`` (the GPU synchronised after
each) and the GPU kernel time of one run (the sum of its kernels' durations under ``torch.profiler``): a wall
time well above the kernel time means Python launching kernels, not the GPU, is the limit.

* ``step``: forward + loss under bf16 autocast, backward, gradient clipping, AdamW, EMA (Ultralytics' own
  model, loss, clipping and EMA): NCHW, channels_last, channels_last with the model's forward and backward
  replayed as a CUDA graph, and with the fixed-shape loss in the graph too (:mod:`sim2cloud.training.cuda_graphs`,
  :mod:`sim2cloud.training.static_loss`);
* ``draw``: a mosaic batch (4 tiles per image, affine warp, HSV, flips) at the given size, by the Triton kernel
  (:mod:`sim2cloud.training.draw_kernel`) and by PyTorch operations (``gpu_augment.draw_with_torch``).

    python bench/train_step_profile.py --batch 64 --imgsz 640
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.provenance import source_line  # noqa: E402
from bench.tiny_data import mosaic_pastes  # noqa: E402

SYNTHETIC_BOXES_PER_IMAGE = 6


def _measure(run: Callable[[], object], warmup: int, steps: int) -> tuple[float, float]:
    """(median wall ms, GPU kernel ms) of one ``run``."""
    import torch

    for _ in range(warmup):
        run()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profile:
        for _ in range(steps):
            run()
        torch.cuda.synchronize()
    kernels = [e for e in profile.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    return statistics.median(times), sum(e.device_time for e in kernels) / 1000 / steps


def _synthetic_batch(batch: int, imgsz: int, classes: int, device: Any) -> dict[str, Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    per_image = SYNTHETIC_BOXES_PER_IMAGE
    centres = torch.rand(batch * per_image, 2, generator=generator) * 0.8 + 0.1
    sizes = torch.rand(batch * per_image, 2, generator=generator) * 0.15 + 0.03
    return {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=generator).to(device),
        "batch_idx": torch.arange(batch).repeat_interleave(per_image).float().to(device),
        "cls": torch.randint(0, classes, (batch * per_image, 1), generator=generator).float().to(device),
        "bboxes": torch.cat((centres, sizes), 1).to(device),
    }


def ultralytics_step(model: Any, optimizer: Any, data: dict[str, Any]) -> Any:
    """One optimizer step as Ultralytics' trainer takes it: bf16 autocast, backward, clipping, the optimizer."""
    import torch

    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss, _ = model(data)
    loss.sum().backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
    optimizer.step()
    optimizer.zero_grad()
    return loss.detach()


def profile_steps(batch: int, imgsz: int, warmup: int, steps: int) -> list[tuple[str, float, float]]:
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.torch_utils import ModelEMA

    from sim2cloud.training import cuda_graphs, static_loss

    device = torch.device("cuda")
    rows = []
    variants = (("NCHW", None), ("channels_last", None), ("channels_last", "forward"), ("channels_last", "step"))
    for layout, graphed in variants:
        model = DetectionModel("yolov8n.yaml", nc=5, verbose=False).to(device)
        model.args = get_cfg()  # type: ignore[assignment]  # the loss reads its gains from the model's args
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        ema = ModelEMA(model)
        data = _synthetic_batch(batch, imgsz, 5, device)
        if layout == "channels_last":
            data["img"] = data["img"].contiguous(memory_format=torch.channels_last)
        if graphed:
            slots = None
            if graphed == "step":  # the trainer pads the targets on the CPU; here once, outside the timing
                slots = SYNTHETIC_BOXES_PER_IMAGE
                image, cls, boxes = (data[key].cpu().numpy() for key in ("batch_idx", "cls", "bboxes"))
                padded = static_loss.pad_targets(image, cls, boxes, batch, slots)
                data[cuda_graphs.PADDED_TARGETS] = torch.from_numpy(padded).to(device)
            cuda_graphs.install(model, cuda_graphs.GraphedForward(model, box_slots=slots))

        def step(model: Any = model, optimizer: Any = optimizer, ema: Any = ema, data: Any = data) -> None:
            ultralytics_step(model, optimizer, data)
            ema.update(model)

        held = {None: "", "forward": " + CUDA graph (forward, backward)", "step": " + CUDA graph (with the loss)"}
        name = f"step {layout}{held[graphed]}"
        rows.append((name, *_measure(step, warmup, steps)))
    return rows


def profile_draw(batch: int, imgsz: int, warmup: int, steps: int) -> list[tuple[str, float, float]]:
    import numpy as np
    import torch

    from sim2cloud.training import gpu_augment

    device = torch.device("cuda")
    images = 256
    buffer = torch.randint(0, 256, (images * imgsz * imgsz * 3,), dtype=torch.uint8)
    offsets = np.arange(images + 1) * imgsz * imgsz * 3
    shapes = np.array([[imgsz, imgsz, 3]] * images)
    store = gpu_augment.ImageStore(buffer, offsets, shapes, device)
    rng = np.random.default_rng(0)
    plans = []
    s = imgsz
    for _ in range(batch):
        centre = (int(rng.integers(s // 2, s * 3 // 2)), int(rng.integers(s // 2, s * 3 // 2)))
        sources = [int(rng.integers(images)) for _ in range(4)]
        mosaic = ("mosaic", 2 * imgsz, mosaic_pastes(centre, s, sources))
        matrix = (0.8, 0.1, -imgsz / 4, -0.1, 0.8, -imgsz / 4)
        plan = ("flip", ("hsv", ("affine", mosaic, matrix), (0.01, 0.3, 0.2)), "horizontal")
        plans.append(gpu_augment.PlannedImage((imgsz, imgsz, 3), plan))
    packed = gpu_augment.pack_plans(plans)
    parameters = gpu_augment.to_device(gpu_augment.image_parameters(packed), device)
    rows = [(f"draw {batch} mosaic images at {imgsz}, Triton kernel", *_measure(
        lambda: gpu_augment.draw(packed, store, device), warmup, steps))]  # fmt: skip
    rows.append((f"draw {batch} mosaic images at {imgsz}, PyTorch ops", *_measure(
        lambda: gpu_augment.draw_with_torch(packed, store, parameters, True), warmup, steps)))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    print(source_line(), flush=True)
    from sim2cloud.training import offline

    offline.prepare_offline_ultralytics(Path(tempfile.mkdtemp(prefix="step-profile-")) / "config")
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: this bench profiles the GPU path", flush=True)
        return 1
    rows = profile_draw(args.batch, args.imgsz, args.warmup, args.steps)
    rows += profile_steps(args.batch, args.imgsz, args.warmup, args.steps)
    for name, wall_ms, kernel_ms in rows:
        print(
            f"  {name:48s} {wall_ms:8.2f} ms wall, {kernel_ms:8.2f} ms of GPU kernels  "
            f"({args.batch / wall_ms * 1000:8.1f} images/s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
