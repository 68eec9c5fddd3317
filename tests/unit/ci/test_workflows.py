"""The CI/CD definitions are clean and say what they do: actionlint and zizmor report nothing (the tools
`make lint-workflows` runs, installed from requirements-dev.txt; hadolint is tested beside each Dockerfile,
tests/unit/isaac and tests/unit/yolo); every action is
pinned to a full commit SHA with its version beside it; every job asks for the least permissions; jobs that
touch an environment queue per environment; the PR workflow runs Makefile targets, and the deploy targets
deploy the stacks in the order stacks.pipeline.DEPLOY_ORDER states."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+\b")
AWS_LOGIN = "aws-actions/configure-aws-credentials@"


def _workflows() -> dict[str, dict[str, Any]]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(WORKFLOWS.glob("*.yml"))}


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=300)


def test_actionlint_reports_nothing() -> None:
    result = _run(str(BIN / "actionlint"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_reports_nothing() -> None:
    result = _run(str(BIN / "zizmor"), "--offline", "--no-progress", str(WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_every_action_is_pinned_to_a_commit_with_its_version() -> None:
    seen = 0
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if not match:
                continue
            reference, rest = match.groups()
            seen += 1
            if reference.startswith("$/"):
                continue  # this repository's own workflow, at the running commit
            where = f"{path.name}:{number}: {line.strip()}"
            assert PINNED.match(reference), f"{where}: pin to a full commit SHA"
            assert VERSION_COMMENT.search(rest), f"{where}: say the version in a comment (# vX.Y.Z)"
    assert seen >= 10


def _steps_use(job: dict[str, Any], action: str) -> bool:
    return any(action in str(step.get("uses", "")) for step in job.get("steps", []))


def test_every_job_asks_for_least_permissions() -> None:
    workflows = _workflows()
    for name, workflow in workflows.items():
        assert workflow.get("permissions") == {}, f"{name}: workflow-level permissions must be {{}}"
        for job_id, job in workflow["jobs"].items():
            permissions = job.get("permissions")
            assert isinstance(permissions, dict), f"{name} {job_id}: declare permissions per job"
            assert set(permissions) <= {"contents", "id-token"}, f"{name} {job_id}: {permissions}"
            assert permissions.get("contents") == "read", f"{name} {job_id}"
            called = str(job.get("uses", "")).removeprefix("$/.github/workflows/")
            needs_token = _steps_use(job, AWS_LOGIN) or (
                called in workflows
                and any(p.get("permissions", {}).get("id-token") for p in workflows[called]["jobs"].values())
            )
            assert (permissions.get("id-token") == "write") == needs_token, f"{name} {job_id}: id-token"


def test_jobs_in_an_environment_queue_per_environment() -> None:
    for name, workflow in _workflows().items():
        workflow_group = str((workflow.get("concurrency") or {}).get("group", ""))
        for job_id, job in workflow["jobs"].items():
            if "environment" not in job:
                continue
            group = str((job.get("concurrency") or {}).get("group", "")) or workflow_group
            assert str(job["environment"]) in group, f"{name} {job_id}: concurrency group per environment"
            if group.startswith("deploy-"):  # stack updates: never cancelled halfway
                concurrency = job.get("concurrency") or workflow["concurrency"]
                assert concurrency["cancel-in-progress"] is False, f"{name} {job_id}"


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-zA-Z_-]+):.*?## ", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE))


def test_workflows_run_makefile_targets() -> None:
    targets = _make_targets()
    ci = _workflows()["ci.yml"]
    ran = []
    for job in ci["jobs"].values():
        for step in job.get("steps", []):
            if "run" in step:
                command = shlex.split(step["run"])
                assert command[0] == "make" and command[1] in targets, f"ci.yml runs {step['run']!r}"
                ran.append(command[1])
    assert {"test", "lint-docker", "smoke-container", "diff"} == set(ran)
    # `make test` runs these very checks (this file is in the suite).
    assert "lint-workflows" in targets


@pytest.mark.parametrize("target", ["deploy-foundation", "deploy-pipeline"])
def test_deploy_targets_follow_the_deploy_order(target: str) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    try:
        from stacks.pipeline import DEPLOY_ORDER
    finally:
        sys.path.remove(str(REPO_ROOT))
    result = _run("make", "-n", target, "ENV=dev", "GITHUB_REPOSITORY=example/sim2cloud", "IMAGE_TAG=abc1234")
    assert result.returncode == 0, result.stderr
    (deploy,) = [line for line in result.stdout.splitlines() if "cdk deploy" in line]
    stacks = [word.removeprefix("Sim2Cloud-dev-") for word in deploy.split() if word.startswith("Sim2Cloud-dev-")]
    waves = [list(wave) for wave in DEPLOY_ORDER]
    expected = waves[0] if target == "deploy-foundation" else waves[1] + waves[2]
    assert sorted(stacks) == sorted(expected)
    assert "-c github_repository=example/sim2cloud" in deploy and "-c image_tag=abc1234" in deploy
    assert "--exclusively" in deploy


def test_foundation_without_a_repository_leaves_ci_access_out() -> None:
    result = _run("make", "-n", "deploy-foundation", "ENV=dev", "GITHUB_REPOSITORY=")
    (deploy,) = [line for line in result.stdout.splitlines() if "cdk deploy" in line]
    assert "CiAccess" not in deploy and "github_repository" not in deploy
