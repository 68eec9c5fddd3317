"""``sim2cloud report``: the run report (report.html) from a run's artefacts on disk.

Every input but ``--dataset`` is optional; what is missing becomes a section saying so.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sim2cloud import contract


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, required=True, help="dataset dir (manifest.json, preview.png)")
    parser.add_argument(
        "--training", type=Path, help="the training job's /opt/ml-style dir (`sim2cloud train --out`); default: none"
    )
    parser.add_argument("--evaluation", type=Path, help="a `sim2cloud evaluate --out` dir; default: none")
    parser.add_argument(
        "--gate", type=Path, help="the model gate's record runs/<run>/metrics/<job>.json; default: none"
    )
    parser.add_argument(
        "--summary", type=Path, help="a demo's summary.json: its timeline, gate and cost are used; default: none"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(contract.REPORT_NAME), help="the page to write (default: %(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    from sim2cloud.report.collect import RunArtefacts, write_report

    if not (args.dataset / contract.DATASET_MANIFEST_NAME).is_file():
        raise SystemExit(f"sim2cloud report: --dataset {args.dataset} has no {contract.DATASET_MANIFEST_NAME}")
    summary = json.loads(args.summary.read_text()) if args.summary else {}
    gate = json.loads(args.gate.read_text()) if args.gate else summary.get("gate_record")
    artefacts = RunArtefacts(
        dataset=args.dataset,
        training=args.training,
        evaluation=args.evaluation,
        gate=gate,
        timeline=[{"stage": k, "seconds": v} for k, v in summary.get("timings", {}).items()],
        cost=summary.get("cost"),
    )
    print(write_report(artefacts, args.out))
    return 0
