"""``sim2cloud demo``: meshes in, a registered, served and evaluated detector out, with no AWS account.

The flow of ARCHITECTURE section 1 on one machine (see :mod:`sim2cloud.local.runner` for what stands in
for what). Everything is written under ``--out``; the input meshes are only read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sim2cloud.local.runner import DEMO_FRAMES, DEMO_IMGSZ, DEMO_RENDER, DEMO_TRAINING

DEFAULT_MESHES = Path(__file__).resolve().parents[2] / "samples" / "meshes"
"""The repository's sample meshes, wherever the command is run from."""
# Defaults (runner.DEMO_*): frames rendered at the training size and a CPU-fitted schedule, all written into
# the batch's batch.yaml like any user's; --epochs/--imgsz/--batch/--hp change its training: section.


def _key_value(text: str) -> tuple[str, Any]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--meshes",
        type=Path,
        default=DEFAULT_MESHES,
        help="<class>/<file> mesh folder (read only; default: the repository's samples/meshes)",
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="where everything is written")
    parser.add_argument(
        "--batch-name", default="demo", help="the batch name (spaces allowed): meshes/<batch>/ in the data bucket"
    )
    parser.add_argument("--frames", type=_positive, default=DEMO_FRAMES, help="frames of the run (batch.yaml frames:)")
    parser.add_argument(
        "--frames-per-shard",
        type=_positive,
        default=DEMO_FRAMES // 2,
        help="the launcher's SIM2CLOUD_FRAMES_PER_SHARD: shards = ceil(frames / this)",
    )
    parser.add_argument(
        "--epochs",
        type=_positive,
        help=f"training epochs (batch.yaml training: epochs; default {DEMO_TRAINING['epochs']})",
    )
    parser.add_argument(
        "--imgsz",
        type=_positive,
        help=f"training image size, also the render size (batch.yaml training: imgsz, render: width/height; "
        f"default {DEMO_IMGSZ})",
    )
    parser.add_argument(
        "--batch",
        type=_positive,
        help=f"training batch size (batch.yaml training: batch; default {DEMO_TRAINING['batch']})",
    )
    parser.add_argument(
        "--set",
        dest="render_set",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="scene-spec override written into batch.yaml's render: section (repeatable), e.g. width=128",
    )

    parser.add_argument(
        "--hp",
        dest="training_set",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="hyperparameter written into batch.yaml's training: section (repeatable): it travels with the dataset "
        "into the launcher's request",
    )
    parser.add_argument(
        "--aws-endpoint",
        metavar="URL",
        help="use this (fresh) moto server instead of starting one, and leave it running to inspect afterwards",
    )


def batch_sections(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """batch.yaml's ``render:`` and ``training:`` sections: the demo's, then the flags, then --set / --hp."""
    render: dict[str, Any] = dict(DEMO_RENDER)
    training: dict[str, Any] = dict(DEMO_TRAINING)
    if args.imgsz is not None:
        render.update(width=args.imgsz, height=args.imgsz)
        training["imgsz"] = args.imgsz
    for flag in ("epochs", "batch"):
        if getattr(args, flag) is not None:
            training[flag] = getattr(args, flag)
    return {**render, **dict(args.render_set)}, {**training, **dict(args.training_set)}


def run(args: argparse.Namespace) -> int:
    from sim2cloud.batch_config import BatchConfigProblem, parse_batch_config
    from sim2cloud.local.runner import DemoFailed, DemoSettings, batch_yaml, run_demo

    if not args.meshes.is_dir():
        hint = " (the sample meshes come with a checkout of the repository)" if args.meshes == DEFAULT_MESHES else ""
        print(f"sim2cloud demo: --meshes {args.meshes}: no such folder{hint}", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"sim2cloud demo: --out {args.out}: is a file, not a folder", file=sys.stderr)
        return 2
    render, training = batch_sections(args)
    settings = DemoSettings(
        meshes=args.meshes,
        out=args.out,
        batch_name=args.batch_name,
        frames=args.frames,
        frames_per_shard=args.frames_per_shard,
        render_overrides=render,
        training=training,
        aws_endpoint=args.aws_endpoint,
    )
    try:  # the launcher's rules on the batch.yaml the flags make, before anything starts
        parse_batch_config(batch_yaml(settings))
    except BatchConfigProblem as problem:
        print(f"sim2cloud demo: batch.yaml from the flags: {problem}", file=sys.stderr)
        return 2
    try:
        run_demo(settings)
    except DemoFailed as failure:
        print(f"sim2cloud demo: {failure}", flush=True)
        return 1
    except KeyboardInterrupt:
        print("sim2cloud demo: interrupted", flush=True)
        return 130
    return 0
