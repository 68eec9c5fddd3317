"""``sim2cloud status [RUN] --env dev``: where each run is, stage by stage.

Stages and where each is read from (nothing is inferred that a service can say):

* render   the launcher's ``runs/<run>/status.json`` (claimed, submitted, or rejected with every reason) and
           the Batch array job it submitted (status, times, reason);
* finalize the finalize job, and ``datasets/<run>/manifest.json`` (written last: the dataset exists);
* training the SageMaker training job the launcher names for the run (its own naming code);
* gate     the gate's report ``runs/<run>/metrics/<job>.json`` (metrics, threshold, verdict and reason);
* package  the model package registered for the run (approval status and its reason).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sim2cloud import contract
from sim2cloud.deployed.environment import (
    DeployedEnvironment,
    EnvironmentNotFound,
    add_environment_arguments,
    aws_session,
    lambda_logic,
)
from sim2cloud.s3_transfer import is_not_found

STAGES = ("render", "finalize", "training", "gate", "package")
MAX_PACKAGES_SEARCHED = 200
"""Newest model packages of the group searched for a run's package."""
RECENT_RUNS = 10


@dataclass
class Stage:
    name: str
    state: str = "not started"
    """not started, waiting, running, done, failed or rejected."""
    started: str | None = None
    ended: str | None = None
    detail: str = ""
    reasons: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        if not self.started or not self.ended:
            return None
        return (datetime.fromisoformat(self.ended) - datetime.fromisoformat(self.started)).total_seconds()


@dataclass
class RunReport:
    run: str
    batch: str | None
    stages: list[Stage]
    report: str | None = None
    """Where the gate's report is (S3 URI), once written."""
    model_package: str | None = None

    @property
    def current(self) -> Stage:
        """The furthest stage that has begun (the first one if none has)."""
        begun = [stage for stage in self.stages if stage.state != "not started"]
        return begun[-1] if begun else self.stages[0]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="?", default=None, help=f"run id (default: the {RECENT_RUNS} newest runs)")
    add_environment_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):  # Batch reports epoch milliseconds
        return datetime.fromtimestamp(value / 1000, UTC).isoformat()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return str(value)


def _json_object(s3: Any, bucket: str, key: str) -> tuple[dict[str, Any], datetime] | None:
    from botocore.exceptions import ClientError

    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if is_not_found(err):
            return None
        raise
    return json.loads(response["Body"].read()), response["LastModified"]


_BATCH_STATES = {
    "SUBMITTED": "waiting",
    "PENDING": "waiting",
    "RUNNABLE": "waiting",
    "STARTING": "running",
    "RUNNING": "running",
    "SUCCEEDED": "done",
    "FAILED": "failed",
}


def _batch_stage(stage: Stage, batch: Any, job_id: str | None) -> None:
    if not job_id:
        return
    jobs = batch.describe_jobs(jobs=[job_id]).get("jobs", [])
    if not jobs:
        stage.state, stage.detail = "waiting", f"Batch job {job_id} (no longer listed by Batch)"
        return
    job = jobs[0]
    status = str(job.get("status", ""))
    stage.state = _BATCH_STATES.get(status, status.lower() or "waiting")
    stage.started = _iso(job.get("startedAt") or job.get("createdAt"))
    stage.ended = _iso(job.get("stoppedAt"))
    summary = (job.get("arrayProperties") or {}).get("statusSummary")
    children = ", ".join(f"{count} {state.lower()}" for state, count in (summary or {}).items() if count)
    stage.detail = f"Batch job {job_id} {status}" + (f" (children: {children})" if children else "")
    if status == "FAILED":
        stage.reasons.append(str(job.get("statusReason") or "no reason given by Batch"))


def run_report(environment: DeployedEnvironment, run: str, clients: dict[str, Any], naming: Any) -> RunReport | None:
    """Every stage of ``run``, or None when the environment has no such run."""
    from botocore.exceptions import ClientError

    s3, bucket = clients["s3"], environment.bucket
    status = _json_object(s3, bucket, contract.run_status_key(run))
    if status is None:
        return None
    body, _updated = status
    stages = {name: Stage(name) for name in STAGES}
    render, finalize, training, gate, package = (stages[name] for name in STAGES)
    report = RunReport(run, body.get("batch"), list(stages.values()))

    if body.get("state") == "rejected":
        render.state, render.detail = "rejected", str(body.get("reason", ""))
        render.ended = body.get("updated_at")
        render.reasons = [f"{r['key']}: {r['reason']}" for r in body.get("rejected", [])]
        return report
    render.state, render.detail = "waiting", f"launcher state {body.get('state')}"
    _batch_stage(render, clients["batch"], body.get("render_job_id"))
    render.reasons += [f"{r['key']}: {r['reason']} (left out)" for r in body.get("rejected", [])]
    _batch_stage(finalize, clients["batch"], body.get("finalize_job_id"))

    manifest = clients["s3"].list_objects_v2(Bucket=bucket, Prefix=contract.dataset_manifest_key(run)).get("Contents")
    if manifest:
        finalize.state = "done"
        finalize.ended = finalize.ended or _iso(manifest[0]["LastModified"])
        finalize.detail = f"dataset s3://{bucket}/{contract.dataset_prefix(run)}"

    job_name = naming.training_job_name(run)
    try:
        job = clients["sagemaker"].describe_training_job(TrainingJobName=job_name)
    except ClientError:
        job = None
        if manifest:
            training.state, training.detail = "waiting", f"{job_name} not created yet (training launcher)"
    if job is not None:
        job_status = str(job.get("TrainingJobStatus", ""))
        training.state = {"InProgress": "running", "Completed": "done", "Failed": "failed", "Stopped": "failed"}.get(
            job_status, job_status.lower()
        )
        training.started = _iso(job.get("TrainingStartTime") or job.get("CreationTime"))
        training.ended = _iso(job.get("TrainingEndTime"))
        training.detail = f"{job_name} {job_status} ({job.get('SecondaryStatus', '')})"
        if job.get("FailureReason"):
            training.reasons.append(str(job["FailureReason"]))

    gate_key = contract.run_model_metrics_key(run, job_name)
    verdict = _json_object(s3, bucket, gate_key)
    if verdict is not None:
        document, written = verdict
        decision = document.get("gate", {})
        gate.state = "done"
        gate.ended = _iso(written)
        gate.detail = f"{decision.get('result', '')}: {decision.get('reason', '')}"
        report.report = f"s3://{bucket}/{gate_key}"
    elif training.state == "done":
        gate.state, gate.detail = "waiting", "the model gate has not written its report yet"

    found = _package_of(clients["sagemaker"], environment.model_package_group, run)
    if found is not None:
        package.state = "done"
        package.started = _iso(found.get("CreationTime"))
        package.detail = f"{found.get('ModelPackageArn')} {found.get('ModelApprovalStatus')}"
        if found.get("ApprovalDescription"):
            package.detail += f" ({found['ApprovalDescription']})"
        report.model_package = str(found.get("ModelPackageArn"))
    return report


def _package_of(sagemaker: Any, group: str, run: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        pages = sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
        )
        searched = 0
        for page in pages:
            for summary in page.get("ModelPackageSummaryList", []):
                searched += 1
                if searched > MAX_PACKAGES_SEARCHED:
                    return None
                described: dict[str, Any] = sagemaker.describe_model_package(
                    ModelPackageName=summary["ModelPackageArn"]
                )
                if (described.get("CustomerMetadataProperties") or {}).get(contract.TRAINING_RUN_TAG) == run:
                    return described
    except ClientError:
        return None
    return None


def recent_runs(s3: Any, bucket: str, limit: int = RECENT_RUNS) -> list[str]:
    """Runs with a status object, newest first."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=contract.RUNS_PREFIX):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/" + contract.RUN_STATUS_NAME):
                found.append((item["LastModified"], item["Key"][len(contract.RUNS_PREFIX) :].split("/")[0]))
    return [run for _, run in sorted(found, reverse=True)[:limit]]


def _print(report: RunReport) -> None:
    print(f"run {report.run} (batch {report.batch}): {report.current.name} {report.current.state}")
    for stage in report.stages:
        took = f" {stage.seconds:.0f} s" if stage.seconds is not None else ""
        when = f" since {stage.started}" if stage.started and not stage.ended else ""
        print(f"  {stage.name:<9}{stage.state:<12}{took}{when}  {stage.detail}".rstrip())
        for reason in stage.reasons:
            print(f"             - {reason}")
    if report.report:
        print(f"  report:  {report.report}")


def run(args: argparse.Namespace) -> int:
    import boto3

    naming = lambda_logic("training_launcher")
    try:
        with aws_session(args) as environment:
            clients = {name: boto3.client(name) for name in ("s3", "batch", "sagemaker")}
            runs = [args.run] if args.run else recent_runs(clients["s3"], environment.bucket)
            reports = []
            for run_id in runs:
                report = run_report(environment, run_id, clients, naming)
                if report is None:
                    print(f"sim2cloud status: no run {run_id!r} in s3://{environment.bucket}/", file=sys.stderr)
                    return 1
                reports.append(report)
    except EnvironmentNotFound as err:
        print(f"sim2cloud status: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([asdict(report) for report in reports], indent=2))
    elif not reports:
        print(f"no runs yet in s3://{environment.bucket}/{contract.RUNS_PREFIX}")
    for report in [] if args.json else reports:
        _print(report)
    failed = any(stage.state in ("failed", "rejected") for report in reports for stage in report.stages)
    return 3 if args.run and failed else 0
