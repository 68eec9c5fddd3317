#!/usr/bin/env python3
"""Synthesize every environment (with cdk-nag) and run cfn-lint and checkov over its templates.

    .venv/bin/python scripts/check_infra.py [--env dev --env prod] [--out DIR] [--github-repository OWNER/NAME]

The CiAccess stack exists only for a named GitHub repository: give one (``make check-infra`` passes
``$GITHUB_REPOSITORY``, which GitHub Actions sets) to check it too.

Exit status 0 when every environment synthesizes with no unacknowledged cdk-nag finding and both scanners
report nothing; 1 otherwise (the findings are printed). ``make check-infra`` runs it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # stacks/ is not installed; importing it selects Node 22 for jsii

from stacks.config import ENVIRONMENTS  # noqa: E402
from stacks.pipeline import build_app  # noqa: E402
from stacks.template_checks import run_cfn_lint, run_checkov  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", choices=ENVIRONMENTS, help="environment (default: all)")
    parser.add_argument("--out", type=Path, help="where the cloud assemblies go (default: a temp dir)")
    parser.add_argument("--github-repository", help="owner/name the CiAccess roles trust (else no CiAccess stack)")
    args = parser.parse_args(argv)
    context = {"github_repository": args.github_repository} if args.github_repository else {}
    out = args.out or Path(tempfile.mkdtemp(prefix="sim2cloud-synth-"))
    failed = False
    for name in args.env or ENVIRONMENTS:
        assembly = out / name
        started = time.perf_counter()
        app, stacks = build_app(name, outdir=str(assembly), context=context)
        try:
            app.synth()
        except Exception as error:  # jsii raises its own error types; the message carries the nag report
            print(f"[{name}] synth FAILED (cdk-nag or CDK validation):\n{error}")
            failed = True
            continue
        seconds = time.perf_counter() - started
        print(f"[{name}] synthesized {len(stacks)} stacks with cdk-nag in {seconds:.1f}s -> {assembly}")
        for result in (run_cfn_lint(assembly), run_checkov(assembly)):
            status = "ok" if result.ok else f"{len(result.findings)} finding(s)"
            extra = f", {result.skipped} skipped with reasons" if result.tool == "checkov" else ""
            print(f"[{name}] {result.tool}: {status}{extra}")
            for finding in result.findings:
                print(f"    {finding}")
            failed |= not result.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
