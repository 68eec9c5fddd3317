"""Model gate: register each finished training job's model, approve it when the quality gate passes.

Input: EventBridge ``SageMaker Training Job State Change`` (the detail mirrors DescribeTrainingJob:
``TrainingJobName``, ``TrainingJobArn``, ``TrainingJobStatus``, ``FailureReason``,
``ModelArtifacts.S3ModelArtifacts``, ``AlgorithmSpecification.TrainingImage``, ``CreationTime``,
``Tags`` ...; missing fields are read with DescribeTrainingJob).

* ``Completed``: stream ``model.tar.gz``, read ``model.json``'s metrics, write them to
  ``runs/<run>/metrics/<job>.json``, and register a model package in the group (inference spec with the
  training image, which also serves, and the artifact; the serving content types; the metrics as model
  quality statistics and as customer metadata). The package is created ``PendingManualApproval`` and then
  updated to its verdict with the reason as ``ApprovalDescription``: ``Approved`` when ``mAP50`` reaches
  ``SIM2CLOUD_QUALITY_GATE_MAP50`` and the approval mode is ``auto``; otherwise it stays pending and the
  reason says why (below the gate, metric missing, or manual mode).
  After the decision it writes the run report ``runs/<run>/report.html`` (sim2cloud.report.stored).
  Idempotent per training job: the package carries the job name in its customer metadata and a client
  token derived from it; a redelivered event finds the package (listing the group's packages created
  since the job) and only finishes a verdict that a crash left unset.
* ``Failed`` / ``Stopped``: publish the job name, run id, status and failure reason to the failure topic.
  An artifact without a readable ``model.json`` is reported there too, and nothing is registered.
"""

from __future__ import annotations

import hashlib
import json
import math
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import ClientError
from shared import outcome as shared_outcome
from shared.structured_log import bind, get_logger

from sim2cloud import contract
from sim2cloud.contract import Env
from sim2cloud.env_reader import EnvReader
from sim2cloud.report.stored import write_stored_report
from sim2cloud.s3_transfer import split_s3_uri

log = get_logger("sim2cloud.model_gate")

APPROVED: Final = "Approved"
PENDING: Final = "PendingManualApproval"
RESPONSE_CONTENT_TYPE: Final = "application/json"
GATE_METRIC: Final = "mAP50"
MAX_MODEL_JSON_BYTES: Final = 16 * 1024 * 1024
METADATA_PREFIX: Final = "sim2cloud:"
MAX_METADATA_VALUE: Final = 256
MAX_SUBJECT: Final = 100


class ArtifactError(ValueError):
    """The model artifact cannot be read as our model (no model.json, bad JSON, bad URI)."""


@dataclass(frozen=True)
class ModelGateSettings:
    """The gate's environment, parsed once at cold start."""

    model_package_group: str
    """``SIM2CLOUD_MODEL_PACKAGE_GROUP``: the model package group name."""
    quality_gate_map50: float
    """``SIM2CLOUD_QUALITY_GATE_MAP50``: minimum validation mAP50 (0..1) for automatic approval."""
    approval_mode: str
    """``SIM2CLOUD_MODEL_APPROVAL_MODE``: ``auto`` (approve what passes) or ``manual`` (default ``manual``)."""
    failure_topic_arn: str
    """``SIM2CLOUD_FAILURE_TOPIC_ARN``: SNS topic for failed/stopped jobs and unusable artifacts."""
    bucket: str
    """``SIM2CLOUD_DATA_BUCKET``: where the metrics JSON of each package is written."""
    environment: str
    """``SIM2CLOUD_ENVIRONMENT``: shown in notifications (default ``unknown``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModelGateSettings:
        reader = EnvReader(env)
        settings = cls(
            model_package_group=reader.text(Env.MODEL_PACKAGE_GROUP),
            quality_gate_map50=reader.number(Env.QUALITY_GATE_MAP50, low=0.0, high=1.0),
            approval_mode=reader.choice(Env.MODEL_APPROVAL_MODE, contract.APPROVAL_MODES, default="manual"),
            failure_topic_arn=reader.text(Env.FAILURE_TOPIC_ARN),
            bucket=reader.text(Env.DATA_BUCKET),
            environment=reader.text(Env.ENVIRONMENT, default="unknown"),
        )
        reader.raise_if_problems("model gate")
        return settings


# --------------------------------------------------------------------------------------
# Pure rules
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    status: str
    """``Approved`` or ``PendingManualApproval``."""
    result: str
    """``pass``, ``fail`` or ``unknown`` (the gate metric is missing)."""
    reason: str


def gate_verdict(metrics: Mapping[str, Any], threshold: float, approval_mode: str) -> Verdict:
    value = metrics.get(GATE_METRIC)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return Verdict(PENDING, "unknown", f"model.json has no numeric {GATE_METRIC}; a person must review it")
    if value < threshold:
        return Verdict(PENDING, "fail", f"{GATE_METRIC} {value:.4f} is below the quality gate {threshold:.4f}")
    if approval_mode != "auto":
        return Verdict(
            PENDING, "pass", f"{GATE_METRIC} {value:.4f} meets the gate {threshold:.4f}; approval mode is manual"
        )
    return Verdict(APPROVED, "pass", f"{GATE_METRIC} {value:.4f} meets the quality gate {threshold:.4f}")


def client_token(training_job: str) -> str:
    """SageMaker's idempotency token for CreateModelPackage (``[a-zA-Z0-9-]``, at most 36)."""
    return hashlib.sha256(training_job.encode("utf-8")).hexdigest()[:36]


def metadata_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:MAX_METADATA_VALUE]


def artifact_location(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of the model artifact's ``s3://bucket/key``; ArtifactError when it names no object."""
    try:
        bucket, key = split_s3_uri(uri)
    except ValueError:
        bucket, key = "", ""
    if not key.strip("/"):
        raise ArtifactError(f"model artifact URI {uri!r} is not s3://bucket/key")
    return bucket, key


def read_model_json(archive: Any, uri: str) -> dict[str, Any]:
    """``model.json`` from a streamed model.tar.gz (nothing is extracted to disk)."""
    try:
        with tarfile.open(fileobj=archive, mode="r|gz") as tar:
            for member in tar:
                if member.isfile() and member.name.removeprefix("./") == contract.MODEL_JSON_NAME:
                    if member.size > MAX_MODEL_JSON_BYTES:
                        raise ArtifactError(f"{contract.MODEL_JSON_NAME} in {uri} is {member.size} bytes")
                    extracted = tar.extractfile(member)
                    if extracted is None:
                        break
                    data = json.loads(extracted.read())
                    if not isinstance(data, dict):
                        raise ArtifactError(f"{contract.MODEL_JSON_NAME} in {uri} is not a JSON object")
                    return data
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ArtifactError(f"{uri} is not a readable gzip tar archive: {err}") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{contract.MODEL_JSON_NAME} in {uri} is not valid JSON: {err}") from err
    raise ArtifactError(f"{uri} has no top-level {contract.MODEL_JSON_NAME}")


def _creation_time(value: Any) -> datetime | None:
    """EventBridge sends epoch milliseconds; DescribeTrainingJob (boto3) gives a datetime."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _tags(value: Any) -> dict[str, str]:
    """Tags as a map (EventBridge sends a map; DescribeTrainingJob-style lists are accepted too)."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {str(t.get("Key")): str(t.get("Value")) for t in value if isinstance(t, Mapping)}
    return {}


@dataclass(frozen=True)
class TrainingJob:
    """What the gate needs about one training job."""

    name: str
    arn: str
    status: str
    failure_reason: str
    run: str | None
    model_artifact: str | None
    training_image: str | None
    creation_time: datetime | None

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any]) -> TrainingJob:
        name = str(detail.get("TrainingJobName", ""))
        artifact = (detail.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        output = (detail.get("OutputDataConfig") or {}).get("S3OutputPath")
        run = _tags(detail.get("Tags")).get(contract.TRAINING_RUN_TAG)
        for uri in (artifact, output):
            if run is None and isinstance(uri, str) and uri.startswith("s3://"):
                run = contract.parse_model_key_run(split_s3_uri(uri)[1])
        return cls(
            name=name,
            arn=str(detail.get("TrainingJobArn", "")),
            status=str(detail.get("TrainingJobStatus", "")),
            failure_reason=str(detail.get("FailureReason") or ""),
            run=run,
            model_artifact=artifact if isinstance(artifact, str) else None,
            training_image=(detail.get("AlgorithmSpecification") or {}).get("TrainingImage"),
            creation_time=_creation_time(detail.get("CreationTime")),
        )

    @property
    def complete(self) -> bool:
        return bool(self.arn and self.model_artifact and self.training_image and self.run)


# --------------------------------------------------------------------------------------
# The gate
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Outcome(shared_outcome.Outcome):
    """Actions: ``ignored``, ``notified``, ``rejected``, ``duplicate`` or ``registered``."""

    training_job: str | None = None
    model_package_arn: str | None = None
    approval_status: str | None = None

    @classmethod
    def registered(cls, job: TrainingJob, arn: str, verdict: Verdict) -> Outcome:
        return cls(
            action="registered",
            training_job=job.name,
            run=job.run,
            model_package_arn=arn,
            approval_status=verdict.status,
            detail=verdict.reason,
        )


class ModelGate:
    def __init__(self, settings: ModelGateSettings, s3: Any, sagemaker: Any, sns: Any) -> None:
        self.settings = settings
        self.s3 = s3
        self.sagemaker = sagemaker
        self.sns = sns

    def on_state_change(self, event: Mapping[str, Any]) -> Outcome:
        detail = event.get("detail")
        if event.get("detail-type") != "SageMaker Training Job State Change" or not isinstance(detail, Mapping):
            raise ValueError(
                f"not a SageMaker Training Job State Change event: detail-type {event.get('detail-type')!r}"
            )
        job = TrainingJob.from_detail(detail)
        if not job.name.startswith(contract.TRAINING_JOB_NAME_PREFIX):
            log.info("ignored: not one of our training jobs", extra={"training_job": job.name})
            return Outcome(action="ignored", training_job=job.name, detail="name without our prefix")
        if job.status not in contract.TRAINING_TERMINAL_STATUSES:
            log.info("ignored: job not finished", extra={"training_job": job.name, "status": job.status})
            return Outcome(action="ignored", training_job=job.name, detail=f"status {job.status}")
        if job.status == "Completed" and not job.complete:
            job = TrainingJob.from_detail(self.sagemaker.describe_training_job(TrainingJobName=job.name))
            job = self._with_run_from_tags(job)
        bind(run=job.run, training_job=job.name)
        if job.status != "Completed":
            self._notify(job, f"training job {job.status.lower()}", job.failure_reason or "(no failure reason given)")
            return Outcome(action="notified", training_job=job.name, run=job.run, detail=job.status)
        return self._register(job)

    def _with_run_from_tags(self, job: TrainingJob) -> TrainingJob:
        if job.run is not None or not job.arn:
            return job
        tags = _tags(self.sagemaker.list_tags(ResourceArn=job.arn).get("Tags", []))
        run = tags.get(contract.TRAINING_RUN_TAG)
        return TrainingJob(**{**vars(job), "run": run})

    # ---- notifications -------------------------------------------------------------------
    def _notify(self, job: TrainingJob, what: str, reason: str) -> None:
        message = {
            "environment": self.settings.environment,
            "training_job": job.name,
            "training_job_arn": job.arn,
            "run": job.run,
            "status": job.status,
            "problem": what,
            "reason": reason,
        }
        subject = f"sim2cloud {self.settings.environment}: {what}: {job.name}"
        subject = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)[:MAX_SUBJECT]
        self.sns.publish(
            TopicArn=self.settings.failure_topic_arn,
            Subject=subject,
            Message=json.dumps(message, indent=2, ensure_ascii=False),
        )
        log.warning("published failure", extra={"problem": what, "reason": reason})

    # ---- registration --------------------------------------------------------------------
    def _register(self, job: TrainingJob) -> Outcome:
        existing = self._find_package(job)
        if existing is not None:
            return self._finish_existing(job, existing)
        if job.model_artifact is None or job.training_image is None or job.run is None:
            missing = "run id" if job.run is None else "model artifact or training image"
            self._notify(job, "completed job cannot be registered", f"{missing} unknown for the job")
            return Outcome(action="rejected", training_job=job.name, run=job.run, detail=f"{missing} unknown")
        try:
            bucket, key = artifact_location(job.model_artifact)
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
            model_json = read_model_json(body, job.model_artifact)
        except ArtifactError as err:
            self._notify(job, "model artifact unusable", str(err))
            return Outcome(action="rejected", training_job=job.name, run=job.run, detail=str(err))
        metrics = model_json.get(contract.MODEL_JSON_METRICS_FIELD)
        metrics = metrics if isinstance(metrics, Mapping) else {}
        verdict = gate_verdict(metrics, self.settings.quality_gate_map50, self.settings.approval_mode)
        metrics_key = contract.run_model_metrics_key(job.run, job.name)
        self._write_metrics(metrics_key, job, metrics, verdict)
        metadata = self._metadata(job, metrics, verdict)
        arn = str(
            self.sagemaker.create_model_package(
                ModelPackageGroupName=self.settings.model_package_group,
                ModelPackageDescription=f"{job.name} trained on dataset {job.run}"[:1024],
                InferenceSpecification={
                    "Containers": [{"Image": job.training_image, "ModelDataUrl": job.model_artifact}],
                    "SupportedContentTypes": list(contract.SERVING_CONTENT_TYPES),
                    "SupportedResponseMIMETypes": [RESPONSE_CONTENT_TYPE],
                },
                ModelApprovalStatus=PENDING,
                MetadataProperties={"GeneratedBy": job.arn[:1024]},
                ModelMetrics={
                    "ModelQuality": {
                        "Statistics": {
                            "ContentType": "application/json",
                            "S3Uri": f"s3://{self.settings.bucket}/{metrics_key}",
                        }
                    }
                },
                CustomerMetadataProperties=metadata,
                ClientToken=client_token(job.name),
            )["ModelPackageArn"]
        )
        self._apply_verdict(arn, verdict, metadata)
        log.info(
            "registered model package",
            extra={"model_package_arn": arn, "approval_status": verdict.status, "reason": verdict.reason},
        )
        self._write_report(job, model_json, key, metrics, verdict, arn)
        return Outcome.registered(job, arn, verdict)

    def _metadata(self, job: TrainingJob, metrics: Mapping[str, Any], verdict: Verdict) -> dict[str, str]:
        metadata = {
            contract.TRAINING_JOB_METADATA_KEY: job.name,
            contract.TRAINING_RUN_TAG: job.run or "",
            f"{METADATA_PREFIX}gate-{GATE_METRIC}": metadata_value(self.settings.quality_gate_map50),
            f"{METADATA_PREFIX}gate-result": verdict.result,
            f"{METADATA_PREFIX}gate-reason": metadata_value(verdict.reason),
            f"{METADATA_PREFIX}approval-mode": self.settings.approval_mode,
        }
        for name in contract.METRIC_NAMES:
            if name in metrics:
                metadata[f"{METADATA_PREFIX}{name}"] = metadata_value(metrics[name])
        return metadata

    def _write_metrics(self, key: str, job: TrainingJob, metrics: Mapping[str, Any], verdict: Verdict) -> None:
        document = {
            "training_job": job.name,
            "run": job.run,
            "model_artifact": job.model_artifact,
            "metrics": dict(metrics),
            "gate": {"metric": GATE_METRIC, "threshold": self.settings.quality_gate_map50, **vars(verdict)},
        }
        self.s3.put_object(
            Bucket=self.settings.bucket,
            Key=key,
            Body=json.dumps(document, indent=2, default=str).encode("utf-8"),
            ContentType="application/json",
        )

    def _write_report(
        self,
        job: TrainingJob,
        model_json: Mapping[str, Any],
        artifact_key: str,
        metrics: Mapping[str, Any],
        verdict: Verdict,
        arn: str,
    ) -> None:
        """runs/<run>/report.html after the decision (sim2cloud.report.stored says why here). A report that
        cannot be written is logged, never a failed gate: the package and its verdict stand."""
        assert job.run is not None
        record = {
            "training_job": job.name,
            "metrics": dict(metrics),
            "gate": {"metric": GATE_METRIC, "threshold": self.settings.quality_gate_map50, **vars(verdict)},
            "model_package_arn": arn,
            "approval_status": verdict.status,
        }
        try:
            description = self.sagemaker.describe_training_job(TrainingJobName=job.name)
            key = write_stored_report(
                self.s3, self.settings.bucket, job.run, model_json, artifact_key, description, record
            )
        except Exception:
            log.exception("run report not written", extra={"run": job.run})
            return
        log.info("run report written", extra={"report_key": key})

    def _apply_verdict(self, arn: str, verdict: Verdict, metadata: Mapping[str, str]) -> None:
        # CreateModelPackage takes no ApprovalDescription, so the verdict and its reason are one update.
        self.sagemaker.update_model_package(
            ModelPackageArn=arn,
            ModelApprovalStatus=verdict.status,
            ApprovalDescription=verdict.reason[:1024],
            CustomerMetadataProperties=dict(metadata),
        )

    def _packages_since(self, since: datetime | None) -> Iterator[str]:
        request: dict[str, Any] = {"ModelPackageGroupName": self.settings.model_package_group, "MaxResults": 100}
        if since is not None:
            request["CreationTimeAfter"] = since
        while True:
            page = self.sagemaker.list_model_packages(**request)
            for summary in page.get("ModelPackageSummaryList", []):
                yield str(summary["ModelPackageArn"])
            token = page.get("NextToken")
            if not token:
                return
            request["NextToken"] = token

    def _find_package(self, job: TrainingJob) -> dict[str, Any] | None:
        """The package already registered for this job, if any (only packages created after the job)."""
        try:
            for arn in self._packages_since(job.creation_time):
                package = self.sagemaker.describe_model_package(ModelPackageName=arn)
                if (package.get("CustomerMetadataProperties") or {}).get(
                    contract.TRAINING_JOB_METADATA_KEY
                ) == job.name:
                    return dict(package)
        except ClientError as err:
            if "does not exist" in str(err.response.get("Error", {}).get("Message", "")):
                return None
            raise
        return None

    def _finish_existing(self, job: TrainingJob, package: Mapping[str, Any]) -> Outcome:
        arn = str(package["ModelPackageArn"])
        status = str(package.get("ModelApprovalStatus", ""))
        if package.get("ApprovalDescription") or status != PENDING:
            log.info(
                "duplicate: package already registered", extra={"model_package_arn": arn, "approval_status": status}
            )
            return Outcome(
                action="duplicate", training_job=job.name, run=job.run, model_package_arn=arn, approval_status=status
            )
        # A crash between create and update left the verdict unset: finish it from what was recorded.
        metadata = {str(k): str(v) for k, v in (package.get("CustomerMetadataProperties") or {}).items()}
        result = metadata.get(f"{METADATA_PREFIX}gate-result", "unknown")
        reason = metadata.get(f"{METADATA_PREFIX}gate-reason", "verdict recovered after an interrupted registration")
        approved = result == "pass" and self.settings.approval_mode == "auto"
        verdict = Verdict(APPROVED if approved else PENDING, result, reason)
        self._apply_verdict(arn, verdict, metadata)
        log.warning("finished an interrupted registration", extra={"model_package_arn": arn})
        return Outcome.registered(job, arn, verdict)
