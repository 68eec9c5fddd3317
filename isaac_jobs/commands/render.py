"""``sim2cloud render``: meshes -> a YOLO dataset (or one shard of it) with the gl or isaac backend.

Without ``--shards`` the whole run is one shard, finalized straight into ``--out`` (dataset path and preview
picture printed at the end). With ``--shard K --shards N`` only shard K is written, as ``--out/shard-KKKK``
(complete or absent); ``sim2cloud finalize`` merges the shards later.

The meshes become USD assets first (``--assets``; by default ``<out>-assets`` beside the dataset, or
``<out>/assets`` shared by the shards rendered into one folder); an unchanged batch reuses them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

# OpenBLAS's worker threads fight llvmpipe's render threads for the cores (about 4x slower on 2 cores); this
# must be set before numpy loads, which is why it sits at import time of the command module (the CLI imports
# only the chosen command's module, before anything heavy). An explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _parse_setting(text: str) -> tuple[str, Any]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (a scene-spec setting), got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"{key}: value {value!r} is not valid YAML ({err})") from err


def _parse_workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a number of processes, got {text!r}") from None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--meshes", type=Path, required=True, help="batch folder: <meshes>/<class>/<mesh file>")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (or, with --shards, the shards folder)")
    parser.add_argument(
        "--config", type=Path, default=None, help="scene-spec YAML (keys of isaac_jobs/default_spec.yaml)"
    )
    parser.add_argument("--frames", type=int, default=None, help="total frames of the run (overrides the spec)")
    parser.add_argument("--seed", type=int, default=None, help="master seed (overrides the spec)")
    parser.add_argument(
        "--workers",
        type=_parse_workers,
        default=None,
        metavar="N|auto",
        help="gl backend: processes rendering the frames, each with its own GL context (the spec's render_workers; "
        "default auto: half the CPUs, at most 4, on a GPU host; 1 on a CPU rasteriser); the frames do not depend on it",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        type=_parse_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any scene-spec setting, value in YAML (e.g. --set width=320 --set 'objects_per_frame=[2, 5]')",
    )
    parser.add_argument(
        "--assets",
        type=Path,
        default=None,
        help="folder for the batch's USD assets and plan (default <out>-assets, or <out>/assets with --shards)",
    )
    parser.add_argument("--backend", choices=("gl", "isaac"), default="gl", help="renderer (default gl: moderngl/EGL)")
    parser.add_argument("--shard", type=int, default=None, help="render only this shard (0..N-1); needs --shards")
    parser.add_argument("--shards", type=int, default=None, help="number of shards the run is split into")
    parser.add_argument(
        "--preview",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="draw a preview grid with boxes into the dataset (default on; single-shard runs)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace the dataset already in --out (without it, a non-empty --out is refused)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from isaac_jobs.backends import BackendUnavailableError
    from isaac_jobs.batch import BatchConfigError
    from isaac_jobs.dataset import DatasetExistsError, ShardIncompleteError, finalize
    from isaac_jobs.prepare import AssetFolderError, NoValidMeshesError
    from isaac_jobs.render_workers import RenderWorkerError
    from isaac_jobs.shards import render_shard
    from isaac_jobs.spec import SpecError, load_spec

    if args.shards is not None and args.shard is None:
        print("sim2cloud render: --shards N needs --shard K (which shard to render)", file=sys.stderr)
        return 2
    if args.shard is not None and args.shards is None:
        print("sim2cloud render: --shard K needs --shards N", file=sys.stderr)
        return 2
    if args.shards is not None and not 0 <= args.shard < args.shards:
        print(f"sim2cloud render: --shard {args.shard} must be in 0..{args.shards - 1}", file=sys.stderr)
        return 2
    if not args.meshes.is_dir():
        print(f"sim2cloud render: --meshes {args.meshes}: not a folder", file=sys.stderr)
        return 2
    out_problem = _out_problem(args.out, force=args.force, shards=args.shards is not None)
    if out_problem is not None:
        print(f"sim2cloud render: --out {args.out}: {out_problem}", file=sys.stderr)
        return 2
    try:
        spec = load_spec(
            args.config,
            {**dict(args.settings), "frames": args.frames, "seed": args.seed, "render_workers": args.workers},
        )
    except SpecError as err:
        print(f"sim2cloud render: scene spec: {err}", file=sys.stderr)
        return 2

    progress = not args.no_progress
    try:
        if args.shards is not None:
            assets = args.assets or args.out / "assets"
            result = render_shard(
                args.meshes, args.out, assets_dir=assets, spec=spec, shard=args.shard, shards=args.shards,
                backend=args.backend, progress=progress,
            )  # fmt: skip
            _report_errors(result.errors)
            print(f"shard {args.shard} of {args.shards}: {result.frames} frames in {result.path}")
            print(f"USD assets: {assets}")
            return 0
        out = args.out.resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        assets = args.assets or out.with_name(out.name + "-assets")
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.shards-", dir=out.parent) as shards_dir:
            result = render_shard(
                args.meshes, Path(shards_dir), assets_dir=assets, spec=spec, backend=args.backend, progress=progress
            )
            manifest = finalize([result.path], out, preview_frames=16 if args.preview else 0)
    except NoValidMeshesError as err:
        print(f"sim2cloud render: {err}", file=sys.stderr)
        return 1
    except (
        AssetFolderError,
        BackendUnavailableError,
        BatchConfigError,
        DatasetExistsError,
        RenderWorkerError,
        ShardIncompleteError,
        SpecError,
    ) as err:
        print(f"sim2cloud render: {err}", file=sys.stderr)
        return 1
    _report_errors(result.errors)
    counts = manifest["counts"]
    print(
        f"{manifest['totals']['images']} images ({counts['train']['images']} train, {counts['val']['images']} val), "
        f"{manifest['totals']['boxes']} boxes, classes: {', '.join(manifest['class_names'])}"
    )
    print(f"dataset: {out}")
    print(f"USD assets: {assets} ({len(manifest['assets']['files'])} files, plan {manifest['assets']['plan']})")
    print(f"data.yaml: {out / 'data.yaml'}")
    if manifest.get("preview"):
        print(f"preview: {out / manifest['preview']}")
    return 0


def _out_problem(out: Path, *, force: bool, shards: bool) -> str | None:
    """Why ``--out`` cannot take the render (None: it can), checked before any work is done."""
    if out.exists() and not out.is_dir():
        return "is a file, not a folder (the dataset is a folder: images/, labels/, data.yaml)"
    if shards or force or not out.is_dir() or not any(out.iterdir()):
        return None
    return "is not empty; pass --force to replace the dataset in it, or choose another folder"


def _report_errors(errors: list[Any]) -> None:
    # Each error was printed as it was found ("mesh skipped: ..."); only the count is repeated here.
    if errors:
        print(f"{len(errors)} mesh file(s) skipped (listed above)", file=sys.stderr)
