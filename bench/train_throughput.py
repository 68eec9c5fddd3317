"""Training throughput: plain Ultralytics defaults vs the training entrypoint's instance defaults, side by side.

Both train YOLOv8n from its YAML on the same dataset for the same epochs and image size, each in its own
process, one after the other:

* ``plain``: what a user already has, ``YOLO("yolov8n.yaml").train(data=..., epochs=..., imgsz=...)`` with
  Ultralytics' defaults (batch 16, 8 workers, fp16 AMP; offline, so its AMP check is skipped, not failed);
* ``ours``: ``sim2cloud train --dataset DIR --hp epochs=N --hp imgsz=N``, every other setting chosen by the
  entrypoint for this instance (:mod:`sim2cloud.training.instance_defaults`).

Throughput is training images per second over the training passes only (validation and start-up excluded),
measured the same way for both: the dataset's training images over the wall time between Ultralytics'
``on_train_epoch_start`` and ``on_train_epoch_end``, summed over epochs. Accuracy is mAP50 / mAP50-95 of the
model each run exports (its ``best.pt``), both validated afterwards by one child process with the same
Ultralytics ``val`` settings on the dataset's val split: the figures each run prints for itself differ in kind
(plain Ultralytics ends by validating ``best.pt``, the entrypoint prints each epoch's EMA validation and gates
the exported ONNX model), so neither is compared. ``--cpus 4`` runs both restricted to the first 4 CPUs
(``taskset``), as on an ml.g5.xlarge; give several (``--cpus all,8,4``) to run each restriction in turn.

    python bench/train_throughput.py --dataset out/ds640 --epochs 10 --imgsz 640 --cpus all,8,4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.provenance import source_line  # noqa: E402
from sim2cloud import contract  # noqa: E402

RESULT_PREFIX = "TRAIN_THROUGHPUT_RESULT "
VAL_BATCH = 32
PLAIN_BATCH, PLAIN_WORKERS = 16, 8
"""Ultralytics' own defaults, written out so the baseline does not drift with its releases."""


# --------------------------------------------------------------------------------------
# The plain baseline (a child process)
# --------------------------------------------------------------------------------------
def _plain_child(data_yaml: str, epochs: int, imgsz: int, scratch: str) -> None:
    from sim2cloud.training import offline

    offline.prepare_offline_ultralytics(Path(scratch) / "config")
    from ultralytics import YOLO

    offline.disable_settings_sync()
    train_seconds: list[float] = []
    started: list[float] = []
    images: list[int] = []

    def on_start(trainer: Any) -> None:
        started.append(time.perf_counter())

    def on_end(trainer: Any) -> None:
        train_seconds.append(time.perf_counter() - started[-1])
        images.append(len(trainer.train_loader.dataset))

    model = YOLO("yolov8n.yaml")
    model.add_callback("on_train_epoch_start", on_start)
    model.add_callback("on_train_epoch_end", on_end)
    model.train(
        data=data_yaml,
        epochs=epochs,
        imgsz=imgsz,
        batch=PLAIN_BATCH,
        workers=PLAIN_WORKERS,
        plots=False,
        project=scratch,
        name="plain",
        exist_ok=True,
    )
    assert model.trainer is not None  # set by train()
    result = {
        "images_per_s": sum(images) / sum(train_seconds),
        "weights": str(model.trainer.best),
        "settings": f"batch {PLAIN_BATCH}, workers {PLAIN_WORKERS}, Ultralytics' defaults otherwise",
        "epoch_rates": [n / t for n, t in zip(images, train_seconds, strict=True)],
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def _val_child(weights: str, data_yaml: str, imgsz: int, scratch: str) -> None:
    """One protocol for every run's exported weights: Ultralytics' val of the val split, fixed settings."""
    from sim2cloud.training import offline

    offline.prepare_offline_ultralytics(Path(scratch) / "config")
    from ultralytics import YOLO

    offline.disable_settings_sync()
    metrics = YOLO(weights).val(
        data=data_yaml, split="val", imgsz=imgsz, batch=VAL_BATCH, plots=False, project=scratch, name="val"
    )
    result = {"mAP50": float(metrics.box.map50), "mAP50-95": float(metrics.box.map)}
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def validate(weights: Path, dataset: Path, imgsz: int, work: Path, name: str) -> dict[str, float]:
    result = _run_child(
        "--val-child", [str(weights), str(dataset / contract.DATA_YAML_NAME), str(imgsz)], work, f"val-{name}"
    )
    return {key: float(value) for key, value in result.items()}


# --------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------
def _cpu_prefix(cpus: str) -> list[str]:
    if cpus == "all":
        return []
    count = int(cpus)
    available = sorted(os.sched_getaffinity(0))
    if count > len(available):
        raise SystemExit(f"--cpus {count}: only {len(available)} CPUs are usable here")
    return ["taskset", "-c", ",".join(str(c) for c in available[:count])]


class RunFailed(RuntimeError):
    """One configuration failed; the bench reports it and goes on with the next."""


def _run(command: list[str], log: Path) -> list[str]:
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path, "OPENBLAS_NUM_THREADS": "1"}
    with log.open("w") as handle:
        process = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=handle, text=True, cwd=REPO_ROOT)
        handle.write(process.stdout)
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RunFailed(f"{' '.join(command)} exited with {process.returncode}; log: {log}\n{tail}")
    return process.stdout.splitlines()


def _run_child(mode: str, arguments: list[str], work: Path, name: str, prefix: list[str] | None = None) -> Any:
    """This script in ``mode`` (``--plain-child``, ``--val-child``) with a fresh scratch folder; its result."""
    scratch = work / name
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    command = [*(prefix or []), sys.executable, str(Path(__file__).resolve()), mode, *arguments, str(scratch)]
    lines = _run(command, work / f"{name}.log")
    [result] = [json.loads(line[len(RESULT_PREFIX) :]) for line in lines if line.startswith(RESULT_PREFIX)]
    return result


def run_plain(dataset: Path, epochs: int, imgsz: int, cpus: str, work: Path) -> dict[str, Any]:
    arguments = [str(dataset / contract.DATA_YAML_NAME), str(epochs), str(imgsz)]
    result = _run_child("--plain-child", arguments, work, f"plain-{cpus}", prefix=_cpu_prefix(cpus))
    return {**result, **validate(Path(result["weights"]), dataset, imgsz, work, f"plain-{cpus}")}


def run_ours(
    dataset: Path, epochs: int, imgsz: int, cpus: str, work: Path, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    name = f"ours-{cpus}" + "".join(f"-{e.replace('=', '-')}" for e in extra)
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    command = [
        *_cpu_prefix(cpus),
        sys.executable,
        "-m",
        "sim2cloud.cli",
        "train",
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--hp",
        f"epochs={epochs}",
        "--hp",
        f"imgsz={imgsz}",
        *(arg for setting in extra for arg in ("--hp", setting)),
    ]
    lines = _run(command, work / f"{name}.log")
    epochs_seen = [m for m in map(contract.parse_metric_line, lines) if m is not None]
    if not epochs_seen:
        raise RunFailed(f"sim2cloud train printed no metric line; log: {work / f'{name}.log'}")
    # images/s over the whole run: the per-epoch rates weighted by time (each epoch trains the same images).
    rates = [m["train_images_per_s"] for m in epochs_seen if m.get("train_images_per_s")]
    settings = [line.strip() for line in lines if line.startswith("  ") and " = " in line]
    return {
        "images_per_s": len(rates) / sum(1 / r for r in rates),
        **validate(
            Path(contract.SageMakerPaths(base=str(out)).model_dir, contract.MODEL_PT_NAME), dataset, imgsz, work, name
        ),
        "settings": "; ".join(s.split(":")[0] for s in settings),
        "epoch_rates": rates,
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list and args_list[0] == "--plain-child":
        _plain_child(args_list[1], int(args_list[2]), int(args_list[3]), args_list[4])
        return 0
    if args_list and args_list[0] == "--val-child":
        _val_child(args_list[1], args_list[2], int(args_list[3]), args_list[4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a rendered dataset (data.yaml, images/, labels/)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--cpus", default="all", help="comma-separated CPU restrictions: all, or a count (taskset)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also run the entrypoint with this hyperparameter set (repeatable: one more row with all of them)",
    )
    parser.add_argument("--work", type=Path, help="scratch folder for runs and logs (default: a temp dir)")
    args = parser.parse_args(args_list)
    print(source_line(), flush=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="train-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"dataset {args.dataset}, {args.epochs} epochs at imgsz {args.imgsz}; logs in {work}", flush=True)
    failed = 0
    for cpus in args.cpus.split(","):
        try:
            plain = run_plain(args.dataset, args.epochs, args.imgsz, cpus, work)
            ours = run_ours(args.dataset, args.epochs, args.imgsz, cpus, work)
            rows = [("plain Ultralytics defaults", plain), ("sim2cloud train defaults", ours)]
            if args.variant:
                variant = run_ours(args.dataset, args.epochs, args.imgsz, cpus, work, tuple(args.variant))
                rows.append((f"sim2cloud train, {' '.join(args.variant)}", variant))
        except RunFailed as failure:
            print(f"cpus {cpus}: FAILED {failure}", flush=True)
            failed += 1
            continue
        print(f"cpus {cpus}:", flush=True)
        for name, result in rows:
            print(
                f"  {name:27s} {result['images_per_s']:8.1f} train images/s  mAP50 {_fmt(result['mAP50'])}  "
                f"mAP50-95 {_fmt(result['mAP50-95'])}  ({result['settings']})",
                flush=True,
            )
        for name, result in rows:
            per_epoch = " ".join(f"{rate:.0f}" for rate in result["epoch_rates"])
            print(f"  {name:27s} images/s per epoch: {per_epoch}", flush=True)
        for name, result in rows[1:]:
            ratio = result["images_per_s"] / plain["images_per_s"]
            delta = (result["mAP50"] or 0.0) - (plain["mAP50"] or 0.0)
            print(f"  ratio {name} / plain: {ratio:.2f}x images/s; mAP50 difference {delta:+.3f}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
