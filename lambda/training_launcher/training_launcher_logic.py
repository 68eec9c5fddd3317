"""Training launcher: one SageMaker training job per dataset run, started by its manifest.json.

The finalize job writes ``datasets/<run>/manifest.json`` last; its ``Object Created`` event lands here.
The launcher reads the manifest, then creates a training job with:

* a deterministic name, ``sim2cloud-<run slug>-<hash of run>`` (at most 63 characters, letters, digits
  and hyphens), so a duplicate event finds the job it already created instead of making a second one;
* the YOLO image, role and instance type from the environment, the ``dataset`` channel on
  ``datasets/<run>/`` (fully replicated) and an optional ``weights`` channel;
* hyperparameters: ``SIM2CLOUD_TRAINING_HYPERPARAMETERS`` (JSON, the environment's defaults) overlaid by
  the manifest's ``training`` section (this dataset's own settings win), every value sent as a string
  (SageMaker's contract; strings as-is, everything else as JSON, so ``true``/``64``/``[1, 2]``);
* managed spot (when enabled) with ``MaxWaitTimeInSeconds`` and a checkpoint URI under
  ``models/<run>/checkpoints/`` (also used on demand, so a retried job resumes), output under
  ``models/<run>/``, the KMS key for output and volume, and the contract's metric definitions.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError
from shared import outcome as shared_outcome
from shared.quarantine import write_quarantine_record
from shared.s3_events import S3ObjectRef, not_ours
from shared.structured_log import bind, get_logger

from sim2cloud import contract
from sim2cloud.contract import Env
from sim2cloud.env_reader import EnvReader

log = get_logger("sim2cloud.training_launcher")

MAX_JOB_NAME: Final = 63
NAME_HASH_CHARS: Final = 8
MANIFEST_TRAINING_SECTION: Final = contract.MANIFEST_TRAINING_FIELD
"""Manifest key whose object holds this dataset's hyperparameters (copied from batch.yaml by finalize)."""
MAX_MANIFEST_BYTES: Final = 10 * 1024 * 1024
"""A manifest lists files and counts; anything larger is not one of ours."""
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9]+")
_INSTANCE_STORAGE_FAMILY = re.compile(r"^ml\.(?:[a-z]+\d+[a-z]*d[a-z]*|g5|g6|g6e|p4de?|p5[a-z]*|trn\d[a-z]*)\.")
"""Instance families with local NVMe storage, which SageMaker encrypts itself: a VolumeKmsKeyId on them
makes CreateTrainingJob fail ("You can't request a VolumeKmsKeyId when using an instance type with local
storage"). ``d`` in the family suffix (g4dn, p3dn, m5d, c6id) marks them, plus the GPU families that
always have it."""


class ManifestError(ValueError):
    """The manifest cannot be used; the message says what is wrong."""


@dataclass(frozen=True)
class TrainingLauncherSettings:
    """The launcher's environment, parsed once at cold start."""

    bucket: str
    """``SIM2CLOUD_DATA_BUCKET``: the data bucket (datasets in, models out)."""
    image_uri: str
    """``SIM2CLOUD_TRAINING_IMAGE_URI``: the YOLO training image in ECR."""
    role_arn: str
    """``SIM2CLOUD_TRAINING_ROLE_ARN``: the SageMaker execution role."""
    instance_type: str
    """``SIM2CLOUD_TRAINING_INSTANCE_TYPE``: e.g. ``ml.g5.xlarge``."""
    use_spot: bool
    """``SIM2CLOUD_TRAINING_USE_SPOT``: managed spot training (default true)."""
    max_runtime_seconds: int
    """``SIM2CLOUD_TRAINING_MAX_RUNTIME_SECONDS``: training time limit (default 6 h)."""
    max_wait_seconds: int
    """``SIM2CLOUD_TRAINING_MAX_WAIT_SECONDS``: spot only: runtime plus time waiting for capacity (default
    twice the runtime; must not be below it)."""
    volume_size_gb: int
    """``SIM2CLOUD_TRAINING_VOLUME_SIZE_GB``: EBS volume size (default 50)."""
    kms_key_arn: str
    """``SIM2CLOUD_KMS_KEY_ARN``: encrypts the output (and the EBS volume where the instance has one)."""
    hyperparameters: Mapping[str, Any]
    """``SIM2CLOUD_TRAINING_HYPERPARAMETERS``: JSON object of default hyperparameters (default none)."""
    weights_s3_uri: str | None
    """``SIM2CLOUD_TRAINING_WEIGHTS_S3_URI``: optional ``s3://`` prefix or object for the ``weights`` channel."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TrainingLauncherSettings:
        reader = EnvReader(env)
        runtime = reader.integer(Env.TRAINING_MAX_RUNTIME_SECONDS, default=6 * 3600, minimum=60)
        settings = cls(
            bucket=reader.text(Env.DATA_BUCKET),
            image_uri=reader.text(Env.TRAINING_IMAGE_URI),
            role_arn=reader.text(Env.TRAINING_ROLE_ARN),
            instance_type=reader.text(Env.TRAINING_INSTANCE_TYPE),
            use_spot=reader.boolean(Env.TRAINING_USE_SPOT, default=True),
            max_runtime_seconds=runtime,
            max_wait_seconds=reader.integer(Env.TRAINING_MAX_WAIT_SECONDS, default=2 * runtime, minimum=runtime),
            volume_size_gb=reader.integer(Env.TRAINING_VOLUME_SIZE_GB, default=50, minimum=1),
            kms_key_arn=reader.text(Env.KMS_KEY_ARN),
            hyperparameters=reader.json_object(Env.TRAINING_HYPERPARAMETERS),
            weights_s3_uri=reader.optional_text(Env.TRAINING_WEIGHTS_S3_URI),
        )
        if settings.weights_s3_uri is not None and not settings.weights_s3_uri.startswith("s3://"):
            reader.problems.append(f"{Env.TRAINING_WEIGHTS_S3_URI}={settings.weights_s3_uri!r} is not an s3:// URI")
        if not settings.instance_type.startswith("ml.") and settings.instance_type:
            reader.problems.append(f"{Env.TRAINING_INSTANCE_TYPE}={settings.instance_type!r} is not an ml.* type")
        reader.raise_if_problems("training launcher")
        return settings


# --------------------------------------------------------------------------------------
# Pure rules
# --------------------------------------------------------------------------------------
def training_job_name(run: str) -> str:
    """``sim2cloud-<slug>-<hash>``: deterministic per run, <= 63 chars of ``[a-zA-Z0-9-]``."""
    digest = hashlib.sha256(run.encode("utf-8")).hexdigest()[:NAME_HASH_CHARS]
    room = MAX_JOB_NAME - len(contract.TRAINING_JOB_NAME_PREFIX) - 1 - NAME_HASH_CHARS
    slug = _NAME_UNSAFE.sub("-", run).strip("-")[:room].strip("-")
    return (
        f"{contract.TRAINING_JOB_NAME_PREFIX}{slug}-{digest}"
        if slug
        else f"{contract.TRAINING_JOB_NAME_PREFIX}{digest}"
    )


def merged_hyperparameters(defaults: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, str]:
    section = manifest.get(MANIFEST_TRAINING_SECTION) or {}
    if not isinstance(section, Mapping):
        raise ManifestError(f"manifest field {MANIFEST_TRAINING_SECTION!r} must be an object")
    return {str(key): contract.hyperparameter_string(value) for key, value in {**defaults, **section}.items()}


def weights_hyperparameters(weights_s3_uri: str | None) -> dict[str, str]:
    """``model=<file name>`` when the weights channel is one ``.pt`` object: the job loads it from the channel
    (a batch.yaml ``training: model:`` still wins)."""
    if not weights_s3_uri or not weights_s3_uri.endswith(".pt"):
        return {}
    return {"model": weights_s3_uri.rsplit("/", 1)[-1]}


def volume_kms_allowed(instance_type: str) -> bool:
    return _INSTANCE_STORAGE_FAMILY.match(instance_type) is None


def training_job_request(settings: TrainingLauncherSettings, run: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The complete CreateTrainingJob request for ``run``."""
    bucket = settings.bucket
    channels: list[dict[str, Any]] = [
        {
            "ChannelName": contract.DATASET_CHANNEL,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{bucket}/{contract.dataset_prefix(run)}",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "InputMode": "File",
        }
    ]
    if settings.weights_s3_uri:
        channels.append(
            {
                "ChannelName": contract.WEIGHTS_CHANNEL,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": settings.weights_s3_uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
        )
    resources: dict[str, Any] = {
        "InstanceType": settings.instance_type,
        "InstanceCount": 1,
        "VolumeSizeInGB": settings.volume_size_gb,
    }
    if volume_kms_allowed(settings.instance_type):
        resources["VolumeKmsKeyId"] = settings.kms_key_arn
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": settings.max_runtime_seconds}
    if settings.use_spot:
        stopping["MaxWaitTimeInSeconds"] = settings.max_wait_seconds
    return {
        "TrainingJobName": training_job_name(run),
        "HyperParameters": merged_hyperparameters(
            {**settings.hyperparameters, **weights_hyperparameters(settings.weights_s3_uri)}, manifest
        ),
        "AlgorithmSpecification": {
            "TrainingImage": settings.image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": contract.metric_definitions(),
        },
        "RoleArn": settings.role_arn,
        "InputDataConfig": channels,
        "OutputDataConfig": {
            "S3OutputPath": f"s3://{bucket}/{contract.model_prefix(run)}",
            "KmsKeyId": settings.kms_key_arn,
        },
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": settings.use_spot,
        "CheckpointConfig": {
            "S3Uri": f"s3://{bucket}/{contract.model_checkpoint_prefix(run)}",
            "LocalPath": contract.SageMakerPaths().checkpoint_dir,
        },
        "Tags": [{"Key": contract.TRAINING_RUN_TAG, "Value": run}],
    }


def parse_manifest(body: bytes, key: str) -> dict[str, Any]:
    if len(body) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{key} is {len(body)} bytes, over {MAX_MANIFEST_BYTES}")
    try:
        manifest = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"{key} is not valid JSON: {err}") from err
    if not isinstance(manifest, dict):
        raise ManifestError(f"{key} must hold a JSON object, got {type(manifest).__name__}")
    return manifest


# --------------------------------------------------------------------------------------
# The launcher
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Outcome(shared_outcome.Outcome):
    """Actions: ``ignored``, ``duplicate`` or ``created``."""

    training_job_name: str | None = None


def _error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


class TrainingLauncher:
    def __init__(self, settings: TrainingLauncherSettings, s3: Any, sagemaker: Any) -> None:
        self.settings = settings
        self.s3 = s3
        self.sagemaker = sagemaker

    def on_object_created(self, ref: S3ObjectRef) -> Outcome:
        ignored = not_ours(ref, self.settings.bucket, log)
        if ignored:
            return Outcome(action="ignored", detail=ignored)
        run = contract.parse_dataset_manifest_key(ref.key)
        if run is None:
            log.info("ignored: not a dataset manifest", extra={"key": ref.key})
            return Outcome(action="ignored", detail="not datasets/<run>/manifest.json")
        bind(run=run)
        try:
            contract.check_id(run, "run id")
        except ValueError as err:
            self._record_rejection(ref, str(err))
            raise ManifestError(f"{ref.key}: {err}") from err
        name = training_job_name(run)
        if self._job_exists(name):
            log.info("duplicate: training job already exists", extra={"training_job": name})
            return Outcome(action="duplicate", run=run, training_job_name=name)
        body = self.s3.get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read()
        try:
            manifest = parse_manifest(body, ref.key)
            request = training_job_request(self.settings, run, manifest)
        except ManifestError as err:
            self._record_rejection(ref, str(err))
            raise
        try:
            self.sagemaker.create_training_job(**request)
        except ClientError as err:
            message = str(err.response.get("Error", {}).get("Message", ""))
            if _error_code(err) == "ResourceInUse" or "already exists" in message:
                log.info("duplicate: training job created concurrently", extra={"training_job": name})
                return Outcome(action="duplicate", run=run, training_job_name=name)
            raise
        log.info(
            "created training job",
            extra={
                "training_job": name,
                "instance_type": self.settings.instance_type,
                "spot": self.settings.use_spot,
                "hyperparameters": request["HyperParameters"],
            },
        )
        return Outcome(action="created", run=run, training_job_name=name)

    def _job_exists(self, name: str) -> bool:
        try:
            self.sagemaker.describe_training_job(TrainingJobName=name)
        except ClientError as err:
            if _error_code(err) in ("ValidationException", "ResourceNotFound"):
                return False
            raise
        return True

    def _record_rejection(self, ref: S3ObjectRef, reason: str) -> None:
        record = contract.quarantine_record(
            key=ref.key,
            etag=ref.etag,
            size=ref.size,
            reason=reason,
            rejected_by="training-launcher",
            run=contract.parse_dataset_manifest_key(ref.key),
        )
        write_quarantine_record(self.s3, ref.bucket, record)
        log.error("rejected manifest", extra={"key": ref.key, "reason": reason})
