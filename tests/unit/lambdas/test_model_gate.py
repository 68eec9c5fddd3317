"""Model gate against moto: registration, the quality gate, idempotency, failure notifications."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Any

import boto3
import pytest
from lambda_test_support import ACCOUNT, BUCKET, REGION, LambdaContext, model_archive

from sim2cloud import contract
from sim2cloud.contract import Env

GROUP = "sim2cloud-dev-detector"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sim2cloud-yolo:1"
RUN = "drop1-0123456789ab"


@pytest.fixture
def sagemaker(aws: None) -> Any:
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_model_package_group(ModelPackageGroupName=GROUP, ModelPackageGroupDescription="detectors")
    return client


@pytest.fixture
def failure_inbox(aws: None) -> Any:
    """An SQS queue subscribed to the failure topic; returns (topic arn, function reading the messages)."""
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="sim2cloud-failures")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="failure-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    def read() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    return topic, read


@pytest.fixture
def gate_env(monkeypatch: pytest.MonkeyPatch, failure_inbox: Any) -> Callable[..., None]:
    def apply(threshold: float = 0.5, mode: str = "auto") -> None:
        monkeypatch.setenv(Env.MODEL_PACKAGE_GROUP, GROUP)
        monkeypatch.setenv(Env.QUALITY_GATE_MAP50, str(threshold))
        monkeypatch.setenv(Env.MODEL_APPROVAL_MODE, mode)
        monkeypatch.setenv(Env.FAILURE_TOPIC_ARN, failure_inbox[0])
        monkeypatch.setenv(Env.DATA_BUCKET, BUCKET)
        monkeypatch.setenv(Env.ENVIRONMENT, "dev")

    apply()
    return apply


@pytest.fixture
def gate(
    s3: Any, sagemaker: Any, gate_env: Callable[..., None], load_handler: Callable[[str], ModuleType]
) -> Callable[..., dict[str, Any]]:
    def invoke(event: dict[str, Any], **env: Any) -> dict[str, Any]:
        if env:
            gate_env(**env)
        return load_handler("model_gate").handler(event, LambdaContext("model-gate"))

    return invoke


def _epoch_ms(value: Any) -> Any:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else value


def training_job(sagemaker: Any, name: str, run: str = RUN) -> dict[str, Any]:
    """Create the job in moto the way the launcher does and return its description."""
    sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/training",
        InputDataConfig=[
            {
                "ChannelName": "dataset",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/datasets/{run}/"}},
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/models/{run}/"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        Tags=[{"Key": contract.TRAINING_RUN_TAG, "Value": run}],
    )
    return sagemaker.describe_training_job(TrainingJobName=name)


def state_change(job: dict[str, Any], status: str, failure_reason: str | None = None) -> dict[str, Any]:
    """The EventBridge event: the detail mirrors DescribeTrainingJob, times in epoch ms, tags as a map."""
    detail = {key: _epoch_ms(value) for key, value in job.items() if key != "ResponseMetadata"}
    detail = json.loads(json.dumps(detail, default=str))
    detail["TrainingJobStatus"] = status
    detail["Tags"] = {contract.TRAINING_RUN_TAG: RUN}
    if failure_reason is not None:
        detail["FailureReason"] = failure_reason
        detail.pop("ModelArtifacts", None)
    return {
        "version": "0",
        "id": "5f3c8d0e-1111-2222-3333-444455556666",
        "detail-type": "SageMaker Training Job State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": "2026-11-25T10:00:00Z",
        "region": REGION,
        "resources": [job["TrainingJobArn"]],
        "detail": detail,
    }


def upload_model(s3: Any, job: dict[str, Any], metrics: dict[str, Any] | None) -> None:
    uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    key = uri.removeprefix(f"s3://{BUCKET}/")
    model_json = None if metrics is None else {"classes": ["mug"], "imgsz": 640, "metrics": metrics}
    s3.put_object(Bucket=BUCKET, Key=key, Body=model_archive(model_json))


def packages(sagemaker: Any) -> list[dict[str, Any]]:
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    return [sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]


GOOD = {"mAP50": 0.82, "mAP50-95": 0.61, "precision": 0.9, "recall": 0.8}
POOR = {"mAP50": 0.21, "mAP50-95": 0.1}


def test_gate_passes_and_the_package_is_approved(s3: Any, sagemaker: Any, gate: Any) -> None:
    job = training_job(sagemaker, "sim2cloud-drop1-aaaa1111")
    upload_model(s3, job, GOOD)

    outcome = gate(state_change(job, "Completed"))

    assert outcome["action"] == "registered"
    assert outcome["approval_status"] == "Approved"
    (package,) = packages(sagemaker)
    assert package["ModelApprovalStatus"] == "Approved"
    assert "0.8200 meets the quality gate 0.5000" in package["ApprovalDescription"]
    container = package["InferenceSpecification"]["Containers"][0]
    assert container == {"Image": IMAGE, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]}
    assert package["InferenceSpecification"]["SupportedContentTypes"] == list(contract.SERVING_CONTENT_TYPES)
    assert package["InferenceSpecification"]["SupportedResponseMIMETypes"] == ["application/json"]
    metadata = package["CustomerMetadataProperties"]
    assert metadata[contract.TRAINING_JOB_METADATA_KEY] == "sim2cloud-drop1-aaaa1111"
    assert metadata[contract.TRAINING_RUN_TAG] == RUN
    assert metadata["sim2cloud:mAP50"] == "0.82" and metadata["sim2cloud:gate-result"] == "pass"
    statistics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert statistics_uri == f"s3://{BUCKET}/{contract.run_model_metrics_key(RUN, 'sim2cloud-drop1-aaaa1111')}"
    written = json.loads(
        s3.get_object(Bucket=BUCKET, Key=statistics_uri.removeprefix(f"s3://{BUCKET}/"))["Body"].read()
    )
    assert written["metrics"] == GOOD
    assert written["gate"]["status"] == "Approved"


def test_gate_fails_and_the_package_stays_pending_with_the_reason(s3: Any, sagemaker: Any, gate: Any) -> None:
    job = training_job(sagemaker, "sim2cloud-drop1-bbbb2222")
    upload_model(s3, job, POOR)

    outcome = gate(state_change(job, "Completed"))

    assert outcome["approval_status"] == "PendingManualApproval"
    (package,) = packages(sagemaker)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["ApprovalDescription"] == "mAP50 0.2100 is below the quality gate 0.5000"
    assert package["CustomerMetadataProperties"]["sim2cloud:gate-result"] == "fail"
    assert package["CustomerMetadataProperties"]["sim2cloud:gate-reason"] == package["ApprovalDescription"]


def test_manual_mode_never_approves(s3: Any, sagemaker: Any, gate: Any) -> None:
    job = training_job(sagemaker, "sim2cloud-drop1-cccc3333")
    upload_model(s3, job, GOOD)
    outcome = gate(state_change(job, "Completed"), mode="manual")
    assert outcome["approval_status"] == "PendingManualApproval"
    assert "approval mode is manual" in packages(sagemaker)[0]["ApprovalDescription"]


def test_missing_metric_leaves_the_package_pending(s3: Any, sagemaker: Any, gate: Any) -> None:
    job = training_job(sagemaker, "sim2cloud-drop1-dddd4444")
    upload_model(s3, job, {"precision": 0.9})
    outcome = gate(state_change(job, "Completed"))
    assert outcome["approval_status"] == "PendingManualApproval"
    assert "no numeric mAP50" in packages(sagemaker)[0]["ApprovalDescription"]


def test_duplicate_event_registers_once(s3: Any, sagemaker: Any, gate: Any) -> None:
    job = training_job(sagemaker, "sim2cloud-drop1-eeee5555")
    upload_model(s3, job, GOOD)
    event = state_change(job, "Completed")
    first = gate(event)
    second = gate(event)
    assert first["action"] == "registered"
    assert second["action"] == "duplicate"
    assert second["model_package_arn"] == first["model_package_arn"]
    assert len(packages(sagemaker)) == 1


def test_another_jobs_package_is_not_mistaken_for_this_one(s3: Any, sagemaker: Any, gate: Any) -> None:
    for name in ("sim2cloud-drop1-ffff0001", "sim2cloud-drop1-ffff0002"):
        job = training_job(sagemaker, name)
        upload_model(s3, job, GOOD)
        assert gate(state_change(job, "Completed"))["action"] == "registered"
    assert len(packages(sagemaker)) == 2


def test_interrupted_registration_is_finished_on_redelivery(s3: Any, sagemaker: Any, gate: Any) -> None:
    job = training_job(sagemaker, "sim2cloud-drop1-9999aaaa")
    upload_model(s3, job, GOOD)
    gate(state_change(job, "Completed"))
    (package,) = packages(sagemaker)
    # Simulate a crash between CreateModelPackage and UpdateModelPackage: verdict not applied yet.
    sagemaker.update_model_package(
        ModelPackageArn=package["ModelPackageArn"],
        ModelApprovalStatus="PendingManualApproval",
        ApprovalDescription="",
        CustomerMetadataProperties=package["CustomerMetadataProperties"],
    )
    outcome = gate(state_change(job, "Completed"))
    assert outcome["action"] == "registered"
    (package,) = packages(sagemaker)
    assert package["ModelApprovalStatus"] == "Approved"


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_failed_or_stopped_job_publishes_the_reason(
    s3: Any, sagemaker: Any, gate: Any, failure_inbox: Any, status: str
) -> None:
    job = training_job(sagemaker, "sim2cloud-drop1-0000dead")
    reason = "AlgorithmError: dataset has no images (see /opt/ml/output/failure)"
    outcome = gate(state_change(job, status, failure_reason=reason))

    assert outcome["action"] == "notified"
    (notification,) = failure_inbox[1]()
    assert notification["Subject"].startswith("sim2cloud dev: training job")
    message = json.loads(notification["Message"])
    assert message["training_job"] == "sim2cloud-drop1-0000dead"
    assert message["run"] == RUN
    assert message["status"] == status
    assert message["reason"] == reason
    assert packages(sagemaker) == []


def test_artifact_without_model_json_is_reported_not_registered(
    s3: Any, sagemaker: Any, gate: Any, failure_inbox: Any
) -> None:
    job = training_job(sagemaker, "sim2cloud-drop1-0000beef")
    upload_model(s3, job, None)
    outcome = gate(state_change(job, "Completed"))
    assert outcome["action"] == "rejected"
    assert packages(sagemaker) == []
    (notification,) = failure_inbox[1]()
    assert "has no top-level model.json" in json.loads(notification["Message"])["reason"]


def test_other_jobs_and_unfinished_states_are_ignored(s3: Any, sagemaker: Any, gate: Any, failure_inbox: Any) -> None:
    ours = training_job(sagemaker, "sim2cloud-drop1-1234abcd")
    theirs = training_job(sagemaker, "someone-elses-job")
    assert gate(state_change(theirs, "Failed", failure_reason="x"))["action"] == "ignored"
    assert gate(state_change(ours, "InProgress"))["action"] == "ignored"
    assert failure_inbox[1]() == []
    assert packages(sagemaker) == []


def test_missing_detail_fields_are_read_from_the_job(s3: Any, sagemaker: Any, gate: Any) -> None:
    job = training_job(sagemaker, "sim2cloud-drop1-5678ef01")
    upload_model(s3, job, GOOD)
    event = state_change(job, "Completed")
    for field in ("ModelArtifacts", "AlgorithmSpecification", "Tags"):
        event["detail"].pop(field)
    outcome = gate(event)
    assert outcome["action"] == "registered" and outcome["run"] == RUN


def test_bad_gate_settings_are_named(monkeypatch: pytest.MonkeyPatch, load_handler: Any, gate_env: Any) -> None:
    monkeypatch.setenv(Env.QUALITY_GATE_MAP50, "1.5")
    monkeypatch.setenv(Env.MODEL_APPROVAL_MODE, "sometimes")
    with pytest.raises(ValueError) as err:
        load_handler("model_gate").handler({}, LambdaContext("model-gate"))
    assert f"{Env.QUALITY_GATE_MAP50}=1.5 must be between 0.0 and 1.0" in str(err.value)
    assert f"{Env.MODEL_APPROVAL_MODE}='sometimes' is not one of ['auto', 'manual']" in str(err.value)


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _png() -> bytes:
    # The smallest valid PNG (1x1 grey): the report embeds pictures as they are, it never decodes them.
    return base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
    )


def test_the_run_report_is_written_beside_the_decision(s3: Any, sagemaker: Any, gate: Any) -> None:
    job = training_job(sagemaker, "sim2cloud-drop1-report01")
    upload_model(s3, job, GOOD)
    manifest = {"run": RUN, "class_names": ["mug"], "counts": {"val": {"images": 3, "per_class": {"mug": 4}}},
                "preview": "preview.png"}  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key=f"datasets/{RUN}/manifest.json", Body=json.dumps(manifest).encode())
    s3.put_object(Bucket=BUCKET, Key=f"datasets/{RUN}/preview.png", Body=_png())
    artifact_key = job["ModelArtifacts"]["S3ModelArtifacts"].removeprefix(f"s3://{BUCKET}/")
    evaluation = {"mAP50": 0.82, "mAP50-95": 0.61, "images": 3, "per_class": {"mug": {"AP50": 0.82}}}
    output = _tar_gz({
        "evaluation/evaluation.json": json.dumps(evaluation).encode(),
        "evaluation/detections.png": _png(),
        "plots/BoxPR_curve.png": _png(),
        "../escape.png": _png(),  # never extracted outside the scratch dir
        "checkpoint.pt": b"x" * 100,  # not a report piece
    })  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key=artifact_key.replace("model.tar.gz", "output.tar.gz"), Body=output)

    gate(state_change(job, "Completed"))

    page = s3.get_object(Bucket=BUCKET, Key=contract.run_report_key(RUN))["Body"].read().decode()
    assert "meets the quality gate 0.5000" in page  # the decision and why
    assert page.count('src="data:image/png;base64,') == 3  # preview, PR curve, detections
    assert "training job (gate)" in page and "<code>model.onnx</code>" in page
    assert "not available for this run" in page.split('<section id="cost">')[1]  # moto reports no billable time


def test_a_report_that_cannot_be_written_leaves_the_decision_standing(s3: Any, sagemaker: Any, gate: Any) -> None:
    job = training_job(sagemaker, "sim2cloud-drop1-report02")
    upload_model(s3, job, GOOD)
    artifact_key = job["ModelArtifacts"]["S3ModelArtifacts"].removeprefix(f"s3://{BUCKET}/")
    s3.put_object(Bucket=BUCKET, Key=artifact_key.replace("model.tar.gz", "output.tar.gz"), Body=b"not a tar")

    outcome = gate(state_change(job, "Completed"))

    assert outcome["action"] == "registered" and outcome["approval_status"] == "Approved"
    assert packages(sagemaker)[0]["ModelApprovalStatus"] == "Approved"
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=BUCKET, Key=contract.run_report_key(RUN))
