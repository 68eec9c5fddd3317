"""``sim2cloud demo``: the whole flow of ARCHITECTURE section 1 on one machine, with no AWS account.

Real parts only: a moto server on 127.0.0.1 is AWS (real HTTP, real boto3 calls, in this process and in
every job process through ``AWS_ENDPOINT_URL``); the three Lambda handlers are imported from the bundles
CDK deploys (``sim2cloud/lambda_bundle.py``) and invoked with events of the real shapes, routed by
the contract's EventBridge patterns; the Batch and SageMaker jobs they submit are read back from moto and
run by :mod:`sim2cloud.local.executor` with their real entrypoints.

Local substitutions, each deliberate:

* the render job definition sets ``SIM2CLOUD_RENDER_BACKEND=gl`` (moderngl on EGL) where the cloud's sets
  ``isaac`` (Isaac Sim needs an RTX GPU); same scene spec, seeds and dataset layout;
* the quiet-period queue has no delivery delay and the launcher's ``SIM2CLOUD_QUIET_PERIOD_SECONDS`` is 0
  (the queue delay must equal it). The demo always uploads ``batch.yaml``, whose direct event submits the
  batch; the queued mesh events are then delivered as SQS records and find the run already submitted;
* the model gate's approval mode is ``auto`` with the dev environment's quality gate (mAP50 0.5);
* no endpoint stack: the approved (or pending) package's artifact is served by ``sim2cloud serve``, the
  YOLO image's serving entrypoint, on a loopback port.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from sim2cloud import contract, wiring
from sim2cloud.contract import Env
from sim2cloud.local import events, executor
from sim2cloud.s3_transfer import etag, iter_objects, split_s3_uri

REGION: Final = "us-east-1"
LOCAL_ENVIRONMENT: Final = "local"
"""``SIM2CLOUD_ENVIRONMENT`` of every local function and job."""
LOCAL_BUCKET: Final = "sim2cloud-local-data"
"""The data bucket (the CDK stacks name it per environment and account)."""
LOCAL_QUEUE: Final = "sim2cloud-local-render"
RENDER_DEFINITION: Final = "sim2cloud-local-render-shard"
FINALIZE_DEFINITION: Final = "sim2cloud-local-render-finalize"
MODEL_PACKAGE_GROUP: Final = "sim2cloud-local-models"
FAILURE_TOPIC: Final = "sim2cloud-local-failures"
LOCAL_TRAINING_IMAGE: Final = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sim2cloud-local-yolo:demo"
"""Recorded in the training request and the model package; locally the image is this checkout."""
LOCAL_TRAINING_INSTANCE: Final = "ml.c6i.xlarge"
LOCAL_QUALITY_GATE: Final = wiring.QUALITY_GATES[wiring.LOCAL_GATE_OF]
"""The model gate's threshold and approval mode (the dev environment's)."""

DEMO_IMGSZ: Final = 128
"""The demo trains and renders at this size: rendered at the training size, nothing is resized, and on 2 CPU
cores a 128 px image trains about 4x faster than a 256 px one (the sample objects fill 15-30% of a frame)."""
DEMO_FRAMES: Final = 1600
"""Frames of the demo's batch (90/10 train/val, DEMO_RENDER): rendering 128 px frames costs about 1 s per 250."""
DEMO_RENDER: Final[Mapping[str, Any]] = {
    "width": DEMO_IMGSZ,
    "height": DEMO_IMGSZ,
    "val_fraction": 0.1,
    "object_size": [0.25, 0.4],
    "defocus_px": [0.15, 0.4],
    "motion_blur_px": [0.5, 1.2],
}
"""The demo's batch.yaml ``render:`` section: a 10% val split (validating every epoch costs CPU time); objects a
little larger than the default so they keep enough pixels at 128 px; blur radii a fifth of the defaults, which
are in pixels of a 640 px frame (at 128 px the default motion blur would smear a small object across its own
width)."""
DEMO_TRAINING: Final[Mapping[str, Any]] = {
    "imgsz": DEMO_IMGSZ,
    "epochs": 16,
    "batch": 16,
    "nbs": 16,
    "warmup_epochs": 1,
    "close_mosaic": 13,
}
"""The demo's batch.yaml ``training:`` section, a schedule fitted to a few minutes on 2 CPU cores: an optimizer
step every batch (nominal batch = batch, where the cloud default accumulates to 64), one warm-up epoch and
mosaic in the first 3 epochs only (at 128 px a mosaic shrinks the objects to a few pixels). It travels like any
user's: shard markers -> manifest -> the launcher's request. The environments' defaults
(``contract.DEFAULT_TRAINING_HYPERPARAMETERS``) are what a batch without it gets."""

FUNCTIONS: Final = tuple(wiring.FUNCTIONS)
REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DUMMY_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "sim2cloud-local",
    "AWS_SECRET_ACCESS_KEY": "sim2cloud-local",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
_CLEARED_AWS_VARIABLES: Final = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE")
_BUNDLE_MODULE_ROOTS: Final = ("handler", "shared", "sim2cloud", "yaml", *(f"{name}_logic" for name in FUNCTIONS))


class DemoFailed(RuntimeError):
    """A stage failed; ``stage`` names it and the message says why."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"stage '{stage}' failed: {reason}")
        self.stage = stage
        self.reason = reason


@dataclass(frozen=True)
class DemoSettings:
    meshes: Path
    out: Path
    batch_name: str = "demo"
    frames: int = DEMO_FRAMES
    frames_per_shard: int = DEMO_FRAMES // 2
    render_overrides: Mapping[str, Any] = field(default_factory=lambda: dict(DEMO_RENDER))
    """Scene-spec overrides written into batch.yaml's ``render:`` (e.g. ``{"width": 128}``)."""
    training: Mapping[str, Any] = field(default_factory=lambda: dict(DEMO_TRAINING))
    """Hyperparameters written into batch.yaml's ``training:``: the only way the demo sets training (they reach
    the launcher's request, which the local executor runs as it is)."""
    aws_endpoint: str | None = None
    """A fresh moto server to use (and leave running, to inspect afterwards); None starts one for the run."""


@dataclass
class DemoResult:
    """Everything the summary prints (paths under ``--out``, ids in moto)."""

    bucket: str = LOCAL_BUCKET
    run: str = ""
    render_job_ids: list[str] = field(default_factory=list)
    render_launcher_actions: list[str] = field(default_factory=list)
    training_job: str = ""
    dataset_dir: Path | None = None
    preview: Path | None = None
    model_dir: Path | None = None
    model_archive: Path | None = None
    training_curves: Path | None = None
    evaluation_json: Path | None = None
    detections_picture: Path | None = None
    model_package_arn: str = ""
    approval_status: str = ""
    approval_reason: str = ""
    evaluation: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    job_seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds of each job run here: the Batch job definitions' names and ``training``."""
    gate_record: dict[str, Any] = field(default_factory=dict)
    """The model gate's runs/<run>/metrics/<job>.json, plus the package ARN and approval status."""
    cost: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in vars(self).items()}


# --------------------------------------------------------------------------------------
# Stages and output
# --------------------------------------------------------------------------------------
class Stages:
    """One clear line per stage with its time; failures become DemoFailed naming the stage."""

    def __init__(self, total: int, timings: dict[str, float]) -> None:
        self.total = total
        self.count = 0
        self.timings = timings

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.count += 1
        print(f"[{self.count}/{self.total}] {name} ...", flush=True)
        started = time.perf_counter()
        try:
            yield
        except DemoFailed:
            raise
        except Exception as error:
            raise DemoFailed(name, f"{type(error).__name__}: {error}") from error
        elapsed = time.perf_counter() - started
        self.timings[name] = round(elapsed, 2)
        print(f"[{self.count}/{self.total}] {name}: done in {elapsed:.1f} s", flush=True)


def _say(text: str) -> None:
    print(f"    {text}", flush=True)


# --------------------------------------------------------------------------------------
# AWS on this machine
# --------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a server this process starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str], remove: tuple[str, ...] = ()) -> Iterator[None]:
    """Set ``values`` (and drop ``remove``) in os.environ for the block, then restore exactly."""
    saved = {name: os.environ.get(name) for name in (*values, *remove)}
    for name in remove:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def configure_moto(endpoint: str) -> None:
    """moto runs Batch jobs in Docker unless told otherwise; POST /moto-api/config (moto's documented runtime
    configuration endpoint) selects its Docker-free Batch, which records jobs without running them."""
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"--aws-endpoint {endpoint!r} is not an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above: the moto server's URL)
        f"{endpoint.rstrip('/')}/moto-api/config",
        data=json.dumps({"batch": {"use_docker": False}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (scheme checked above)
        response.read()


@contextlib.contextmanager
def moto_server(existing: str | None = None) -> Iterator[str]:
    """boto3 of this process pointed at a moto server with dummy credentials for the block: ``existing`` (a
    fresh moto server someone else started, left running) or one started here on a free loopback port and
    stopped on exit, also on errors."""
    from moto.server import ThreadedMotoServer

    # One access-log line per request would bury the demo's own lines (every shard file is a request).
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = None
    if existing is None:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        server.start()
    try:
        if server is not None:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
        else:
            endpoint = str(existing).rstrip("/")
        configure_moto(endpoint)
        with patched_environ({"AWS_ENDPOINT_URL": endpoint, **DUMMY_CREDENTIALS}, _CLEARED_AWS_VARIABLES):
            yield endpoint
    finally:
        if server is not None:
            server.stop()


@dataclass(frozen=True)
class LocalResources:
    """What the CDK stacks declare, created in moto (names and ARNs as moto returns them)."""

    bucket: str
    account: str
    job_queue_arn: str
    render_definition_arn: str
    finalize_definition_arn: str
    model_package_group: str
    failure_topic_arn: str
    training_role_arn: str
    kms_key_arn: str
    quiet_queue_arn: str


def local_job_definitions(work_dir: Path) -> dict[str, dict[str, Any]]:
    """The render stack's job definitions (sim2cloud/wiring.py) as Batch container properties: the GL backend
    instead of Isaac Sim, a local work dir instead of the instance store."""
    common = wiring.common_environment(LOCAL_BUCKET, LOCAL_ENVIRONMENT)
    definitions = {}
    for name, job in ((RENDER_DEFINITION, wiring.RENDER_JOB), (FINALIZE_DEFINITION, wiring.FINALIZE_JOB)):
        env = wiring.job_environment(job, common, str(work_dir), render_backend="gl")
        definitions[name] = {
            "image": "sim2cloud-local-render:demo",
            "vcpus": 2,
            "memory": 4096,
            "command": wiring.job_command(job),
            "environment": [{"name": k, "value": v} for k, v in env.items()],
        }
    return definitions


def create_resources(work_dir: Path) -> LocalResources:
    import boto3

    account = boto3.client("sts").get_caller_identity()["Account"]
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=LOCAL_BUCKET)
    kms_key_arn = boto3.client("kms").create_key(Description="sim2cloud local data key")["KeyMetadata"]["Arn"]
    iam = boto3.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    service_role = iam.create_role(RoleName="sim2cloud-local-batch", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    training_role = iam.create_role(RoleName="sim2cloud-local-training", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    batch = boto3.client("batch")
    environment = batch.create_compute_environment(
        computeEnvironmentName="sim2cloud-local-gpu", type="UNMANAGED", state="ENABLED", serviceRole=service_role
    )
    queue = batch.create_job_queue(
        jobQueueName=LOCAL_QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}],
    )
    definitions = {
        name: batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties=properties)[
            "jobDefinitionArn"
        ]
        for name, properties in local_job_definitions(work_dir).items()
    }
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(
        ModelPackageGroupName=MODEL_PACKAGE_GROUP,
        ModelPackageGroupDescription="Sim2Cloud local: YOLO detectors trained on synthetic data",
    )
    topic = boto3.client("sns").create_topic(Name=FAILURE_TOPIC)["TopicArn"]
    quiet_queue = boto3.client("sqs").create_queue(QueueName="sim2cloud-local-quiet-period")["QueueUrl"]
    quiet_arn = boto3.client("sqs").get_queue_attributes(QueueUrl=quiet_queue, AttributeNames=["QueueArn"])
    return LocalResources(
        bucket=LOCAL_BUCKET,
        account=account,
        job_queue_arn=queue["jobQueueArn"],
        render_definition_arn=definitions[RENDER_DEFINITION],
        finalize_definition_arn=definitions[FINALIZE_DEFINITION],
        model_package_group=MODEL_PACKAGE_GROUP,
        failure_topic_arn=topic,
        training_role_arn=training_role,
        kms_key_arn=kms_key_arn,
        quiet_queue_arn=quiet_arn["Attributes"]["QueueArn"],
    )


def function_environments(resources: LocalResources, frames_per_shard: int) -> dict[str, dict[str, str]]:
    """The environment the stacks give each function (sim2cloud/wiring.py), with local values; plus
    ``SIM2CLOUD_FRAMES_PER_SHARD`` (the stacks leave the launcher's default, 50), so a small demo still renders
    an array job of a few children instead of one process per 50 frames on two cores."""
    common = wiring.common_environment(resources.bucket, LOCAL_ENVIRONMENT)
    values = {
        wiring.RENDER_LAUNCHER: {
            Env.JOB_QUEUE: resources.job_queue_arn,
            Env.RENDER_JOB_DEFINITION: resources.render_definition_arn,
            Env.FINALIZE_JOB_DEFINITION: resources.finalize_definition_arn,
            Env.QUIET_PERIOD_SECONDS: "0",
            Env.FRAMES_PER_SHARD: str(frames_per_shard),
        },
        wiring.TRAINING_LAUNCHER: {
            Env.TRAINING_IMAGE_URI: LOCAL_TRAINING_IMAGE,
            Env.TRAINING_ROLE_ARN: resources.training_role_arn,
            Env.TRAINING_INSTANCE_TYPE: LOCAL_TRAINING_INSTANCE,
            Env.TRAINING_USE_SPOT: "true",
            Env.TRAINING_MAX_RUNTIME_SECONDS: str(6 * 3600),
            Env.TRAINING_HYPERPARAMETERS: wiring.training_hyperparameters_variable(),
            Env.KMS_KEY_ARN: resources.kms_key_arn,
        },
        wiring.MODEL_GATE: {
            Env.MODEL_PACKAGE_GROUP: resources.model_package_group,
            Env.QUALITY_GATE_MAP50: str(LOCAL_QUALITY_GATE.map50),
            Env.MODEL_APPROVAL_MODE: LOCAL_QUALITY_GATE.approval_mode,
            Env.FAILURE_TOPIC_ARN: resources.failure_topic_arn,
        },
    }
    return {name: wiring.function_environment(name, {**common, **values[name]}) for name in wiring.FUNCTIONS}


def local_rules(
    resources: LocalResources, deliver: Callable[[str], Callable[[dict[str, Any]], Any]]
) -> list[events.Rule]:
    """Every rule of sim2cloud/wiring.py with its pattern, its target delivered by ``deliver(target)``."""
    inputs = wiring.RuleInputs(data_bucket=resources.bucket, job_queue_arn=resources.job_queue_arn)
    return [events.Rule(rule.name, rule.pattern(inputs), deliver(rule.target)) for rule in wiring.RULES]


# --------------------------------------------------------------------------------------
# Lambdas from their bundles
# --------------------------------------------------------------------------------------
def _is_bundle_module(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in _BUNDLE_MODULE_ROOTS)


def build_bundle(function: str, out_root: Path) -> Path:
    """The function's bundle, staged as the stacks stage it (:func:`sim2cloud.lambda_bundle.build_lambda_bundle`)."""
    from sim2cloud.lambda_bundle import build_lambda_bundle

    return build_lambda_bundle(function, out_root)


def import_from_bundle(bundle: Path, *names: str) -> list[ModuleType]:
    """Modules from a Lambda bundle, imported as Lambda would (bundle root first on sys.path, the bundle's
    contract-only ``sim2cloud``), fresh on every call. This process's own modules of those names (and any
    earlier bundle's) are hidden meanwhile and restored after; the returned modules keep what they imported."""
    saved = {name: module for name, module in sys.modules.items() if _is_bundle_module(name)}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(bundle))
    try:
        modules = [importlib.import_module(name) for name in names]
        contract_module = sys.modules.get("sim2cloud")
        if contract_module is not None and not Path(contract_module.__file__ or "").is_relative_to(bundle):
            raise ImportError(f"sim2cloud came from {contract_module.__file__}, not the bundle {bundle}")
        for module in modules:
            if not Path(module.__file__ or "").is_relative_to(bundle):
                raise ImportError(f"{module.__name__} came from {module.__file__}, not the bundle {bundle}")
        return modules
    finally:
        sys.path.remove(str(bundle))
        for name in [name for name in sys.modules if _is_bundle_module(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


def import_handler(bundle: Path) -> ModuleType:
    """The bundle's ``handler`` module, its logic module reachable as ``handler.logic``."""
    handler, logic = import_from_bundle(bundle, "handler", f"{bundle.name}_logic")
    handler.logic = logic  # type: ignore[attr-defined]
    return handler


class LambdaContext:
    """The attributes of the Lambda context object the handlers read."""

    def __init__(self, function_name: str) -> None:
        import uuid

        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:000000000000:function:{function_name}"
        self.memory_limit_in_mb = 256

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


@dataclass
class LocalFunction:
    """One Lambda: its handler module, its environment, and where its log lines (stdout) go."""

    name: str
    handler: ModuleType
    environment: dict[str, str]
    log_path: Path

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with (
            patched_environ(self.environment),
            self.log_path.open("a", encoding="utf-8") as log,
            contextlib.redirect_stdout(log),
        ):
            result: dict[str, Any] = self.handler.handler(event, LambdaContext(f"sim2cloud-local-{self.name}"))
        return result


# --------------------------------------------------------------------------------------
# Events for objects
# --------------------------------------------------------------------------------------
def bucket_snapshot(s3: Any, bucket: str) -> dict[str, tuple[str, int]]:
    return {item["Key"]: (etag(item), int(item["Size"])) for item in iter_objects(s3, bucket)}


def created_events(
    before: Mapping[str, tuple[str, int]], after: Mapping[str, tuple[str, int]], bucket: str, account: str
) -> list[dict[str, Any]]:
    """``Object Created`` for every object new or rewritten between two snapshots, in key order."""
    return [
        events.object_created_event(bucket, key, size=size, etag=etag, region=REGION, account=account)
        for key, (etag, size) in sorted(after.items())
        if before.get(key) != (etag, size)
    ]


# --------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------
def _mesh_files(meshes: Path) -> list[tuple[str, str, Path]]:
    """``(class, file name, path)`` for every file of ``meshes/<class>/<file>``."""
    if not meshes.is_dir():
        raise FileNotFoundError(f"--meshes {meshes}: not a folder")
    found = [
        (path.parent.name, path.name, path)
        for path in sorted(meshes.glob("*/*"))
        if path.is_file() and not path.name.startswith(".")
    ]
    if not found:
        raise FileNotFoundError(f"--meshes {meshes}: no files in <class>/<file> layout")
    return found


def batch_yaml(settings: DemoSettings) -> str:
    import yaml

    config: dict[str, Any] = {"frames": settings.frames}
    if settings.render_overrides:
        config["render"] = dict(settings.render_overrides)
    if settings.training:
        config[contract.MANIFEST_TRAINING_FIELD] = dict(settings.training)
    return yaml.safe_dump(config, sort_keys=False)


def _prepare_out(settings: DemoSettings, subdirs: tuple[str, ...]) -> None:
    out = settings.out.resolve()
    meshes = settings.meshes.resolve()
    if meshes == out or meshes.is_relative_to(out):
        raise ValueError(f"--out {settings.out} contains --meshes {settings.meshes}; pick another --out")
    out.mkdir(parents=True, exist_ok=True)
    for name in subdirs:  # only the demo's own outputs of an earlier run
        path = out / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)


def _job_env() -> dict[str, str]:
    """What every job process gets: this environment (moto endpoint, dummy credentials) without the job
    variables a shell might carry, plus OpenBLAS on one thread (its threads fight llvmpipe's)."""
    stale = tuple(v for k, v in vars(Env).items() if k.isupper() and isinstance(v, str))
    env = executor.environment_without(stale)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["YOLO_OFFLINE"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _outcomes(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(result.get("outcomes") or [])


class LocalPipeline:
    """The deployed pipeline's pieces on this machine once the stage "local AWS" has started them: moto's
    resources, the three functions from their bundles, and the routing of sim2cloud/wiring.py's rules."""

    def __init__(self, resources: LocalResources, functions: Mapping[str, LocalFunction]) -> None:
        import boto3

        self.resources = resources
        self.functions = functions
        self.s3 = boto3.client("s3")
        self.sns = boto3.client("sns")
        self.delivered: dict[str, list[dict[str, Any]]] = {name: [] for name in functions}
        """Each function's responses, in the order it was invoked."""
        self.quiet_queue: list[dict[str, Any]] = []
        """Mesh events waiting out the quiet period (delivered after the uploads, delay 0 locally)."""
        self.rules = local_rules(resources, self.deliver)

    def deliver(self, target: str) -> Callable[[dict[str, Any]], Any]:
        """The local delivery of a rule target of sim2cloud/wiring.py."""
        if target == wiring.QUIET_PERIOD_QUEUE:
            return self.quiet_queue.append
        if target == wiring.FAILURE_TOPIC:
            return lambda event: self.sns.publish(TopicArn=self.resources.failure_topic_arn, Message=json.dumps(event))
        if target not in self.functions:
            raise ValueError(f"rule target {target!r} has no local delivery")

        def invoke(event: dict[str, Any]) -> Any:
            response = self.functions[target].invoke(event)
            self.delivered[target].append(response)
            return response

        return invoke

    def route(self, batch_of_events: list[dict[str, Any]]) -> dict[str, int]:
        """Every event to the targets of the rules it matches; how many events each rule matched."""
        counts: dict[str, int] = {}
        for event in batch_of_events:
            for rule in events.matching_rules(self.rules, event):
                counts[rule.name] = counts.get(rule.name, 0) + 1
                rule.target(event)
        return counts

    def deliver_quiet_queue(self) -> None:
        """The quiet-period queue's messages to the render launcher, in SQS batches of the wired size."""
        size = wiring.QUIET_PERIOD_BATCH_SIZE
        for start in range(0, len(self.quiet_queue), size):
            invocation = events.sqs_invocation(
                self.quiet_queue[start : start + size], queue_arn=self.resources.quiet_queue_arn, region=REGION
            )
            response = self.deliver(wiring.RENDER_LAUNCHER)(invocation)
            if response.get("batchItemFailures"):
                raise RuntimeError(f"render launcher failed SQS records: {response['batchItemFailures']}")
        self.quiet_queue.clear()

    def outcomes(self, function: str) -> list[dict[str, Any]]:
        return [outcome for response in self.delivered[function] for outcome in _outcomes(response)]

    def snapshot(self) -> dict[str, tuple[str, int]]:
        return bucket_snapshot(self.s3, self.resources.bucket)

    def created_since(self, before: Mapping[str, tuple[str, int]]) -> list[dict[str, Any]]:
        return created_events(before, self.snapshot(), self.resources.bucket, self.resources.account)


class Demo:
    """``sim2cloud demo``, one method per stage (:func:`run_demo` runs them in order)."""

    STAGES: Final = 9

    def __init__(self, settings: DemoSettings) -> None:
        self.settings = settings
        self.result = DemoResult()
        self.stages = Stages(total=self.STAGES, timings=self.result.timings)
        self.out = settings.out.resolve()
        self.logs = self.out / "logs"
        self.preview_name: str | None = None
        """The preview's name inside the dataset, from its manifest."""

    def prepare(self) -> list[tuple[str, str, Path]]:
        settings = self.settings
        contract.check_name(settings.batch_name, "batch name")
        files = _mesh_files(settings.meshes)
        _prepare_out(settings, ("work", "logs", "dataset", "training", "model", "evaluation", "summary.json"))
        _say(f"{len(files)} files of {len({c for c, _, _ in files})} classes in {settings.meshes}")
        return files

    def start_aws(self, cleanup: contextlib.ExitStack) -> LocalPipeline:
        """A moto server (stopped by ``cleanup``), the stacks' resources in it and the functions' bundles."""
        endpoint = cleanup.enter_context(moto_server(self.settings.aws_endpoint))
        bundle_root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="sim2cloud-bundles-")))
        resources = create_resources(self.out / "work")
        env_by_function = function_environments(resources, self.settings.frames_per_shard)
        functions = {
            name: LocalFunction(
                name,
                import_handler(build_bundle(name, bundle_root)),
                env_by_function[name],
                self.logs / f"lambda-{name}.log",
            )
            for name in FUNCTIONS
        }
        _say(f"moto at {endpoint}; bucket s3://{resources.bucket}; queue {resources.job_queue_arn}")
        _say(f"Lambda bundles from sim2cloud/lambda_bundle.py; their logs in {self.logs}")
        return LocalPipeline(resources, functions)

    def upload_meshes(self, pipeline: LocalPipeline, files: list[tuple[str, str, Path]]) -> dict[str, Any]:
        """Upload the meshes and batch.yaml; route their events; return the render launcher's submission."""
        settings, result, s3, bucket = self.settings, self.result, pipeline.s3, pipeline.resources.bucket
        before = pipeline.snapshot()
        for class_name, filename, path in files:
            s3.upload_file(str(path), bucket, contract.mesh_key(settings.batch_name, class_name, filename))
        s3.put_object(
            Bucket=bucket, Key=contract.batch_config_key(settings.batch_name), Body=batch_yaml(settings).encode()
        )
        uploaded = pipeline.created_since(before)
        counts = pipeline.route(uploaded)
        _say(f"{len(uploaded)} Object Created events; rules matched: {counts}")
        pipeline.deliver_quiet_queue()
        launcher_outcomes = pipeline.outcomes(wiring.RENDER_LAUNCHER)
        actions = [o.get("action") for o in launcher_outcomes]
        submitted = [o for o in launcher_outcomes if o.get("action") == "submitted"]
        result.render_launcher_actions = [str(a) for a in actions]
        _say(f"render launcher outcomes: {', '.join(result.render_launcher_actions)}")
        for key in sorted(pipeline.snapshot()):
            if key.startswith(contract.QUARANTINE_PREFIX):
                reason = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                _say(f"rejected {reason.get('key')}: {reason.get('reason')} (s3://{bucket}/{key})")
        if not submitted and "rejected" in actions:
            raise RuntimeError("the render launcher rejected the batch (its reasons above); nothing was submitted")
        if len(submitted) != 1:
            raise RuntimeError(f"expected one submission, got {len(submitted)} (outcomes {actions})")
        (submission,) = submitted
        result.run = str(submission["run"])
        _say(
            f"run {result.run}: render job {submission['render_job_id']}, finalize job {submission['finalize_job_id']}"
        )
        return submission

    def render(self, pipeline: LocalPipeline, submitted: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run the Batch jobs the launcher submitted; return the Object Created events of what they wrote."""
        import boto3

        before = pipeline.snapshot()
        launched_ids = {str(submitted["render_job_id"]), str(submitted["finalize_job_id"])}
        queued = executor.submitted_batch_jobs(boto3.client("batch"), pipeline.resources.job_queue_arn)
        jobs = executor.dependency_order([job for job in queued if job.job_id in launched_ids])
        self.result.render_job_ids = [job.job_id for job in jobs]
        for job in jobs:
            shards = f"array of {job.array_size}" if job.array_size else "single job"
            _say(f"{job.name} ({job.definition}, {shards}, dependsOn {list(job.depends_on) or 'nothing'})")
            done = executor.run_batch_job(job, _job_env(), self.logs)
            self.result.job_seconds[job.definition] = self.result.job_seconds.get(job.definition, 0.0) + done.seconds
            _say(f"{job.name}: {len(done.statuses)} process(es) exited 0 in {done.seconds:.1f} s")
        return pipeline.created_since(before)

    def launch_training(self, pipeline: LocalPipeline, written: list[dict[str, Any]]) -> None:
        """Route the jobs' events (the manifest reaches the training launcher); download the dataset."""
        result = self.result
        counts = pipeline.route(written)
        _say(f"{len(written)} Object Created events from the jobs; rules matched: {counts}")
        launched = pipeline.outcomes(wiring.TRAINING_LAUNCHER)
        created = [o for o in launched if o.get("training_job_name")]
        if not created:
            raise RuntimeError(f"the training launcher created no job (outcomes {launched})")
        result.training_job = str(created[0]["training_job_name"])
        _say(f"training job {result.training_job}: outcome {created[0].get('action')}")
        # Only the manifest here: the training job downloads the whole dataset as its channel, and `dataset` then
        # links to that copy (a demo dataset is ~3,200 objects, each one a request to the moto server).
        bucket = pipeline.resources.bucket
        manifest_object = pipeline.s3.get_object(Bucket=bucket, Key=contract.dataset_manifest_key(result.run))
        manifest = json.loads(manifest_object["Body"].read())
        self.preview_name = manifest.get("preview")
        _say(f"dataset s3://{bucket}/{contract.dataset_prefix(result.run)}: {manifest.get('counts', {})}")

    def train(self, pipeline: LocalPipeline) -> executor.TrainingOutcome:
        """Run the training job the launcher created, exactly as requested."""
        import boto3

        result = self.result
        sagemaker = boto3.client("sagemaker")
        request_hp = sagemaker.describe_training_job(TrainingJobName=result.training_job)["HyperParameters"]
        _say("hyperparameters of the launcher's request: " + ", ".join(f"{k}={v}" for k, v in request_hp.items()))
        outcome = executor.run_training_job(
            sagemaker, pipeline.s3, result.training_job, self.out / "training" / "opt-ml", _job_env(), self.logs
        )
        result.model_dir = Path(outcome.paths.model_dir)
        result.dataset_dir = self.out / "dataset"
        channel = Path(outcome.paths.channel(contract.DATASET_CHANNEL))
        result.dataset_dir.symlink_to(os.path.relpath(channel, result.dataset_dir.parent), target_is_directory=True)
        result.preview = result.dataset_dir / self.preview_name if self.preview_name else None
        result.job_seconds["training"] = outcome.seconds
        curves = Path(outcome.paths.output_dir) / "data" / "training_curves.png"
        result.training_curves = curves if curves.is_file() else None
        _say(
            f"training job {outcome.status} in {outcome.seconds:.1f} s"
            + (f": {outcome.failure_reason}" if outcome.failure_reason else f"; artifact {outcome.model_artifact}")
        )
        return outcome

    def gate(self, pipeline: LocalPipeline, outcome: executor.TrainingOutcome) -> None:
        """The job's state-change event to the model gate; download the registered package's artifact."""
        import boto3

        result = self.result
        sagemaker = boto3.client("sagemaker")
        description = sagemaker.describe_training_job(TrainingJobName=result.training_job)
        state_event = events.training_state_change_event(
            description,
            status=outcome.status,
            region=REGION,
            account=pipeline.resources.account,
            model_artifact=outcome.model_artifact,
            failure_reason=outcome.failure_reason,
        )
        counts = pipeline.route([state_event])
        gate = pipeline.delivered[wiring.MODEL_GATE]
        _say(f"rules matched: {counts}; gate outcome: {gate[-1] if gate else None}")
        if outcome.status != "Completed":
            raise RuntimeError(
                f"training job {result.training_job} failed (the gate sent it to the failure topic): "
                f"{outcome.failure_reason}"
            )
        if not gate or not gate[-1].get("model_package_arn"):
            raise RuntimeError(f"the model gate registered no package (outcome {gate[-1] if gate else None})")
        result.model_package_arn = str(gate[-1]["model_package_arn"])
        package = sagemaker.describe_model_package(ModelPackageName=result.model_package_arn)
        result.approval_status = str(package.get("ModelApprovalStatus", ""))
        result.approval_reason = str(package.get("ApprovalDescription", ""))
        _say(f"model package {result.model_package_arn}")
        record = pipeline.s3.get_object(
            Bucket=pipeline.resources.bucket, Key=contract.run_model_metrics_key(result.run, result.training_job)
        )
        result.gate_record = {
            **json.loads(record["Body"].read()),
            "model_package_arn": result.model_package_arn,
            "approval_status": result.approval_status,
        }
        _say(f"approval: {result.approval_status} ({result.approval_reason})")
        artifact = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        result.model_archive = self.out / "model" / contract.MODEL_ARCHIVE_NAME
        result.model_archive.parent.mkdir(parents=True, exist_ok=True)
        bucket_name, key = split_s3_uri(artifact)
        pipeline.s3.download_file(bucket_name, key, str(result.model_archive))

    def summary(self) -> Path:
        """summary.json and report.html (the summary itself is printed after the last stage, the report last)."""
        result = self.result
        result.cost = demo_cost(result.job_seconds)
        result.report = self.out / contract.REPORT_NAME
        summary = self.out / "summary.json"
        summary.write_text(json.dumps(result.as_dict(), indent=2, default=str))
        write_demo_report(result, self.out)
        return summary


def run_demo(settings: DemoSettings) -> DemoResult:
    """Run the whole flow; raises DemoFailed naming the stage that failed."""
    demo = Demo(settings)
    stage = demo.stages.stage
    with stage("prepare"):
        files = demo.prepare()
    with contextlib.ExitStack() as cleanup:
        # Entered inside the stage, so a server that cannot start fails as that stage; stopped on any exit.
        with stage("local AWS (moto server) + the stacks' resources"):
            pipeline = demo.start_aws(cleanup)
        with stage("upload meshes -> render launcher"):
            submitted = demo.upload_meshes(pipeline, files)
        with stage("render (Batch array job + finalize, GL backend)"):
            written = demo.render(pipeline, submitted)
        with stage("dataset manifest -> training launcher"):
            demo.launch_training(pipeline, written)
        with stage("training (SageMaker job as a local process)"):
            outcome = demo.train(pipeline)
        with stage("state-change event -> model gate"):
            demo.gate(pipeline, outcome)
        with stage("serve the registered model + evaluate through the endpoint"):
            _serve_and_evaluate(demo.result, demo.out / "evaluation", demo.logs)
    with stage("summary + run report"):
        summary = demo.summary()
    print_summary(demo.result, summary)
    return demo.result


def demo_cost(job_seconds: Mapping[str, float]) -> dict[str, Any]:
    """What the jobs run here would cost in the cloud: each job's duration priced on the dev environment's
    instances (stacks/config.py). Here they ran on a CPU, so on the GPU instances they would take far less:
    an upper bound."""
    from sim2cloud import pricing

    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))  # stacks/ is not installed; its config is read from the checkout
    from stacks.config import load_settings

    dev = load_settings("dev")
    render_type = dev.render.instance_types[0]
    lines = [
        pricing.batch_job_cost(
            "render (Batch array job)", render_type, job_seconds.get(RENDER_DEFINITION, 0.0), dev.render.use_spot
        ),
        pricing.batch_job_cost(
            "finalize (Batch job)", render_type, job_seconds.get(FINALIZE_DEFINITION, 0.0), dev.render.use_spot
        ),
        pricing.training_job_cost(dev.training.instance_type, job_seconds.get("training", 0.0), spot=False),
    ]
    return {
        **pricing.run_cost(lines),
        "basis": "this machine's job durations priced on the dev environment's instances (on-demand list "
        "prices); on those GPUs the jobs take far less time, so this is an upper bound",
    }


def write_demo_report(result: DemoResult, out: Path) -> Path:
    """report.html from the demo's own artefacts (a few seconds at most: pictures are embedded as they are)."""
    from sim2cloud.report.collect import RunArtefacts, write_report

    assert result.dataset_dir is not None and result.report is not None
    training = result.model_dir.parent if result.model_dir is not None else None
    artefacts = RunArtefacts(
        dataset=result.dataset_dir,
        training=training,
        evaluation=result.evaluation_json.parent if result.evaluation_json is not None else None,
        evaluation_via="the served model.tar.gz (sim2cloud serve, as the SageMaker endpoint)",
        gate=result.gate_record,
        timeline=[{"stage": name, "seconds": seconds} for name, seconds in result.timings.items()],
        cost=result.cost,
        generated_by="sim2cloud demo",
    )
    return write_report(artefacts, result.report)


def _wait_for_ping(url: str, process: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sim2cloud serve exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback server we started)
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")


def _serve_and_evaluate(result: DemoResult, evaluation_dir: Path, logs: Path) -> None:
    import subprocess

    assert result.model_archive is not None and result.dataset_dir is not None
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = _job_env()
    serve_log = logs / "serve.log"
    serve_log.parent.mkdir(parents=True, exist_ok=True)
    with serve_log.open("w", encoding="utf-8") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sim2cloud.cli",
                "serve",
                "--model",
                str(result.model_archive),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_ping(endpoint + contract.PING_PATH, server, timeout=120)
            _say(f"sim2cloud serve answers {endpoint}{contract.PING_PATH} (log {serve_log})")
            status = executor.run_process(
                [
                    sys.executable,
                    "-m",
                    "sim2cloud.cli",
                    "evaluate",
                    "--model",
                    str(result.model_archive),
                    "--data",
                    str(result.dataset_dir),
                    "--endpoint",
                    endpoint,
                    "--out",
                    str(evaluation_dir),
                ],
                env,
                logs / "evaluate.log",
            )
            if status != 0:
                raise RuntimeError(f"sim2cloud evaluate exited with {status} (log {logs / 'evaluate.log'})")
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    result.evaluation_json = evaluation_dir / "evaluation.json"
    result.evaluation = json.loads(result.evaluation_json.read_text())
    picture = result.evaluation.get("picture")
    result.detections_picture = Path(picture) if picture else None
    overall = {k: v for k, v in result.evaluation.items() if k.lower().startswith("map")}
    _say(f"evaluation through the endpoint on the val split: {overall}")


def print_summary(result: DemoResult, summary_path: Path) -> None:
    rows = [
        ("run", result.run),
        ("dataset", result.dataset_dir),
        ("preview", result.preview),
        ("model dir", result.model_dir),
        ("model archive", result.model_archive),
        ("training curves", result.training_curves),
        ("evaluation", result.evaluation_json),
        ("detections", result.detections_picture),
        ("model package", result.model_package_arn),
        ("approval", f"{result.approval_status} ({result.approval_reason})"),
        ("summary", summary_path),
    ]
    mAP = {k: v for k, v in result.evaluation.items() if k.lower().startswith("map")}
    if mAP:
        rows.insert(8, ("mAP (val, endpoint)", ", ".join(f"{k} {float(v):.3f}" for k, v in mAP.items())))
    total = sum(result.timings.values())
    print(f"\nSim-to-Cloud demo finished in {total:.0f} s", flush=True)
    for label, value in rows:
        print(f"  {label + ':':<22}{value}", flush=True)
    print("  timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()), flush=True)
    if result.cost:
        print(f"  cloud cost estimate:  ${result.cost['total_usd']:.2f} ({result.cost['basis']})", flush=True)
    print(f"  report:               {result.report}", flush=True)
