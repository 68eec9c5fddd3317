"""Domain-shift benchmark: does a detector trained only on GL renders find the same objects in other images?

    PYTHONPATH=$PWD .venv/bin/python bench/domain_shift.py --variant cpu --out /tmp/shift      # quick check
    PYTHONPATH=$PWD .venv/bin/python bench/domain_shift.py --variant gpu --out /tmp/shift-gpu  # the figure

Steps (each a separate process, as in the pipeline: GL and torch never share one):

1. the mesh batch of bench/shift_meshes.py (7 everyday classes; textured, vertex-coloured, colourless and one
   whose MTL names a texture that is not where it says) is generated into ``OUT/meshes``;
2. the reference set, path traced by Blender Cycles with every object in its real-world look (textured ground
   planes, shadows, varied lights and camera; tight boxes from the object-index pass), by
   bench/cycles_reference.py in its own virtualenv (``--bpy-venv``; created on demand with PyPI's
   bpy==5.0.1 and OpenEXR, about 1 GB: bpy pins numpy 1.26, so it never goes into the project's venv).
   ``--reference DIR`` reuses a set rendered earlier (``--reference-only`` renders just that set);
3. ``sim2cloud render`` renders the GL training set from the same meshes (``--set KEY=VALUE`` overrides the
   scene spec), ``sim2cloud train`` trains YOLOv8n on it, and ``sim2cloud evaluate`` measures the model on the
   GL val split (synthetic) and on the reference set (shift);
4. prints mAP50 side by side, overall and per class, and writes ``OUT/domain_shift.json``.

Variants size the run: ``cpu`` (few images and epochs at 320 px: checks the whole path in a few minutes on
2 cores; its figures mean little) and ``gpu`` (3,000 GL frames, 40 epochs at 640, batch 64: the figure to
quote; its reference set is rendered on a CPU machine beforehand with ``--reference-only``, since Cycles is
not installed on the GPU machine). Every size can be overridden by a flag.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.provenance import source_line  # noqa: E402
from bench.shift_meshes import APPEARANCE, HUE_JITTER, make_shift_meshes  # noqa: E402
from sim2cloud import contract  # noqa: E402

BPY_REQUIREMENTS = ("bpy==5.0.1", "OpenEXR==3.5.3")
"""The reference renderer's own virtualenv: bpy 5.0.1 is the last wheel for CPython 3.11, which it needs."""
BPY_PYTHON = "python3.11"
DEFAULT_BPY_VENV = Path.home() / ".cache" / "sim2cloud" / "bpy-5.0.1"


@dataclass(frozen=True)
class Variant:
    reference_images: int
    reference_size: int
    reference_samples: int
    frames: int
    epochs: int
    imgsz: int
    batch: int
    workers: int


VARIANTS = {
    "cpu": Variant(
        reference_images=48,
        reference_size=320,
        reference_samples=12,
        frames=240,
        epochs=4,
        imgsz=320,
        batch=8,
        workers=2,
    ),
    "gpu": Variant(
        reference_images=120,
        reference_size=512,
        reference_samples=16,
        frames=3000,
        epochs=40,
        imgsz=640,
        batch=64,
        workers=14,
    ),
}


def run(command: list[str], *, log: Path, env: dict[str, str] | None = None, nice: int = 0, echo: bool = True) -> None:
    """Run one step as its own process, keeping its output in ``log`` (and echoing it); stop the bench on failure."""
    if nice:
        command = ["nice", "-n", str(nice), *command]
    print(f"$ {' '.join(command)}", flush=True)
    with log.open("w") as sink:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO
        )
        assert process.stdout is not None
        for line in process.stdout:
            sink.write(line)
            if echo:
                print(f"  {line.rstrip()}", flush=True)
        if process.wait() != 0:
            raise SystemExit(f"step failed (exit {process.returncode}); its whole output is in {log}")


def ensure_bpy_venv(venv: Path) -> Path:
    """The reference renderer's interpreter; the venv is created (about 1 GB, a few minutes) when missing."""
    python = venv / "bin" / "python"
    if python.is_file():
        return python
    base = shutil.which(BPY_PYTHON)
    if base is None:
        raise SystemExit(f"the reference renderer needs {BPY_PYTHON} (bpy has no wheel for other Pythons)")
    print(f"creating {venv} with {' '.join(BPY_REQUIREMENTS)} (once; about 1 GB)", flush=True)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *BPY_REQUIREMENTS], check=True)
    return python


def reference_job(meshes_dir: Path, work: Path, out: Path, args: argparse.Namespace) -> Path:
    """Export every mesh as the project's loader reads it (.npz) and write the Cycles job description."""
    import numpy as np
    from PIL import Image

    from isaac_jobs.batch import discover_batch, load_batch

    plan = discover_batch(meshes_dir)
    meshes, errors = load_batch(plan, progress=False)
    if errors:
        raise SystemExit("the benchmark's meshes do not load: " + "; ".join(str(e) for e in errors))
    work.mkdir(parents=True, exist_ok=True)
    entries = []
    for mesh in meshes:
        arrays = {"positions": mesh.positions, "faces": mesh.faces, "normals": mesh.normals}
        look = APPEARANCE[mesh.class_name]
        texture = None
        if look.get("texture"):
            texture = str((meshes_dir / mesh.class_name / look["texture"]).resolve())
        elif mesh.texture is not None:
            texture = str(work / f"{mesh.class_name}_{mesh.name}.png")
            Image.fromarray(mesh.texture[..., :3]).save(texture)
        if texture is not None and mesh.uvs is not None:
            arrays["uvs"] = mesh.uvs
        elif mesh.colors is not None:
            arrays["colors"] = mesh.colors
        npz = work / f"{mesh.class_name}_{mesh.name}.npz"
        np.savez(npz, **arrays)
        entries.append(
            {
                "name": f"{mesh.class_name}_{mesh.name}",
                "class_id": plan.class_names.index(mesh.class_name),
                "npz": str(npz),
                "texture": texture if "uvs" in arrays else None,
                "vertex_colors": "colors" in arrays,
                "appearance": look,
                "hue_jitter": HUE_JITTER,
            }
        )
    job = {
        "meshes": entries,
        "class_names": plan.class_names,
        "images": args.reference_images,
        "width": args.reference_size,
        "height": args.reference_size,
        "samples": args.reference_samples,
        "seed": args.reference_seed,
        "threads": os.cpu_count() or 2,
        "out": str(out),
    }
    path = work / "job.json"
    path.write_text(json.dumps(job, indent=2))
    return path


def render_reference(meshes_dir: Path, out: Path, args: argparse.Namespace) -> None:
    if out.exists():
        shutil.rmtree(out)
    python = ensure_bpy_venv(args.bpy_venv)
    job = reference_job(meshes_dir, out.parent / f"{out.name}-job", out, args)
    start = time.monotonic()
    run([str(python), str(REPO / "bench" / "cycles_reference.py"), str(job)], log=out.parent / "cycles.log", nice=10)
    seconds = time.monotonic() - start
    print(
        f"reference set: {args.reference_images} images in {seconds:.0f} s "
        f"({args.reference_images / seconds:.2f} images/s, Cycles on CPU) -> {out}",
        flush=True,
    )


def evaluate(model: Path, data: Path, out: Path, log: Path) -> dict[str, Any]:
    cli = [sys.executable, "-m", "sim2cloud.cli"]
    run(
        [
            *cli,
            "evaluate",
            "--model",
            str(model),
            "--data",
            str(data),
            "--split",
            contract.VAL_SPLIT,
            "--out",
            str(out),
            "--no-progress",
        ],
        log=log,
        echo=False,
    )
    document: dict[str, Any] = json.loads((out / "evaluation.json").read_text())
    return document


def report(synthetic: dict[str, Any], shift: dict[str, Any], class_names: Sequence[str]) -> list[str]:
    lines = [
        f"{'class':<10} {'synthetic AP50':>15} {'shift AP50':>11} {'shift boxes':>12}",
        f"{'all':<10} {synthetic['mAP50']:>15.3f} {shift['mAP50']:>11.3f} "
        f"{sum(c['ground_truth'] for c in shift['per_class'].values()):>12}",
    ]
    for name in class_names:
        syn, sh = synthetic["per_class"].get(name), shift["per_class"].get(name)
        lines.append(
            f"{name:<10} {syn['AP50'] if syn else float('nan'):>15.3f} {sh['AP50'] if sh else float('nan'):>11.3f} "
            f"{sh['ground_truth'] if sh else 0:>12}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="cpu", help="sizes of the run (see above)")
    parser.add_argument("--out", type=Path, required=True, help="work folder (meshes, sets, model, results)")
    parser.add_argument("--reference", type=Path, help="use this reference set (rendered earlier) instead")
    parser.add_argument("--reference-only", action="store_true", help="render the reference set, then stop")
    parser.add_argument("--bpy-venv", type=Path, default=DEFAULT_BPY_VENV, help="virtualenv with bpy (made if absent)")
    parser.add_argument("--reference-images", type=int, help="images in the reference set")
    parser.add_argument("--reference-size", type=int, help="reference image side, pixels")
    parser.add_argument("--reference-samples", type=int, help="Cycles samples per pixel (denoised)")
    parser.add_argument("--reference-seed", type=int, default=1, help="seed of the reference scenes")
    parser.add_argument("--frames", type=int, help="GL training frames")
    parser.add_argument("--epochs", type=int, help="training epochs")
    parser.add_argument("--imgsz", type=int, help="training and evaluation image size")
    parser.add_argument("--batch", type=int, help="training batch size")
    parser.add_argument("--workers", type=int, help="dataloader workers")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="scene-spec override (GL)")
    parser.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="extra training hyperparameter")
    args = parser.parse_args(argv)
    variant = VARIANTS[args.variant]
    for name, value in vars(variant).items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    print(source_line(), flush=True)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    meshes_dir = out / "meshes"
    make_shift_meshes(meshes_dir)
    reference = args.reference or out / "reference"
    if args.reference is None:
        render_reference(meshes_dir, reference, args)
    if args.reference_only:
        return 0
    if not (reference / "data.yaml").is_file():
        raise SystemExit(f"{reference} holds no reference set (no data.yaml)")

    cli = [sys.executable, "-m", "sim2cloud.cli"]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    dataset, training = out / "gl", out / "train"
    for folder in (dataset, training):
        if folder.exists():
            shutil.rmtree(folder)
    start = time.monotonic()
    sets = [item for pair in (("--set", s) for s in args.set) for item in pair]
    run(
        [
            *cli,
            "render",
            "--meshes",
            str(meshes_dir),
            "--out",
            str(dataset),
            "--frames",
            str(args.frames),
            "--no-progress",
            *sets,
        ],
        log=out / "render.log",
        env=env,
    )
    rendered = time.monotonic()
    hps = [f"epochs={args.epochs}", f"imgsz={args.imgsz}", f"batch={args.batch}", f"workers={args.workers}", *args.hp]
    run(
        [
            *cli,
            "train",
            "--dataset",
            str(dataset),
            "--out",
            str(training),
            "--no-progress",
            *[item for hp in hps for item in ("--hp", hp)],
        ],
        log=out / "train.log",
    )
    trained = time.monotonic()
    model = Path(contract.SageMakerPaths(base=str(training)).model_dir)
    synthetic = evaluate(model, dataset, out / "eval-synthetic", out / "eval-synthetic.log")
    shift = evaluate(model, reference, out / "eval-shift", out / "eval-shift.log")
    class_names = json.loads((model / contract.MODEL_JSON_NAME).read_text())["class_names"]

    lines = report(synthetic, shift, class_names)
    print(
        f"\nGL render {rendered - start:.0f} s, training {trained - rendered:.0f} s; "
        f"{args.frames} frames, {args.epochs} epochs at {args.imgsz}, spec overrides {args.set or 'none'}"
    )
    print("\n".join(lines))
    result = {
        "source": source_line(),
        "variant": args.variant,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "synthetic": synthetic,
        "shift": shift,
        "table": lines,
    }
    (out / "domain_shift.json").write_text(json.dumps(result, indent=2))
    print(f"\nresults: {out / 'domain_shift.json'}; pictures: {out / 'eval-shift' / 'detections.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
