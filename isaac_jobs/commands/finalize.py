"""``sim2cloud finalize``: merge complete render shards into one YOLO dataset; manifest.json is written last."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shards-dir", type=Path, required=True, help="folder holding shard-KKKK folders")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--expected-shards", type=int, default=None, help="fail unless shards 0..N-1 are all complete")
    parser.add_argument(
        "--val-fraction", type=float, default=None, help="share of val frames (default: the shards' spec)"
    )
    parser.add_argument(
        "--preview", action=argparse.BooleanOptionalAction, default=True, help="draw a preview grid (default on)"
    )


def run(args: argparse.Namespace) -> int:
    from isaac_jobs.dataset import DatasetExistsError, ShardIncompleteError, finalize, shard_dirs_in

    if not args.shards_dir.is_dir():
        print(f"sim2cloud finalize: --shards-dir {args.shards_dir}: not a folder", file=sys.stderr)
        return 2
    shard_dirs = shard_dirs_in(args.shards_dir)
    try:
        manifest = finalize(
            shard_dirs,
            args.out,
            expected_shards=args.expected_shards,
            val_fraction=args.val_fraction,
            preview_frames=16 if args.preview else 0,
        )
    except (ShardIncompleteError, DatasetExistsError) as err:
        print(f"sim2cloud finalize: {err}", file=sys.stderr)
        return 1
    print(f"{manifest['totals']['images']} images, {manifest['totals']['boxes']} boxes from {len(shard_dirs)} shards")
    print(f"dataset: {args.out.resolve()}")
    if manifest.get("preview"):
        print(f"preview: {args.out.resolve() / manifest['preview']}")
    return 0
