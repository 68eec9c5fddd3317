"""``sim2cloud convert``: a batch of meshes -> validated USD assets and a per-file report, without rendering.

The preparation step every render runs first (:func:`isaac_jobs.prepare.prepare_batch`), on its own: for
users who want the assets themselves (to open in Isaac Sim or usdview, or to upload as USD input later).
``--out`` receives ``<class>/<name>.usd`` (+ ``<name>_basecolor.png`` when textured), ``batch-plan.json`` and
``report.json`` (:data:`REPORT_NAME`: one entry per file of the batch, converted or not, and why). The
process exits 1 when no file could be converted (every reason printed), else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Final

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy, as in every render process

REPORT_NAME: Final = "report.json"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--meshes", type=Path, required=True, help="batch folder: <meshes>/<class>/<mesh file>")
    parser.add_argument("--out", type=Path, required=True, help="folder for the USD assets, plan and report.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def report(prepared: Any, meshes_dir: Path, seconds: float) -> dict[str, Any]:
    """Per-file outcome: each converted file with its asset, each skipped file with its reason."""
    files = [
        {
            "source": asset.source,
            "status": "converted",
            "class_name": asset.class_name,
            "asset": asset.path,
            "sha256": asset.sha256,
            "bytes": asset.bytes,
            "triangles": asset.triangles,
            "original_triangles": asset.original_triangles,
            "companions": [f.path for f in asset.files if f.path != asset.path],
        }
        for asset in prepared.assets
    ] + [{"source": error.path, "status": "skipped", "reason": error.reason} for error in prepared.errors]
    return {
        "meshes": str(meshes_dir),
        "assets": str(prepared.assets_dir),
        "converted": len(prepared.assets),
        "skipped": len(prepared.errors),
        "seconds": round(seconds, 3),
        "reused": prepared.reused,
        "files": sorted(files, key=lambda item: str(item["source"])),
    }


def run(args: argparse.Namespace) -> int:
    from isaac_jobs.batch import BatchConfigError
    from isaac_jobs.mesh import MeshError
    from isaac_jobs.prepare import AssetFolderError, NoValidMeshesError, prepare_batch

    if not args.meshes.is_dir():
        print(f"sim2cloud convert: --meshes {args.meshes}: not a folder", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        prepared = prepare_batch(args.meshes, args.out, progress=not args.no_progress)
    except (NoValidMeshesError, AssetFolderError, BatchConfigError, MeshError) as err:
        print(f"sim2cloud convert: {err}", file=sys.stderr)
        return 1
    summary = report(prepared, args.meshes, time.perf_counter() - start)
    (args.out / REPORT_NAME).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    for item in summary["files"]:
        if item["status"] == "converted":
            print(f"  ok       {item['source']} -> {item['asset']} ({item['triangles']} triangles)")
        else:
            print(f"  skipped  {item['source']}: {item['reason']}", file=sys.stderr)
    state = "already up to date" if prepared.reused else f"in {summary['seconds']:.1f} s"
    print(f"{summary['converted']} USD assets in {args.out} ({summary['skipped']} files skipped), {state}")
    print(f"report: {args.out / REPORT_NAME}")
    return 0
