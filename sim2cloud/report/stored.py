"""The run report in the cloud: assembled by the model gate after its decision from the pieces a run stored
(stdlib + an S3 client; no numpy, no matplotlib: every picture was drawn by the job that had them).

Why the gate: it is the first step that has everything the report shows: the dataset's manifest and preview
(``datasets/<run>/``), the model card (read for the decision), the training job's output data
(``output.tar.gz`` beside ``model.tar.gz``: the exported model's evaluation and detections picture,
Ultralytics' plots), the training job's billing facts (DescribeTrainingJob: BillableTimeInSeconds, instance
type, spot) and the decision itself. It writes ``runs/<run>/report.html`` (contract.run_report_key), beside
the gate's metrics record; its role reads models/ and datasets/ and writes runs/ only.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sim2cloud import contract, pricing
from sim2cloud.report.collect import PLOT_AND_EVALUATION_SUFFIXES, RunArtefacts, write_report

OUTPUT_ARCHIVE_NAME = "output.tar.gz"
"""SageMaker's tar of /opt/ml/output/data, beside model.tar.gz."""
MAX_OUTPUT_MEMBER_BYTES = 20 * 1024 * 1024


def _seconds_between(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds()
    if isinstance(start, int | float) and isinstance(end, int | float):  # EventBridge: epoch milliseconds
        return (end - start) / 1000
    return None


def training_facts(description: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(timeline, cost) of a training job from its DescribeTrainingJob (or state-change detail)."""
    timeline: list[dict[str, Any]] = []
    for stage, start, end in (
        ("training job: starting (instance, image, data download)", "CreationTime", "TrainingStartTime"),
        ("training job: training and export", "TrainingStartTime", "TrainingEndTime"),
    ):
        seconds = _seconds_between(description.get(start), description.get(end))
        if seconds is not None:
            timeline.append({"stage": stage, "seconds": seconds})
    resources = description.get("ResourceConfig") or {}
    billable = description.get("BillableTimeInSeconds")
    instance_type = resources.get("InstanceType")
    if not isinstance(billable, int | float) or not isinstance(instance_type, str):
        return timeline, None
    spot = bool(description.get("EnableManagedSpotTraining"))
    try:
        line = pricing.training_job_cost(instance_type, float(billable), spot, int(resources.get("InstanceCount", 1)))
    except pricing.UnknownPrice:
        return timeline, None
    cost = {
        **pricing.run_cost([line]),
        "basis": "SageMaker's BillableTimeInSeconds at list price; the render and finalize Batch jobs are not "
        "included (sim2cloud status shows their durations)",
    }
    return timeline, cost


def _download(s3: Any, bucket: str, key: str, destination: Path) -> bool:
    try:
        s3.download_file(bucket, key, str(destination))
    except Exception:  # a missing optional piece (no preview, an old job without output data) is a gap, not an error
        return False
    return True


def _extract_output_data(s3: Any, bucket: str, key: str, data_dir: Path) -> None:
    """Pictures and JSON of output.tar.gz into ``data_dir``; nothing outside it, no links, nothing oversized."""
    archive = data_dir.parent / OUTPUT_ARCHIVE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    if not _download(s3, bucket, key, archive):
        return
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = PurePosixPath(member.name.removeprefix("./"))
            if (
                member.isfile()
                and member.size <= MAX_OUTPUT_MEMBER_BYTES
                and name.suffix in PLOT_AND_EVALUATION_SUFFIXES
                and ".." not in name.parts
                and not name.is_absolute()
            ):
                tar.extract(member, data_dir, filter="data")


def write_stored_report(
    s3: Any,
    bucket: str,
    run: str,
    model_json: Mapping[str, Any],
    model_artifact_key: str,
    description: Mapping[str, Any],
    gate_record: Mapping[str, Any],
) -> str:
    """Assemble and upload ``runs/<run>/report.html``; returns its key."""
    with tempfile.TemporaryDirectory(prefix="sim2cloud-report-") as scratch:
        root = Path(scratch)
        dataset = root / "dataset"
        dataset.mkdir()
        prefix = contract.dataset_prefix(run)
        manifest_path = dataset / contract.DATASET_MANIFEST_NAME
        if _download(s3, bucket, prefix + contract.DATASET_MANIFEST_NAME, manifest_path):
            preview = json.loads(manifest_path.read_text(encoding="utf-8")).get("preview")
            if isinstance(preview, str) and "/" not in preview and preview.endswith(".png"):
                _download(s3, bucket, prefix + preview, dataset / preview)
        else:
            manifest_path.write_text(json.dumps({"run": run}))
        paths = contract.SageMakerPaths(base=str(root / "training"))
        Path(paths.model_dir).mkdir(parents=True)
        (Path(paths.model_dir) / contract.MODEL_JSON_NAME).write_text(json.dumps(model_json))
        output_key = str(PurePosixPath(model_artifact_key).with_name(OUTPUT_ARCHIVE_NAME))
        _extract_output_data(s3, bucket, output_key, Path(paths.output_dir) / "data")
        timeline, cost = training_facts(description)
        artefacts = RunArtefacts(
            dataset=dataset,
            training=root / "training",
            gate=gate_record,
            timeline=timeline,
            cost=cost,
            generated_by="the model gate (AWS Lambda)",
        )
        page = write_report(artefacts, root / contract.REPORT_NAME)
        key = contract.run_report_key(run)
        s3.put_object(Bucket=bucket, Key=key, Body=page.read_bytes(), ContentType="text/html; charset=utf-8")
    return key
