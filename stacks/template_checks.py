"""cfn-lint and checkov over synthesized templates, as subprocesses of the venv's own tools.

Used by ``scripts/check_infra.py`` (``make check-infra``) and by tests/infra, so both apply the same rules:
cfn-lint reads ``.cfnlintrc.yaml`` (ignored ids with reasons), checkov honours the per-resource
``Metadata.checkov.skip`` entries (each with a comment) written by ``stacks.constructs.nag.skip_checkov``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class ScanResult:
    tool: str
    findings: list[str]
    skipped: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings


def templates_in(assembly: Path) -> list[Path]:
    templates = sorted(assembly.glob("*.template.json"))
    if not templates:
        raise FileNotFoundError(f"no *.template.json in {assembly}: synthesize first")
    return templates


def run_cfn_lint(assembly: Path) -> ScanResult:
    """Every cfn-lint error or warning not ignored in .cfnlintrc.yaml is a finding."""
    completed = subprocess.run(
        [str(BIN / "cfn-lint"), "--format", "parseable", *map(str, templates_in(assembly))],
        cwd=REPO_ROOT,  # picks up .cfnlintrc.yaml
        capture_output=True,
        text=True,
        check=False,
    )
    findings = [line for line in completed.stdout.splitlines() if line.strip()]
    if completed.returncode not in (0, 2, 4, 6, 8, 10, 12, 14) or (completed.returncode and not findings):
        findings.append(f"cfn-lint exited {completed.returncode}: {completed.stderr.strip()[-2000:]}")
    return ScanResult("cfn-lint", findings)


def run_checkov(assembly: Path) -> ScanResult:
    """Every failed checkov check is a finding; skips (with their comments) are counted, not hidden."""
    completed = subprocess.run(
        [
            str(BIN / "checkov"),
            "--directory",
            str(assembly),
            "--framework",
            "cloudformation",
            "--output",
            "json",
            # Offline: no download of Prisma Cloud guidelines or external checks.
            "--skip-download",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(completed.stdout or "{}")
    except json.JSONDecodeError:
        return ScanResult(
            "checkov", [f"checkov output is not JSON (exit {completed.returncode}): {completed.stderr[-2000:]}"]
        )
    reports = report if isinstance(report, list) else [report]
    findings: list[str] = []
    skipped = 0
    for entry in reports:
        results = entry.get("results", {})
        skipped += len(results.get("skipped_checks", []))
        for failed in results.get("failed_checks", []):
            findings.append(
                f"{failed['check_id']} {failed['check_name']}: {failed['resource']} in {failed['file_path']}"
            )
    return ScanResult("checkov", findings, skipped)
