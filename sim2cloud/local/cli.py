"""``sim2cloud demo``: meshes in, a registered, served and evaluated detector out, with no AWS account.

The flow of ARCHITECTURE section 1 on one machine (see :mod:`sim2cloud.local.runner` for what stands in
for what). Everything is written under ``--out``; the input meshes are only read.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_MESHES = Path("samples/meshes")
# Defaults: about 2.5 minutes on 2 CPU cores (320 frames of 640 px in a 2-child array job, 12 epochs of
# YOLOv8n from scratch at 256 px), enough for a non-zero mAP (about 0.12 mAP50); 3 epochs stay at 0.


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
    parser.add_argument("--meshes", type=Path, default=DEFAULT_MESHES, help="<class>/<file> mesh folder (read only)")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="where everything is written")
    parser.add_argument("--batch-name", default="demo", help="the batch id: meshes/<batch>/ in the data bucket")
    parser.add_argument("--frames", type=_positive, default=320, help="frames of the run (batch.yaml frames:)")
    parser.add_argument(
        "--frames-per-shard",
        type=_positive,
        default=160,
        help="the launcher's SIM2CLOUD_FRAMES_PER_SHARD: shards = ceil(frames / this)",
    )
    parser.add_argument("--epochs", type=_positive, default=12, help="training epochs (overrides the launcher's)")
    parser.add_argument("--imgsz", type=_positive, default=256, help="training image size (overrides the launcher's)")
    parser.add_argument("--batch", type=_positive, default=16, help="training batch size (overrides the launcher's)")
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


def run(args: argparse.Namespace) -> int:
    from sim2cloud.local.runner import DemoFailed, DemoSettings, run_demo

    settings = DemoSettings(
        meshes=args.meshes,
        out=args.out,
        batch_name=args.batch_name,
        frames=args.frames,
        frames_per_shard=args.frames_per_shard,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch_size=args.batch,
        render_overrides=dict(args.render_set),
        training=dict(args.training_set),
        aws_endpoint=args.aws_endpoint,
    )
    try:
        run_demo(settings)
    except DemoFailed as failure:
        print(f"sim2cloud demo: {failure}", flush=True)
        return 1
    except KeyboardInterrupt:
        print("sim2cloud demo: interrupted", flush=True)
        return 130
    return 0
