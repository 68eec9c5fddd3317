"""How the pipeline's pieces are wired together, written once for the CDK stacks and the local runner.

The contract says what each piece reads and writes (keys, variable names, event patterns); this module says
which piece is connected to which: each Lambda function with the environment variables it is given, each
EventBridge rule with its pattern and its target, the quiet-period queue's delivery, the render job
definitions and the per-environment quality gate. ``stacks/`` builds CloudFormation from it (values are CDK
tokens there) and ``sim2cloud.local.runner`` builds the moto resources and its event routing from it (values
are moto's names and ARNs there), so the demo cannot wire something the deployed pipeline does not, or the
other way round: :func:`function_environment` refuses a variable set that is not the declared one, and
``tests/infra/test_wiring.py`` compares the synthesized templates with what the local runner builds.

Stdlib only (imports the contract and nothing else): the CDK app, the CLI and the local runner all read it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from sim2cloud import contract
from sim2cloud.contract import Env

# --------------------------------------------------------------------------------------
# Lambda functions and their environment
# --------------------------------------------------------------------------------------
RENDER_LAUNCHER: Final = "render_launcher"
TRAINING_LAUNCHER: Final = "training_launcher"
MODEL_GATE: Final = "model_gate"

COMMON_FUNCTION_VARIABLES: Final = (Env.DATA_BUCKET, Env.ENVIRONMENT, Env.LOG_LEVEL)
"""Every function and job gets the data bucket, the environment name and the log level."""
LOG_LEVEL: Final = "INFO"


@dataclass(frozen=True)
class FunctionWiring:
    """One Lambda function: its source folder ``lambda/<folder>``, the construct id the stack gives it, the
    variables every deployment must set (besides :data:`COMMON_FUNCTION_VARIABLES`) and the ones a deployment
    may set to override the handler's default."""

    folder: str
    construct_id: str
    variables: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def required(self) -> frozenset[str]:
        return frozenset((*COMMON_FUNCTION_VARIABLES, *self.variables))


FUNCTIONS: Final[Mapping[str, FunctionWiring]] = {
    RENDER_LAUNCHER: FunctionWiring(
        RENDER_LAUNCHER,
        "RenderLauncher",
        (Env.JOB_QUEUE, Env.RENDER_JOB_DEFINITION, Env.FINALIZE_JOB_DEFINITION, Env.QUIET_PERIOD_SECONDS),
        optional=(Env.FRAMES_PER_SHARD, Env.DEFAULT_FRAMES, Env.MAX_MESH_BYTES),
    ),
    TRAINING_LAUNCHER: FunctionWiring(
        TRAINING_LAUNCHER,
        "TrainingLauncher",
        (
            Env.TRAINING_IMAGE_URI,
            Env.TRAINING_ROLE_ARN,
            Env.TRAINING_INSTANCE_TYPE,
            Env.TRAINING_USE_SPOT,
            Env.TRAINING_MAX_RUNTIME_SECONDS,
            Env.TRAINING_HYPERPARAMETERS,
            Env.KMS_KEY_ARN,
        ),
        optional=(Env.TRAINING_MAX_WAIT_SECONDS, Env.TRAINING_VOLUME_SIZE_GB, Env.TRAINING_WEIGHTS_S3_URI),
    ),
    MODEL_GATE: FunctionWiring(
        MODEL_GATE,
        "ModelGate",
        (Env.MODEL_PACKAGE_GROUP, Env.QUALITY_GATE_MAP50, Env.MODEL_APPROVAL_MODE, Env.FAILURE_TOPIC_ARN),
    ),
}
"""The three orchestration functions, in the order the flow reaches them."""


class WiringError(ValueError):
    """A stack or the local runner wired something the wiring description does not declare."""


def common_environment(data_bucket: str, environment: str) -> dict[str, str]:
    """The variables every function and job gets (:data:`COMMON_FUNCTION_VARIABLES`)."""
    return {Env.DATA_BUCKET: data_bucket, Env.ENVIRONMENT: environment, Env.LOG_LEVEL: LOG_LEVEL}


def function_environment(function: str, values: Mapping[str, str]) -> dict[str, str]:
    """``values`` as the environment of ``function``, checked against its declaration: raises WiringError
    naming the missing and the undeclared variables, so neither side can add one alone."""
    wiring = FUNCTIONS[function]
    missing = wiring.required - set(values)
    undeclared = set(values) - wiring.required - set(wiring.optional)
    if missing or undeclared:
        raise WiringError(
            f"function {function}: environment differs from sim2cloud/wiring.py"
            + (f"; missing {sorted(missing)}" if missing else "")
            + (f"; not declared {sorted(undeclared)}" if undeclared else "")
        )
    return dict(values)


def training_hyperparameters_variable() -> str:
    """``SIM2CLOUD_TRAINING_HYPERPARAMETERS``: the defaults a batch without a ``training:`` section gets."""
    return json.dumps(contract.DEFAULT_TRAINING_HYPERPARAMETERS, sort_keys=True)


# --------------------------------------------------------------------------------------
# Per-environment settings both sides apply
# --------------------------------------------------------------------------------------
ApprovalMode = Literal["auto", "manual"]


@dataclass(frozen=True)
class QualityGate:
    map50: float
    """A model package is approved only when its validation mAP50 reaches this."""
    approval_mode: ApprovalMode
    """auto: the gate approves passing models; manual: it leaves them PendingManualApproval for a person."""


QUALITY_GATES: Final[Mapping[str, QualityGate]] = {
    "dev": QualityGate(map50=0.5, approval_mode="auto"),
    "prod": QualityGate(map50=0.7, approval_mode="manual"),
}
"""Per deployed environment (stacks/config.py reads it); the local pipeline applies LOCAL_GATE_OF's."""
LOCAL_GATE_OF: Final = "dev"
"""The local pipeline's model gate applies this environment's quality gate."""

QUIET_PERIOD_BATCH_SIZE: Final = 10
"""Mesh events per invocation from the quiet-period queue (SQS event source batch size)."""


# --------------------------------------------------------------------------------------
# Render job definitions
# --------------------------------------------------------------------------------------
RENDER_JOB: Final = "render"
FINALIZE_JOB: Final = "finalize"


@dataclass(frozen=True)
class JobWiring:
    """One Batch job definition: the ``isaac_jobs.cloud`` mode its command runs and its extra variables."""

    mode: str
    variables: tuple[str, ...] = ()


JOBS: Final[Mapping[str, JobWiring]] = {
    RENDER_JOB: JobWiring("shard", (Env.RENDER_BACKEND,)),
    FINALIZE_JOB: JobWiring("finalize"),
}
JOB_VARIABLES: Final = (*COMMON_FUNCTION_VARIABLES, Env.WORK_DIR)
"""Every render job gets these (the cloud image adds its own, e.g. ACCEPT_EULA for Isaac Sim)."""


def job_environment(
    job: str,
    common: Mapping[str, str],
    work_dir: str,
    *,
    render_backend: str,
    image_variables: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of the ``job`` definition (``render`` or ``finalize``): the contract's variables plus
    ``image_variables``, what one image needs besides (Isaac Sim's EULA acceptance in the cloud's)."""
    environment = {**common, Env.WORK_DIR: work_dir, **(image_variables or {})}
    if Env.RENDER_BACKEND in JOBS[job].variables:
        environment[Env.RENDER_BACKEND] = render_backend
    return environment


def job_command(job: str) -> list[str]:
    """The job's command (the ``isaac_jobs.cloud`` mode). Progress stays on: off a terminal the jobs turn bars
    into a log line every few seconds (sim2cloud/job_log.py), which is what CloudWatch should show."""
    return [JOBS[job].mode]


# --------------------------------------------------------------------------------------
# EventBridge rules: pattern and target
# --------------------------------------------------------------------------------------
QUIET_PERIOD_QUEUE: Final = "quiet_period_queue"
"""Target: the SQS queue whose delivery delay is the quiet period; it feeds the render launcher."""
FAILURE_TOPIC: Final = "failure_topic"
"""Target: the SNS topic people subscribe to for failures."""


@dataclass(frozen=True)
class RuleInputs:
    """What the patterns are built from: the data bucket and the render job queue's ARN."""

    data_bucket: str
    job_queue_arn: str


@dataclass(frozen=True)
class RuleWiring:
    name: str
    """The rule's construct id in its stack (and the local router's rule name)."""
    pattern: Callable[[RuleInputs], dict[str, Any]]
    target: str
    """A function of FUNCTIONS, QUIET_PERIOD_QUEUE or FAILURE_TOPIC."""


RULES: Final[tuple[RuleWiring, ...]] = (
    RuleWiring("MeshCreated", lambda i: contract.mesh_created_pattern(i.data_bucket), QUIET_PERIOD_QUEUE),
    RuleWiring("BatchConfigCreated", lambda i: contract.batch_config_created_pattern(i.data_bucket), RENDER_LAUNCHER),
    RuleWiring(
        "DatasetManifestCreated", lambda i: contract.dataset_manifest_created_pattern(i.data_bucket), TRAINING_LAUNCHER
    ),
    RuleWiring("TrainingStateChange", lambda _: contract.training_state_change_pattern(), MODEL_GATE),
    RuleWiring("RenderJobFailed", lambda i: contract.batch_job_failed_pattern(i.job_queue_arn), FAILURE_TOPIC),
)
"""Every EventBridge rule of the pipeline: mesh drops wait out the quiet period in SQS, the batch config file
reaches the render launcher at once, a dataset manifest starts training, a training job's end reaches the
gate, and a failed render job reaches people."""


def rule(name: str) -> RuleWiring:
    for wired in RULES:
        if wired.name == name:
            return wired
    raise KeyError(f"no rule {name!r} in sim2cloud/wiring.py (rules: {', '.join(r.name for r in RULES)})")
