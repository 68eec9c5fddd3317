"""Where a GPU training step's time goes: YOLOv8n steps on synthetic batches, and the GPU draw of a batch.

Not a throughput figure (bench/train_throughput.py is): this splits one optimizer step of the training
entrypoint's GPU path into its parts, with the GPU synchronised between them, so a change can be aimed at the
part that costs. Each row is the median over ``--steps`` steps after ``--warmup`` steps:

* ``step``: forward + loss under bf16 autocast, backward, gradient clipping, AdamW, EMA (Ultralytics' own
  model, loss, clipping and EMA), in NCHW and in channels_last memory format, each with cuDNN's autotuner off
  and on;
* ``draw``: :func:`sim2cloud.training.gpu_augment.draw` of a mosaic batch (4 tiles per image, affine warp,
  HSV, flips) at the given size.

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


def _median_ms(run: Callable[[], None], sync: Callable[[], None], warmup: int, steps: int) -> float:
    for _ in range(warmup):
        run()
    sync()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _synthetic_batch(batch: int, imgsz: int, classes: int, device: Any) -> dict[str, Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    per_image = 6
    centres = torch.rand(batch * per_image, 2, generator=generator) * 0.8 + 0.1
    sizes = torch.rand(batch * per_image, 2, generator=generator) * 0.15 + 0.03
    return {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=generator).to(device),
        "batch_idx": torch.arange(batch).repeat_interleave(per_image).float().to(device),
        "cls": torch.randint(0, classes, (batch * per_image, 1), generator=generator).float().to(device),
        "bboxes": torch.cat((centres, sizes), 1).to(device),
    }


def profile_steps(batch: int, imgsz: int, warmup: int, steps: int) -> list[tuple[str, float]]:
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.torch_utils import ModelEMA

    device = torch.device("cuda")
    rows = []
    for channels_last in (False, True):
        for benchmark in (False, True):
            torch.backends.cudnn.benchmark = benchmark
            model = DetectionModel("yolov8n.yaml", nc=5, verbose=False).to(device)
            model.args = get_cfg()
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            model.train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            ema = ModelEMA(model)
            data = _synthetic_batch(batch, imgsz, 5, device)
            if channels_last:
                data["img"] = data["img"].contiguous(memory_format=torch.channels_last)

            def step(model: Any = model, optimizer: Any = optimizer, ema: Any = ema, data: Any = data) -> None:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss, _ = model(data)
                loss.sum().backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
                optimizer.step()
                optimizer.zero_grad()
                ema.update(model)

            layout = "channels_last" if channels_last else "NCHW"
            name = f"step {layout:13s} cudnn.benchmark={'on ' if benchmark else 'off'}"
            rows.append((name, _median_ms(step, torch.cuda.synchronize, warmup, steps)))
    torch.backends.cudnn.benchmark = False
    return rows


def profile_draw(batch: int, imgsz: int, warmup: int, steps: int) -> list[tuple[str, float]]:
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
        yc, xc = (int(v) for v in rng.integers(s // 2, s * 3 // 2, size=2))
        pastes = []
        for top in (True, False):
            for left in (True, False):
                y1a, y2a = (max(yc - s, 0), yc) if top else (yc, min(yc + s, 2 * s))
                x1a, x2a = (max(xc - s, 0), xc) if left else (xc, min(xc + s, 2 * s))
                y1b = s - (y2a - y1a) if top else 0
                x1b = s - (x2a - x1a) if left else 0
                source = ("source", int(rng.integers(images)), s, s)
                pastes.append((source, y1a, y2a, x1a, x2a, y1b, y1b + y2a - y1a, x1b, x1b + x2a - x1a))
        mosaic = ("mosaic", 2 * imgsz, tuple(pastes))
        matrix = (0.8, 0.1, -imgsz / 4, -0.1, 0.8, -imgsz / 4)
        plan = ("flip", ("hsv", ("affine", mosaic, matrix), (0.01, 0.3, 0.2)), "horizontal")
        plans.append(gpu_augment.PlannedImage((imgsz, imgsz, 3), plan))
    packed = gpu_augment.pack_plans(plans)
    return [(f"draw {batch} mosaic images at {imgsz}", _median_ms(lambda: gpu_augment.draw(packed, store, device),
                                                                 torch.cuda.synchronize, warmup, steps))]  # fmt: skip


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
    for name, ms in rows:
        print(f"  {name:48s} {ms:8.2f} ms  ({args.batch / ms * 1000:8.1f} images/s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
