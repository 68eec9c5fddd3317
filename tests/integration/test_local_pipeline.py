"""``sim2cloud demo`` end to end on a moto server this test starts (so it can read moto's state afterwards):
the sample meshes become Batch jobs, shards, a dataset, a training job, a model archive, a registered model
package and an evaluation through a served endpoint. Tiny settings: 24 frames of 128 px, imgsz 64, 1 epoch."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from sim2cloud import contract
from sim2cloud.cli import main
from sim2cloud.contract import Env
from sim2cloud.local import runner

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
MESHES = REPO_ROOT / "samples" / "meshes"
BATCH = "pipeline test 2"
"""A batch name as users write them (spaces), like the class folder 'coffee mug' below."""
FRAMES = 24
DEMO_TRAINING_WRITTEN = {**runner.DEMO_TRAINING, "epochs": 1, "imgsz": 64, "batch": 8, "patience": 5}
"""batch.yaml's training: section of the demo below: the demo's schedule, --epochs/--imgsz/--batch and --hp."""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from moto.server import ThreadedMotoServer

    out = tmp_path_factory.mktemp("demo")
    meshes = tmp_path_factory.mktemp("meshes") / "kitchen"
    shutil.copytree(MESHES, meshes)
    (meshes / "mug").rename(meshes / "coffee mug")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    argv = [
        "demo",
        "--meshes", str(meshes),
        "--out", str(out),
        "--batch-name", BATCH,
        "--frames", str(FRAMES),
        "--frames-per-shard", "12",
        "--epochs", "1",
        "--imgsz", "64",
        "--batch", "8",
        "--set", "width=128",
        "--set", "height=128",
        "--hp", "patience=5",
        "--aws-endpoint", endpoint,
    ]  # fmt: skip
    printed = _Tee(sys.stdout)
    try:
        with contextlib.redirect_stdout(printed):
            status = main(argv)
        assert status == 0, "sim2cloud demo failed: its output above names the stage and the reason"
        summary = json.loads((out / "summary.json").read_text())
        # Read moto's state with the demo's (dummy) credentials while the server still runs.
        with runner.patched_environ({"AWS_ENDPOINT_URL": endpoint, **runner.DUMMY_CREDENTIALS}):
            yield {
                "status": status,
                "out": out,
                "summary": summary,
                "clients": Clients(),
                "meshes": meshes,
                "printed": printed,
            }
    finally:
        server.stop()


class _Tee(io.StringIO):
    """What the demo prints, kept for the assertions and still shown."""

    def __init__(self, shown: Any) -> None:
        super().__init__()
        self.shown = shown

    def write(self, text: str) -> int:
        self.shown.write(text)
        return super().write(text)


class Clients:
    def __init__(self) -> None:
        self.s3 = boto3.client("s3")
        self.batch = boto3.client("batch")
        self.sagemaker = boto3.client("sagemaker")

    def body(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=runner.LOCAL_BUCKET, Key=key)["Body"].read())

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=runner.LOCAL_BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_the_demo_succeeds_and_its_summary_paths_exist(demo: dict[str, Any]) -> None:
    assert demo["status"] == 0
    summary = demo["summary"]
    for name in ("dataset_dir", "preview", "model_dir", "model_archive", "training_curves", "evaluation_json"):
        assert summary[name] and Path(summary[name]).exists(), name
    assert Path(summary["detections_picture"]).is_file()
    assert Path(summary["dataset_dir"], contract.DATA_YAML_NAME).is_file()
    for split in contract.SPLITS:
        assert list(Path(summary["dataset_dir"], contract.IMAGES_DIR, split).iterdir())
    assert 0.0 <= summary["evaluation"]["mAP50"] <= 1.0
    # batch.yaml submits at once; the quiet-period records then find the run already submitted.
    assert summary["render_launcher_actions"][0] == "submitted"
    assert set(summary["render_launcher_actions"][1:]) == {"duplicate"}


def test_one_array_render_job_and_a_finalize_job_that_waits_for_it(demo: dict[str, Any]) -> None:
    from sim2cloud.local.executor import submitted_batch_jobs

    clients, run = demo["clients"], demo["summary"]["run"]
    jobs = {job.definition: job for job in submitted_batch_jobs(clients.batch, runner.LOCAL_QUEUE)}
    assert set(jobs) == {runner.RENDER_DEFINITION, runner.FINALIZE_DEFINITION}
    render, finalize = jobs[runner.RENDER_DEFINITION], jobs[runner.FINALIZE_DEFINITION]
    assert render.array_size == 2
    assert finalize.depends_on == (render.job_id,)
    assert render.environment[Env.RUN_ID] == finalize.environment[Env.RUN_ID] == run
    assert render.environment[Env.BATCH_ID] == BATCH
    assert render.environment[Env.FRAMES] == str(FRAMES)
    assert render.environment[Env.SHARD_COUNT] == "2"
    assert render.environment[Env.RENDER_BACKEND] == "gl"
    assert render.environment[Env.DATA_BUCKET] == runner.LOCAL_BUCKET


def test_every_shard_is_complete_and_the_dataset_manifest_is_there(demo: dict[str, Any]) -> None:
    clients, run = demo["clients"], demo["summary"]["run"]
    for shard in range(2):
        marker = json.loads(clients.body(contract.shard_marker_key(run, shard)))
        assert marker["uploaded_files"]
    manifest = json.loads(clients.body(contract.dataset_manifest_key(run)))
    assert manifest["class_names"] == sorted(p.name for p in demo["meshes"].iterdir() if p.is_dir())
    assert "coffee mug" in manifest["class_names"]
    assert sum(manifest["counts"][split]["images"] for split in contract.SPLITS) == FRAMES
    assert manifest["run"] == run
    # batch.yaml's training: section: the demo's schedule, its flags and --hp.
    assert manifest[contract.MANIFEST_TRAINING_FIELD] == {**DEMO_TRAINING_WRITTEN}


def test_the_usd_assets_are_in_the_bucket_once_and_the_manifest_lists_them(demo: dict[str, Any]) -> None:
    clients, run = demo["clients"], demo["summary"]["run"]
    manifest = json.loads(clients.body(contract.dataset_manifest_key(run)))
    prefix = contract.asset_batch_prefix(BATCH)
    stored = set(clients.keys(prefix))
    assert contract.asset_plan_key(BATCH) in stored
    listed = manifest["assets"]["files"]
    # One asset per sample mesh, at the contract's key, with the hash of the object in the local bucket.
    assert {contract.asset_key(BATCH, a["class_name"], a["name"]) for a in listed} == {
        k for k in stored if k.endswith(".usd")
    }
    assert len(listed) == sum(1 for p in MESHES.rglob("*") if p.suffix in contract.SUPPORTED_MESH_EXTENSIONS)
    for asset in listed:
        assert hashlib.sha256(clients.body(prefix + asset["path"])).hexdigest() == asset["sha256"]
        for companion in asset["companions"]:  # textures beside their asset
            assert prefix + companion["path"] in stored
    assert manifest["assets"]["root"] == f"s3://{runner.LOCAL_BUCKET}/{prefix}"


def test_the_training_job_request_is_the_launchers(demo: dict[str, Any]) -> None:
    clients, summary = demo["clients"], demo["summary"]
    job = clients.sagemaker.describe_training_job(TrainingJobName=summary["training_job"])
    # The environment's defaults overlaid by batch.yaml's training: section (carried by the shards and the
    # manifest): the demo sets its training like any user, nothing else changes the request.
    requested = {
        **contract.DEFAULT_TRAINING_HYPERPARAMETERS,
        **{key: contract.hyperparameter_string(value) for key, value in DEMO_TRAINING_WRITTEN.items()},
    }
    assert job["HyperParameters"] == requested
    [channel] = job["InputDataConfig"]
    assert channel["ChannelName"] == contract.DATASET_CHANNEL
    expected = f"s3://{runner.LOCAL_BUCKET}/{contract.dataset_prefix(summary['run'])}"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == expected
    assert (
        job["OutputDataConfig"]["S3OutputPath"] == f"s3://{runner.LOCAL_BUCKET}/{contract.model_prefix(summary['run'])}"
    )
    hyperparameters = json.loads(
        Path(summary["model_dir"]).parent.joinpath("input/config/hyperparameters.json").read_text()
    )
    assert hyperparameters == requested  # the local executor runs exactly the launcher's request


def test_model_archive_where_sagemaker_puts_it(demo: dict[str, Any]) -> None:
    clients, summary = demo["clients"], demo["summary"]
    key = contract.model_prefix(summary["run"]) + f"{summary['training_job']}/output/{contract.MODEL_ARCHIVE_NAME}"
    with tarfile.open(fileobj=io.BytesIO(clients.body(key)), mode="r:gz") as tar:
        names = set(tar.getnames())
        assert {contract.MODEL_ONNX_NAME, contract.MODEL_PT_NAME, contract.MODEL_JSON_NAME} <= names
        member = tar.extractfile(contract.MODEL_JSON_NAME)
        assert member is not None
        card = json.load(member)
    assert card["training_job"] == summary["training_job"]
    assert card["imgsz"] == 64 and card["epochs_trained"] == 1
    assert card["lineage"]["dataset_run"] == summary["run"]
    assert set(contract.METRIC_NAMES) - {"epoch"} <= set(card[contract.MODEL_JSON_METRICS_FIELD])


def test_the_gate_registered_a_package_with_metrics_and_a_verdict(demo: dict[str, Any]) -> None:
    clients, summary = demo["clients"], demo["summary"]
    packages = clients.sagemaker.list_model_packages(ModelPackageGroupName=runner.MODEL_PACKAGE_GROUP)
    [listed] = packages["ModelPackageSummaryList"]
    assert listed["ModelPackageArn"] == summary["model_package_arn"]
    package = clients.sagemaker.describe_model_package(ModelPackageName=summary["model_package_arn"])
    assert package["ModelApprovalStatus"] == summary["approval_status"]
    assert package["ModelApprovalStatus"] in ("Approved", "PendingManualApproval")
    assert package["ApprovalDescription"] == summary["approval_reason"] != ""
    metadata = package["CustomerMetadataProperties"]
    assert metadata[contract.TRAINING_JOB_METADATA_KEY] == summary["training_job"]
    assert "mAP50" in json.dumps(metadata)
    metrics_key = contract.run_model_metrics_key(summary["run"], summary["training_job"])
    assert "mAP50" in json.loads(clients.body(metrics_key))["metrics"]


def test_the_uploaded_meshes_are_unchanged(demo: dict[str, Any]) -> None:
    clients = demo["clients"]
    meshes = demo["meshes"]
    local = {f"{p.parent.name}/{p.name}": p.read_bytes() for p in meshes.glob("*/*") if p.is_file()}
    prefix = contract.mesh_batch_prefix(BATCH)
    stored = {key[len(prefix) :]: clients.body(key) for key in clients.keys(prefix) if not key.endswith("batch.yaml")}
    assert stored == local
    assert all(p.is_file() for p in meshes.glob("*/*"))


def test_names_with_spaces_reach_the_model_and_the_endpoints_answers(demo: dict[str, Any]) -> None:
    """Batch 'pipeline test 2' and class 'coffee mug' as written; AWS identifiers derived from them."""
    summary, out = demo["summary"], demo["out"]
    run = summary["run"]
    assert contract.check_id(run) == run and run.startswith("pipeline-test-2-")
    status = json.loads(demo["clients"].body(contract.run_status_key(run)))
    assert status["batch"] == BATCH
    with tarfile.open(out / "model" / contract.MODEL_ARCHIVE_NAME) as archive:
        member = archive.extractfile(contract.MODEL_JSON_NAME)
        assert member is not None
        assert "coffee mug" in json.loads(member.read())["class_names"]
    evaluation = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert "coffee mug" in evaluation["per_class"]  # the endpoint's detections carry the name as written


def test_job_logs_are_json_lines_without_carriage_returns(demo: dict[str, Any]) -> None:
    """The render, finalize and training jobs' stdout (what CloudWatch would get): JSON lines of the Lambdas'
    shape, metric lines as SageMaker's metric definitions read them, no redrawn bars."""
    logs = sorted((demo["out"] / "logs").glob("sim2cloud-*.log"))
    assert len(logs) >= 3  # render shards, finalize, training
    for log in logs:
        text = log.read_text()
        assert "\r" not in text, log
        assert "/sim2cloud-train-" not in text, log  # no hint at the training job's deleted scratch folders
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("$ ")]
        assert lines, log
        for line in lines:
            if line.startswith(contract.METRIC_LINE_PREFIX):
                continue
            entry = json.loads(line)
            assert {"time", "level", "logger", "message"} <= set(entry), line


def test_the_demo_ends_with_its_report(demo: dict[str, Any]) -> None:
    """The report's path is the last thing printed; the page is self-contained and shows the run."""
    from sim2cloud.report.render import SECTIONS

    lines = [line for line in demo["printed"].getvalue().splitlines() if line.strip()]
    report = Path(demo["summary"]["report"])
    assert lines[-1].split() == ["report:", str(report)]
    page = report.read_text()
    for key, title in SECTIONS:
        if key != "plots":  # a 1-epoch model: Ultralytics may draw no curves for it
            assert "not available" not in page.split(f'<section id="{key}">')[1].split("</section>")[0], title
    assert demo["summary"]["run"] in page and "sim2cloud demo" in page
    assert demo["summary"]["cost"]["total_usd"] > 0
    assert "through the served model.tar.gz" in page  # which model file each number is from
