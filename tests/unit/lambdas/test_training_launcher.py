"""Training launcher against moto: one deterministic job per dataset manifest, request contents, errors."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

import boto3
import pytest
from lambda_test_support import BUCKET, REGION, LambdaContext, put, s3_notification, sqs_event

from sim2cloud import contract
from sim2cloud.contract import Env

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sim2cloud-yolo:1"
ROLE = "arn:aws:iam::123456789012:role/sim2cloud-training"
KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NAME_RULE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@pytest.fixture
def training_env(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        Env.DATA_BUCKET: BUCKET,
        Env.TRAINING_IMAGE_URI: IMAGE,
        Env.TRAINING_ROLE_ARN: ROLE,
        Env.TRAINING_INSTANCE_TYPE: "ml.m5.xlarge",
        Env.TRAINING_USE_SPOT: "true",
        Env.TRAINING_MAX_RUNTIME_SECONDS: "3600",
        Env.KMS_KEY_ARN: KMS,
        Env.TRAINING_HYPERPARAMETERS: json.dumps({"epochs": 50, "batch": 8, "model": "yolov8n.yaml"}),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def sagemaker(aws: None) -> Any:
    return boto3.client("sagemaker", region_name=REGION)


@pytest.fixture
def launch(
    s3: Any, sagemaker: Any, training_env: None, load_handler: Callable[[str], ModuleType]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda event: load_handler("training_launcher").handler(event, LambdaContext("training-launcher"))


def manifest(training: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"schema_version": contract.MANIFEST_SCHEMA_VERSION, "classes": ["mug"], "images": 12}
    if training is not None:
        body["training"] = training
    return json.dumps(body).encode()


def test_manifest_creates_one_training_job_with_the_full_request(s3: Any, sagemaker: Any, launch: Any) -> None:
    event = put(s3, contract.dataset_manifest_key("drop1-abc123"), manifest({"epochs": 2, "imgsz": 160}))
    result = launch(event)

    (outcome,) = result["outcomes"]
    assert outcome["action"] == "created"
    name = outcome["training_job_name"]
    assert name.startswith(contract.TRAINING_JOB_NAME_PREFIX) and NAME_RULE.match(name)
    job = sagemaker.describe_training_job(TrainingJobName=name)
    # Manifest overrides the environment's defaults; every value is a string.
    assert job["HyperParameters"] == {"epochs": "2", "batch": "8", "model": "yolov8n.yaml", "imgsz": "160"}
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert job["RoleArn"] == ROLE
    (channel,) = job["InputDataConfig"]
    assert channel["ChannelName"] == contract.DATASET_CHANNEL
    assert channel["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": f"s3://{BUCKET}/datasets/drop1-abc123/",
        "S3DataDistributionType": "FullyReplicated",
    }
    assert job["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/models/drop1-abc123/", "KmsKeyId": KMS}
    assert job["ResourceConfig"]["VolumeKmsKeyId"] == KMS
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert job["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/models/drop1-abc123/checkpoints/"
    assert job["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    tags = sagemaker.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
    assert {"Key": contract.TRAINING_RUN_TAG, "Value": "drop1-abc123"} in tags


def test_request_carries_the_contract_metric_definitions(load_handler: Any, training_env: None) -> None:
    # moto replaces MetricDefinitions with its own sample, so the request itself is checked here.
    logic = load_handler("training_launcher").logic
    settings = logic.TrainingLauncherSettings.from_env(dict(os.environ))
    request = logic.training_job_request(settings, "r1", {})
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == contract.metric_definitions()
    names = {d["Name"] for d in request["AlgorithmSpecification"]["MetricDefinitions"]}
    assert "train:mAP50" in names


def test_duplicate_event_creates_no_second_job(s3: Any, sagemaker: Any, launch: Any) -> None:
    event = put(s3, contract.dataset_manifest_key("dup-run"), manifest())
    assert launch(event)["outcomes"][0]["action"] == "created"
    assert launch(event)["outcomes"][0]["action"] == "duplicate"
    assert len(sagemaker.list_training_jobs()["TrainingJobSummaries"]) == 1


def test_notification_and_sqs_shapes_reach_the_same_job(s3: Any, sagemaker: Any, launch: Any) -> None:
    key = contract.dataset_manifest_key("run.1_x")
    body = manifest()
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
    first = launch(s3_notification(BUCKET, key, size=len(body), etag=etag))
    again = launch(sqs_event(put(s3, key, body))["Records"][0])
    assert first["outcomes"][0]["action"] == "created"
    assert again["outcomes"][0]["action"] == "duplicate"
    assert again["outcomes"][0]["training_job_name"] == first["outcomes"][0]["training_job_name"]


def test_other_keys_are_ignored(s3: Any, sagemaker: Any, launch: Any) -> None:
    result = launch(put(s3, "datasets/run/data.yaml", b"names: [a]\n"))
    assert result["outcomes"][0]["action"] == "ignored"
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []


def test_invalid_manifest_is_quarantined_and_raises(s3: Any, sagemaker: Any, launch: Any) -> None:
    key = contract.dataset_manifest_key("broken")
    event = put(s3, key, b"{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        launch(event)
    reason = json.loads(s3.get_object(Bucket=BUCKET, Key=contract.quarantine_reason_key(key))["Body"].read())
    assert "not valid JSON" in reason["reason"]
    # The same record schema as the render launcher's (contract.quarantine_record).
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert reason["key"] == key and reason["etag"] == head["ETag"].strip('"') and reason["size"] == 9
    assert reason["run"] == "broken" and reason["batch"] is None and reason["rejected_by"] == "training-launcher"
    assert reason["contract_version"] == contract.CONTRACT_VERSION
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"{not json"
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []


def test_job_names_are_deterministic_short_and_valid(load_handler: Any) -> None:
    logic = load_handler("training_launcher").logic
    for run in ("a", "drop1-0123456789ab", "x" * 128, "Batch.With_Dots-and-dashes-" + "9" * 80):
        name = logic.training_job_name(run)
        assert NAME_RULE.match(name), name
        assert len(name) <= 63
        assert name == logic.training_job_name(run)
    assert logic.training_job_name("x" * 128) != logic.training_job_name("x" * 127)


def test_on_demand_and_local_storage_instances(load_handler: Any, training_env: None, monkeypatch: Any) -> None:
    logic = load_handler("training_launcher").logic
    monkeypatch.setenv(Env.TRAINING_USE_SPOT, "false")
    monkeypatch.setenv(Env.TRAINING_INSTANCE_TYPE, "ml.g5.xlarge")
    monkeypatch.setenv(Env.TRAINING_WEIGHTS_S3_URI, f"s3://{BUCKET}/weights/yolov8n.pt")
    request = logic.training_job_request(logic.TrainingLauncherSettings.from_env(dict(os.environ)), "r", {})
    assert request["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in request["StoppingCondition"]
    assert "VolumeKmsKeyId" not in request["ResourceConfig"]  # g5 has NVMe instance storage
    assert request["CheckpointConfig"]["S3Uri"].endswith("models/r/checkpoints/")
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["dataset", "weights"]
    assert request["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/weights/yolov8n.pt"
    assert request["HyperParameters"]["model"] == "yolov8n.pt"  # the job loads the channel's file
    own = logic.training_job_request(
        logic.TrainingLauncherSettings.from_env(dict(os.environ)), "r", {"training": {"model": "yolov8s.yaml"}}
    )
    assert own["HyperParameters"]["model"] == "yolov8s.yaml"  # the batch's training: section still wins
    assert logic.volume_kms_allowed("ml.m5.xlarge") and logic.volume_kms_allowed("ml.p3.2xlarge")
    assert not logic.volume_kms_allowed("ml.g4dn.xlarge") and not logic.volume_kms_allowed("ml.p4d.24xlarge")


def test_bad_settings_are_named(load_handler: Any, training_env: None, monkeypatch: Any) -> None:
    monkeypatch.setenv(Env.TRAINING_HYPERPARAMETERS, "[1, 2]")
    monkeypatch.setenv(Env.TRAINING_MAX_WAIT_SECONDS, "10")
    monkeypatch.delenv(Env.TRAINING_ROLE_ARN)
    with pytest.raises(ValueError) as err:
        load_handler("training_launcher").handler({}, LambdaContext("training-launcher"))
    message = str(err.value)
    assert f"{Env.TRAINING_HYPERPARAMETERS} must be a JSON object" in message
    assert f"{Env.TRAINING_MAX_WAIT_SECONDS}=10 must be at least 3600" in message
    assert f"{Env.TRAINING_ROLE_ARN} is not set" in message
