"""Frozen per-environment settings. Nothing here calls AWS: every value is a literal or comes from CDK context
or the CDK_DEFAULT_* variables the CLI sets, so ``cdk synth`` works without credentials.

Stacks receive the pieces they need as keyword-only arguments (aws-samples/aws-cdk-project-structure-python),
so a stack never reads context itself and a test can build any environment by name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sim2cloud import __version__, contract, wiring
from sim2cloud.wiring import ApprovalMode

if TYPE_CHECKING:
    import aws_cdk as cdk

PROJECT = contract.STACK_NAME_PREFIX
"""Stack-name prefix: ``Sim2Cloud-<env>-<Lifecycle>``."""
RESOURCE_PREFIX = "sim2cloud"
"""Lower-case prefix for the few physical names we fix (endpoint, queue, functions) so dashboards and alarms
can name them without cross-stack references."""

PLACEHOLDER_ACCOUNT = "000000000000"
"""Used when neither context ``account`` nor CDK_DEFAULT_ACCOUNT is set (synth only; never deployable)."""
PLACEHOLDER_REGION = "us-east-1"


@dataclass(frozen=True)
class RenderSettings:
    """AWS Batch GPU fleet for the Isaac Sim render job."""

    instance_types: tuple[str, ...]
    """RTX-class only (Isaac Sim needs RT cores): g6e (L40S), g6 (L4), g5 (A10G). All carry NVMe instance
    storage, which holds the shader/kit caches."""
    use_spot: bool
    """Spot for the primary compute environment; an on-demand environment always follows it in the queue order."""
    max_vcpus: int
    """Upper bound of each compute environment (spot and on-demand separately)."""
    fallback_max_vcpus: int
    """Upper bound of the on-demand fallback environment (kept small: it only absorbs spot shortages)."""
    job_vcpus: int = 4
    job_memory_mib: int = 28_000
    """Fits a g6.2xlarge / g5.2xlarge (32 GiB) with room for the ECS agent."""
    shared_memory_mib: int = 8_192
    """Shared memory (the container's /dev/shm) for Kit's IPC; Docker's 64 MiB default crashes Isaac Sim."""
    job_timeout_minutes: int = 180
    retry_attempts: int = 3
    """Attempts per shard; only host/spot terminations retry, our own errors exit at once."""
    finalize_vcpus: int = 2
    finalize_memory_mib: int = 4_096


@dataclass(frozen=True)
class TrainingSettings:
    """SageMaker training job launched per dataset."""

    instance_type: str
    use_spot: bool
    max_runtime_seconds: int
    quality_gate_map50: float
    approval_mode: ApprovalMode
    """The model gate's threshold and approval mode: sim2cloud/wiring.py QUALITY_GATES (the local pipeline
    applies one of them too)."""
    weights_s3_uri: str | None = None
    """Fine-tune every run from these weights: ``s3://<bucket>/<key>.pt`` (one object, e.g. COCO-pretrained
    yolov8n.pt you uploaded). The training launcher passes it as the ``weights`` channel and ``model=<file
    name>``; the training role may read exactly that object. None: train from the model YAML. Set per deploy
    with ``-c training_weights_s3_uri=s3://...``; the object must be readable with SSE-S3 or the data key."""

    def __post_init__(self) -> None:
        if self.weights_s3_uri is not None and not _WEIGHTS_S3_URI.match(self.weights_s3_uri):
            raise ValueError(f"training weights {self.weights_s3_uri!r}: give one object as s3://<bucket>/<key>.pt")


_WEIGHTS_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^*?]+\.pt$")


@dataclass(frozen=True)
class EndpointSettings:
    """Real-time SageMaker endpoint serving the approved model."""

    instance_type: str
    """Must be an instance type without local NVMe storage (ml.c6i/ml.m6i...): SageMaker rejects a KMS key for
    the ML storage volume on instance types with instance storage (g5, c5d, ...)."""
    min_capacity: int
    max_capacity: int
    invocations_per_instance_target: int
    """Target-tracking value for SageMakerVariantInvocationsPerInstance (per minute)."""
    data_capture: bool
    """Capture requests/responses under the contract's capture prefix (KMS-encrypted)."""
    latency_alarm_microseconds: int = 500_000
    """ModelLatency (average, microseconds) that rolls a deployment back."""
    scale_in_cooldown_seconds: int = 300
    scale_out_cooldown_seconds: int = 60


@dataclass(frozen=True)
class StorageSettings:
    renders_expire_days: int
    """Render shards are intermediate: the dataset is the product."""
    datasets_transition_days: int
    """Datasets move to Infrequent Access after this many days (kept for lineage)."""
    noncurrent_expire_days: int
    """Overwritten/deleted object versions are kept this long for recovery."""
    access_log_expire_days: int = 365


@dataclass(frozen=True)
class CiSettings:
    github_repository: str | None
    """``owner/name`` allowed to assume the deploy role through GitHub OIDC. None (the default: nobody named
    one) leaves the CiAccess stack out, so no role trusts a repository the deploying user did not name. Set it
    with ``-c github_repository=owner/name`` or a ``github_repository`` entry in cdk.json's context."""
    github_environment: str
    """GitHub environment name the workflow job must run in (the trust policy pins it)."""
    create_oidc_provider: bool = True
    """One GitHub OIDC provider exists per account: set False in the second environment of a shared account."""
    subject_repository: str | None = None
    """How the repository appears in the token's ``sub`` claim when it differs from ``github_repository``:
    repositories created after 15 July 2026 get immutable claims ``owner@<org id>/name@<repo id>``."""

    @property
    def subject(self) -> str:
        """The exact ``sub`` claim of a job of this repository running in this GitHub environment."""
        return f"repo:{self._subject_repository}:environment:{self.github_environment}"

    @property
    def pull_request_subject(self) -> str:
        """The ``sub`` claim of a pull-request job of this repository (the read-only ``cdk diff`` role's trust).
        GitHub gives pull requests from forks no OIDC token, so only branches of this repository match."""
        return f"repo:{self._subject_repository}:pull_request"

    @property
    def _subject_repository(self) -> str:
        if self.github_repository is None:
            raise ValueError("no GitHub repository named (-c github_repository=owner/name): nothing to trust")
        return self.subject_repository or self.github_repository


@dataclass(frozen=True)
class EnvironmentSettings:
    name: str
    account: str
    region: str
    availability_zone_count: int
    """AZs of the render VPC (the first N of Fn::GetAZs at deploy; never looked up at synth)."""
    render: RenderSettings
    training: TrainingSettings
    endpoint: EndpointSettings
    storage: StorageSettings
    ci: CiSettings
    retain_data: bool
    """Retain buckets, keys, repositories and log groups on stack deletion (prod); destroy them in dev."""
    log_retention_days: int
    quiet_period_seconds: int
    """Render batching: a drop is submitted this long after its last file (SQS delivery delay), or at once when
    its batch config file arrives."""
    image_tag: str = __version__
    """Tag of the Isaac Sim and YOLO images the job definitions and training jobs run. The repositories have
    immutable tags, so a tag names one image forever: push ``<repository>:<tag>`` first, then deploy with
    ``-c image_tag=<tag>`` (CI passes its ``IMAGE_TAG`` variable). Never a moving tag such as ``latest``."""
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def removal_policy(self) -> cdk.RemovalPolicy:
        import aws_cdk as cdk  # here, not at the top: reading settings (the demo's cost estimate) starts no Node

        return cdk.RemovalPolicy.RETAIN if self.retain_data else cdk.RemovalPolicy.DESTROY

    @property
    def cdk_environment(self) -> cdk.Environment:
        import aws_cdk as cdk

        return cdk.Environment(account=self.account, region=self.region)

    def stack_name(self, lifecycle: str) -> str:
        return contract.stack_name(self.name, lifecycle)

    def resource_name(self, suffix: str) -> str:
        """Physical name for resources referenced by name elsewhere (dashboard, alarms, workflows)."""
        return f"{RESOURCE_PREFIX}-{self.name}-{suffix}"


def _dev(account: str, region: str, repository: str | None) -> EnvironmentSettings:
    return EnvironmentSettings(
        name="dev",
        account=account,
        region=region,
        availability_zone_count=2,
        render=RenderSettings(
            instance_types=("g6.2xlarge", "g5.2xlarge"), use_spot=True, max_vcpus=32, fallback_max_vcpus=8
        ),
        training=TrainingSettings(
            instance_type="ml.g5.xlarge",
            use_spot=True,
            max_runtime_seconds=4 * 3600,
            quality_gate_map50=wiring.QUALITY_GATES["dev"].map50,
            approval_mode=wiring.QUALITY_GATES["dev"].approval_mode,
        ),
        endpoint=EndpointSettings(
            instance_type="ml.c6i.xlarge",
            min_capacity=1,
            max_capacity=2,
            invocations_per_instance_target=200,
            data_capture=False,
        ),
        storage=StorageSettings(renders_expire_days=7, datasets_transition_days=30, noncurrent_expire_days=7),
        ci=CiSettings(github_repository=repository, github_environment="dev"),
        retain_data=False,
        log_retention_days=14,
        quiet_period_seconds=120,
        tags={"Project": PROJECT, "Environment": "dev"},
    )


def _prod(account: str, region: str, repository: str | None) -> EnvironmentSettings:
    return EnvironmentSettings(
        name="prod",
        account=account,
        region=region,
        availability_zone_count=3,
        render=RenderSettings(
            instance_types=("g6e.2xlarge", "g6.2xlarge", "g5.2xlarge"),
            use_spot=True,
            max_vcpus=256,
            fallback_max_vcpus=64,
        ),
        training=TrainingSettings(
            instance_type="ml.g5.2xlarge",
            use_spot=True,
            max_runtime_seconds=12 * 3600,
            quality_gate_map50=wiring.QUALITY_GATES["prod"].map50,
            approval_mode=wiring.QUALITY_GATES["prod"].approval_mode,
        ),
        endpoint=EndpointSettings(
            instance_type="ml.c6i.2xlarge",
            min_capacity=2,
            max_capacity=8,
            invocations_per_instance_target=400,
            data_capture=True,
        ),
        storage=StorageSettings(renders_expire_days=30, datasets_transition_days=90, noncurrent_expire_days=90),
        ci=CiSettings(github_repository=repository, github_environment="prod"),
        retain_data=True,
        log_retention_days=365,
        quiet_period_seconds=300,
        tags={"Project": PROJECT, "Environment": "prod"},
    )


_FACTORIES = {"dev": _dev, "prod": _prod}
ENVIRONMENTS: tuple[str, ...] = tuple(_FACTORIES)

_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_GITHUB_SUBJECT_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}@[0-9]+/[A-Za-z0-9._-]{1,100}@[0-9]+$")


def load_settings(name: str, context: Mapping[str, Any] | None = None) -> EnvironmentSettings:
    """Settings for environment ``name``; ``context`` (CDK context values) may override account, region and
    the GitHub repository. Raises ValueError naming the known environments for an unknown name."""
    context = context or {}
    if name not in _FACTORIES:
        raise ValueError(f"unknown environment {name!r} (-c env=...): choose one of {', '.join(ENVIRONMENTS)}")
    account = str(context.get("account") or os.environ.get("CDK_DEFAULT_ACCOUNT") or PLACEHOLDER_ACCOUNT)
    region = str(context.get("region") or os.environ.get("CDK_DEFAULT_REGION") or PLACEHOLDER_REGION)
    repository = _checked_repository(context.get("github_repository"))
    settings = _FACTORIES[name](account, region, repository)
    if context.get("training_weights_s3_uri"):
        weights = str(context["training_weights_s3_uri"])
        settings = replace(settings, training=replace(settings.training, weights_s3_uri=weights))
    if context.get("github_subject_repository"):
        subject_repository = str(context["github_subject_repository"])
        if repository is None or not _GITHUB_SUBJECT_REPOSITORY.match(subject_repository):
            raise ValueError(
                f"-c github_subject_repository={subject_repository!r}: give it with -c github_repository=owner/name,"
                " in the immutable-claim form owner@<org id>/name@<repo id>"
            )
        settings = replace(settings, ci=replace(settings.ci, subject_repository=subject_repository))
    if context.get("image_tag"):
        settings = replace(settings, image_tag=_checked_image_tag(str(context["image_tag"])))
    if context.get("create_oidc_provider") is not None:
        flag = str(context["create_oidc_provider"]).lower() in {"1", "true", "yes"}
        settings = replace(settings, ci=replace(settings.ci, create_oidc_provider=flag))
    return settings


def _checked_repository(value: Any) -> str | None:
    """``owner/name`` as GitHub spells it, or None when no repository was named (never a default)."""
    if value is None or str(value).strip() == "":
        return None
    repository = str(value).strip()
    if not _GITHUB_REPOSITORY.match(repository):
        raise ValueError(f"-c github_repository={repository!r}: give the repository as owner/name (no wildcards)")
    return repository


_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _checked_image_tag(tag: str) -> str:
    """An image tag as Docker/ECR accept it; ``latest`` is refused since the repositories' tags are immutable."""
    if not _IMAGE_TAG.match(tag) or tag == "latest":
        raise ValueError(f"-c image_tag={tag!r}: use an immutable tag such as a version or a commit SHA")
    return tag
