"""The one definition of every fact that crosses a process or machine boundary.

CDK stacks, Lambda handlers, the render job, the training/serving container and the
local runner all import this module, so it imports only the standard library (it is
copied into the Isaac Sim image and the Lambda bundles as a single file).

What lives here:
  * the S3 layout of the data bucket, as key builders and key parsers;
  * environment-variable names that CDK sets and runtimes read;
  * EventBridge event patterns (CDK declares rules with them, the local runner matches with them);
  * the dataset layout and the manifest schema version;
  * the model artifact layout, the SageMaker container paths and the metric line format.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

CONTRACT_VERSION: Final = "1.0"
"""Bumped when any layout below changes incompatibly; recorded in every manifest and model.json."""

# --------------------------------------------------------------------------------------
# S3 layout (one data bucket per environment)
# --------------------------------------------------------------------------------------
MESHES_PREFIX: Final = "meshes/"
"""User drop zone: ``meshes/<batch>/<class>/<file>``. Never modified or deleted by the pipeline."""
ASSETS_PREFIX: Final = "assets/"
"""USD assets converted from meshes: ``assets/<batch>/<class>/<stem>.usd``."""
RENDERS_PREFIX: Final = "renders/"
"""Render shards: ``renders/<run>/shard-<k>/...``; a shard is complete only once its marker exists."""
DATASETS_PREFIX: Final = "datasets/"
"""Merged YOLO datasets: ``datasets/<run>/``; ``manifest.json`` is written last."""
MODELS_PREFIX: Final = "models/"
"""Training output: ``models/<run>/`` (SageMaker writes ``<job>/output/model.tar.gz`` below it)."""
EVAL_PREFIX: Final = "eval/"
"""User-supplied labelled images for evaluation: ``eval/<set>/`` in the YOLO layout."""
QUARANTINE_PREFIX: Final = "quarantine/"
"""Records of rejected inputs: ``quarantine/<original key>.reason.json`` (the input itself stays put)."""
RUNS_PREFIX: Final = "runs/"
"""Per-run status, lineage and reports: ``runs/<run>/...``."""

ALL_PREFIXES: Final = (
    MESHES_PREFIX,
    ASSETS_PREFIX,
    RENDERS_PREFIX,
    DATASETS_PREFIX,
    MODELS_PREFIX,
    EVAL_PREFIX,
    QUARANTINE_PREFIX,
    RUNS_PREFIX,
)

USD_MESH_EXTENSIONS: Final = (".usd", ".usda", ".usdc", ".usdz")
"""USD input files (up axis, metersPerUnit and, when batch.yaml says so, semantic labels respected)."""
SUPPORTED_MESH_EXTENSIONS: Final = (".glb", ".gltf", ".obj", ".ply", ".stl", *USD_MESH_EXTENSIONS)
"""Files that become one USD asset (and one object class member) each."""
MESH_COMPANION_EXTENSIONS: Final = (".mtl", ".bin", ".png", ".jpg", ".jpeg")
"""Files that may sit beside meshes (materials, glTF buffers, textures); never rendered alone."""
BATCH_CONFIG_NAME: Final = "batch.yaml"
"""Optional ``meshes/<batch>/batch.yaml``: overrides classes and render settings, and marks the
batch as complete (the render launcher submits at once instead of waiting for the quiet period)."""
SHARD_COMPLETE_MARKER: Final = "_COMPLETE.json"
"""Written last into a shard; a shard without it is treated as absent."""
DATASET_MANIFEST_NAME: Final = "manifest.json"
DATA_YAML_NAME: Final = "data.yaml"
RUN_STATUS_NAME: Final = "status.json"

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a restricted identifier (run ids, --env), else raise ValueError.

    User-given batch and class names follow :func:`check_name` instead; :func:`id_from_name` derives an id."""
    if not _SAFE_ID.match(value) or value in {".", ".."}:
        raise ValueError(
            f"invalid {what} {value!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


MAX_NAME_CHARS: Final = 128
"""Longest batch or class name (a folder name as the user wrote it)."""
_PATH_SEPARATORS: Final = ("/", "\\")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
ID_HASH_CHARS: Final = 8
"""Hex digits of the name's hash appended to an identifier derived from a name that is not one already."""


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be carried as a batch or class name (None: it can).

    Names are kept as users write them (``coffee mug``, ``kitchen set 2``, ``Kaffeebecher``): S3 keys, YAML,
    JSON, tags and folders carry them. Refused are only names that cannot travel safely: empty, longer than
    :data:`MAX_NAME_CHARS`, holding a control character or a path separator, ``.``/``..`` or hidden (a
    leading ``.``, skipped as a hidden folder), or with spaces at either end (invisible, so ``mug`` and
    ``mug `` would be two classes).
    """
    if not value:
        return "is empty"
    if len(value) > MAX_NAME_CHARS:
        return f"is {len(value)} characters long, over the limit of {MAX_NAME_CHARS}"
    for position, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return f"holds a control character ({char!r}) at position {position}"
        if char in _PATH_SEPARATORS:
            return f"holds a path separator ({char!r}) at position {position}"
    if value.startswith("."):
        return "starts with '.' (a hidden folder, or '.'/'..')"
    if value != value.strip():
        return "starts or ends with a space"
    return None


def check_name(value: str, what: str = "name") -> str:
    """Return ``value`` if it can be carried as a batch or class name, else raise ValueError saying why."""
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(f"invalid {what} {value!r}: it {problem}")
    return value


def id_from_name(name: str, max_chars: int = 100) -> str:
    """A deterministic identifier (:func:`check_id` rules) for a name: the name itself when it is one
    already, else its letters and digits joined by ``-`` plus a hash of the whole name (so ``kitchen set 2``
    and ``kitchen_set 2`` stay apart). Where AWS needs a restricted id; the name itself goes in metadata."""
    if _SAFE_ID.match(name) and len(name) <= max_chars and name not in {".", ".."}:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:ID_HASH_CHARS]
    slug = _ID_UNSAFE.sub("-", name).strip("-._")[: max_chars - ID_HASH_CHARS - 1].strip("-._")
    return f"{slug}-{digest}" if slug else digest


def mesh_batch_prefix(batch: str) -> str:
    return f"{MESHES_PREFIX}{batch}/"


def mesh_key(batch: str, class_name: str, filename: str) -> str:
    return f"{MESHES_PREFIX}{batch}/{class_name}/{filename}"


def batch_config_key(batch: str) -> str:
    return f"{MESHES_PREFIX}{batch}/{BATCH_CONFIG_NAME}"


def asset_batch_prefix(batch: str) -> str:
    return f"{ASSETS_PREFIX}{batch}/"


def asset_key(batch: str, class_name: str, stem: str) -> str:
    return f"{ASSETS_PREFIX}{batch}/{class_name}/{stem}.usd"


ASSET_PLAN_NAME: Final = "batch-plan.json"
"""Written last beside a batch's USD assets (``assets/<batch>/batch-plan.json`` in the cloud): the prepared,
validated batch plan (classes, assets with hashes, per-file errors, batch.yaml's settings). Its presence means
every asset of the batch is there; shards reuse the assets when its source fingerprint matches the meshes."""


def asset_plan_key(batch: str) -> str:
    return f"{ASSETS_PREFIX}{batch}/{ASSET_PLAN_NAME}"


def render_run_prefix(run: str) -> str:
    return f"{RENDERS_PREFIX}{run}/"


def shard_name(shard: int) -> str:
    return f"shard-{shard:04d}"


def render_shard_prefix(run: str, shard: int) -> str:
    return f"{RENDERS_PREFIX}{run}/{shard_name(shard)}/"


def shard_marker_key(run: str, shard: int) -> str:
    return render_shard_prefix(run, shard) + SHARD_COMPLETE_MARKER


def dataset_prefix(run: str) -> str:
    return f"{DATASETS_PREFIX}{run}/"


def dataset_manifest_key(run: str) -> str:
    return dataset_prefix(run) + DATASET_MANIFEST_NAME


def model_prefix(run: str) -> str:
    return f"{MODELS_PREFIX}{run}/"


def eval_set_prefix(name: str) -> str:
    return f"{EVAL_PREFIX}{name}/"


def quarantine_reason_key(original_key: str) -> str:
    """Where the JSON reason for a rejected object goes; the object itself is never moved."""
    return f"{QUARANTINE_PREFIX}{original_key}.reason.json"


def quarantine_record(
    *,
    key: str,
    etag: str | None,
    size: int | None,
    reason: str,
    rejected_by: str,
    batch: str | None = None,
    run: str | None = None,
) -> dict[str, Any]:
    """The content of ``quarantine/<key>.reason.json``, the same fields whoever rejected the object: the exact
    upload judged (key, ETag, size: a later upload under that key is another file), why in words, the batch and
    run it belonged to (None when it belonged to none) and the component that rejected it."""
    return {
        "key": key,
        "etag": etag,
        "size": size,
        "reason": reason,
        "batch": batch,
        "run": run,
        "rejected_by": rejected_by,
        "contract_version": CONTRACT_VERSION,
    }


def data_yaml_text(class_names: Sequence[str], *, path: str | None = None) -> str:
    """The Ultralytics ``data.yaml`` of a dataset in the contract's layout (images/labels per split).

    Without ``path`` (the dataset finalize writes) Ultralytics resolves train/val against the file's folder, so
    the folder can be moved or uploaded as is; the training job gives the ``path`` of its scratch view. Written
    without a YAML library (the contract is stdlib only): names are JSON strings, which YAML reads unchanged.
    """
    names = "\n".join(f"  {i}: {json.dumps(name)}" for i, name in enumerate(class_names))
    head = (
        "# Ultralytics YOLO detection dataset written by `sim2cloud finalize`.\n"
        "# No `path:` on purpose: Ultralytics then resolves train/val against this file's folder,\n"
        "# so the dataset folder can be moved or uploaded as is.\n"
        if path is None
        else f"path: {json.dumps(path)}\n"
    )
    return (
        head + f"train: {IMAGES_DIR}/{TRAIN_SPLIT}\n"
        f"val: {IMAGES_DIR}/{VAL_SPLIT}\n"
        f"nc: {len(class_names)}\n"
        f"names:\n{names}\n"
    )


def run_prefix(run: str) -> str:
    return f"{RUNS_PREFIX}{run}/"


def run_status_key(run: str) -> str:
    return run_prefix(run) + RUN_STATUS_NAME


MODEL_CHECKPOINTS_DIR: Final = "checkpoints"
"""SageMaker syncs ``/opt/ml/checkpoints`` with ``models/<run>/checkpoints/`` (spot interruptions resume)."""


def model_checkpoint_prefix(run: str) -> str:
    return model_prefix(run) + MODEL_CHECKPOINTS_DIR + "/"


def parse_model_key_run(key: str) -> str | None:
    """Return ``<run>`` for any key under ``models/<run>/``, else None."""
    if not key.startswith(MODELS_PREFIX):
        return None
    run, sep, _rest = key[len(MODELS_PREFIX) :].partition("/")
    return run if run and sep else None


def run_model_metrics_key(run: str, training_job: str) -> str:
    """The metrics JSON the model gate writes for one training job (referenced by its model package)."""
    return f"{run_prefix(run)}metrics/{training_job}.json"


def run_report_key(run: str) -> str:
    """The run's self-contained report page (sim2cloud.report), beside its status and metrics."""
    return f"{run_prefix(run)}{REPORT_NAME}"


REPORT_NAME: Final = "report.html"


@dataclass(frozen=True)
class MeshKey:
    """A parsed ``meshes/<batch>/<class>/<file>`` key (or the batch config file, class_name '')."""

    batch: str
    class_name: str
    filename: str

    @property
    def extension(self) -> str:
        return PurePosixPath(self.filename).suffix.lower()

    @property
    def is_batch_config(self) -> bool:
        return self.class_name == "" and self.filename == BATCH_CONFIG_NAME


def parse_mesh_key(key: str) -> MeshKey | None:
    """Parse a key under ``meshes/``; None for keys outside the layout (placeholders, other prefixes)."""
    if not key.startswith(MESHES_PREFIX) or key.endswith("/"):
        return None
    parts = key[len(MESHES_PREFIX) :].split("/")
    if len(parts) == 2 and parts[1] == BATCH_CONFIG_NAME:
        return MeshKey(parts[0], "", parts[1])
    if len(parts) != 3 or not all(parts):
        return None
    return MeshKey(*parts)


def parse_dataset_manifest_key(key: str) -> str | None:
    """Return the run id for ``datasets/<run>/manifest.json``, else None."""
    if not key.startswith(DATASETS_PREFIX) or not key.endswith("/" + DATASET_MANIFEST_NAME):
        return None
    run = key[len(DATASETS_PREFIX) : -len("/" + DATASET_MANIFEST_NAME)]
    return run if run and "/" not in run else None


# --------------------------------------------------------------------------------------
# Environment variables (CDK sets them; runtimes read them through one typed parser each)
# --------------------------------------------------------------------------------------
class Env:
    """Names of environment variables. Values are documented where they are parsed."""

    DATA_BUCKET: Final = "SIM2CLOUD_DATA_BUCKET"
    ENVIRONMENT: Final = "SIM2CLOUD_ENVIRONMENT"
    LOG_LEVEL: Final = "SIM2CLOUD_LOG_LEVEL"
    # Render job (AWS Batch array job + finalize job)
    BATCH_ID: Final = "SIM2CLOUD_BATCH_ID"
    RUN_ID: Final = "SIM2CLOUD_RUN_ID"
    SHARD_COUNT: Final = "SIM2CLOUD_SHARD_COUNT"
    FRAMES: Final = "SIM2CLOUD_FRAMES"
    RENDER_BACKEND: Final = "SIM2CLOUD_RENDER_BACKEND"
    RENDER_CONFIG_KEY: Final = "SIM2CLOUD_RENDER_CONFIG_KEY"
    WORK_DIR: Final = "SIM2CLOUD_WORK_DIR"
    ARRAY_INDEX: Final = "AWS_BATCH_JOB_ARRAY_INDEX"  # set by AWS Batch itself
    # Render launcher
    JOB_QUEUE: Final = "SIM2CLOUD_JOB_QUEUE"
    RENDER_JOB_DEFINITION: Final = "SIM2CLOUD_RENDER_JOB_DEFINITION"
    FINALIZE_JOB_DEFINITION: Final = "SIM2CLOUD_FINALIZE_JOB_DEFINITION"
    FRAMES_PER_SHARD: Final = "SIM2CLOUD_FRAMES_PER_SHARD"
    DEFAULT_FRAMES: Final = "SIM2CLOUD_DEFAULT_FRAMES"
    QUIET_PERIOD_SECONDS: Final = "SIM2CLOUD_QUIET_PERIOD_SECONDS"
    MAX_MESH_BYTES: Final = "SIM2CLOUD_MAX_MESH_BYTES"
    # Training launcher
    TRAINING_IMAGE_URI: Final = "SIM2CLOUD_TRAINING_IMAGE_URI"
    TRAINING_ROLE_ARN: Final = "SIM2CLOUD_TRAINING_ROLE_ARN"
    TRAINING_INSTANCE_TYPE: Final = "SIM2CLOUD_TRAINING_INSTANCE_TYPE"
    TRAINING_USE_SPOT: Final = "SIM2CLOUD_TRAINING_USE_SPOT"
    TRAINING_MAX_RUNTIME_SECONDS: Final = "SIM2CLOUD_TRAINING_MAX_RUNTIME_SECONDS"
    TRAINING_HYPERPARAMETERS: Final = "SIM2CLOUD_TRAINING_HYPERPARAMETERS"
    KMS_KEY_ARN: Final = "SIM2CLOUD_KMS_KEY_ARN"
    # Model gate
    MODEL_PACKAGE_GROUP: Final = "SIM2CLOUD_MODEL_PACKAGE_GROUP"
    QUALITY_GATE_MAP50: Final = "SIM2CLOUD_QUALITY_GATE_MAP50"
    FAILURE_TOPIC_ARN: Final = "SIM2CLOUD_FAILURE_TOPIC_ARN"
    MODEL_APPROVAL_MODE: Final = "SIM2CLOUD_MODEL_APPROVAL_MODE"
    # Training launcher (appended)
    TRAINING_MAX_WAIT_SECONDS: Final = "SIM2CLOUD_TRAINING_MAX_WAIT_SECONDS"
    TRAINING_VOLUME_SIZE_GB: Final = "SIM2CLOUD_TRAINING_VOLUME_SIZE_GB"
    TRAINING_WEIGHTS_S3_URI: Final = "SIM2CLOUD_TRAINING_WEIGHTS_S3_URI"
    # Training / serving containers (SageMaker's own names where it defines them)
    SM_BASE_DIR: Final = "SIM2CLOUD_SM_BASE_DIR"
    SM_NUM_GPUS: Final = "SM_NUM_GPUS"
    SM_MODEL_DIR: Final = "SM_MODEL_DIR"
    SM_CHANNEL_DATASET: Final = "SM_CHANNEL_DATASET"
    SM_CHANNEL_WEIGHTS: Final = "SM_CHANNEL_WEIGHTS"
    SM_OUTPUT_DATA_DIR: Final = "SM_OUTPUT_DATA_DIR"
    SERVING_PORT: Final = "SAGEMAKER_BIND_TO_PORT"
    SERVING_WORKERS: Final = "SAGEMAKER_MODEL_SERVER_WORKERS"
    SERVING_MAX_BODY_BYTES: Final = "SIM2CLOUD_MAX_BODY_BYTES"
    SERVING_USER: Final = "SIM2CLOUD_SERVING_USER"  # serving workers drop root to this user (set in the image)
    SERVING_THREADS: Final = "SIM2CLOUD_SERVING_THREADS"  # ONNX Runtime intra-op threads per serving worker
    # Serving limits (defaults and meaning: SERVING_DEFAULT_* below; parsed by sim2cloud.serving.requests)
    SERVING_MAX_IMAGES: Final = "SIM2CLOUD_MAX_IMAGES_PER_REQUEST"
    SERVING_MAX_IMAGE_PIXELS: Final = "SIM2CLOUD_MAX_IMAGE_PIXELS"
    SERVING_TIME_BUDGET_SECONDS: Final = "SIM2CLOUD_REQUEST_TIME_BUDGET_SECONDS"
    SERVING_CLIENT_TIMEOUT_SECONDS: Final = "SIM2CLOUD_CLIENT_TIMEOUT_SECONDS"


# --------------------------------------------------------------------------------------
# EventBridge event patterns
# --------------------------------------------------------------------------------------
def mesh_created_pattern(bucket: str) -> dict[str, Any]:
    """S3 Object Created under ``meshes/`` (S3 -> EventBridge notifications)."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": MESHES_PREFIX}]}},
    }


def dataset_manifest_created_pattern(bucket: str) -> dict[str, Any]:
    """S3 Object Created for ``datasets/<run>/manifest.json`` (written last by finalize)."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [bucket]},
            "object": {"key": [{"wildcard": f"{DATASETS_PREFIX}*/{DATASET_MANIFEST_NAME}"}]},
        },
    }


TRAINING_JOB_NAME_PREFIX: Final = "sim2cloud-"
"""Every training job the launcher creates starts with this, so the gate's rule only sees ours."""

TRAINING_TERMINAL_STATUSES: Final = ("Completed", "Failed", "Stopped")
DEFAULT_TRAINING_HYPERPARAMETERS: Final = {"model": "yolov8n.yaml", "epochs": "50", "imgsz": "640"}
"""What every environment gives the training launcher (``SIM2CLOUD_TRAINING_HYPERPARAMETERS``); a dataset's
manifest ``training`` section overrides it. SageMaker passes hyperparameters as strings. Batch size, workers,
cache, mixed precision and GPU augmentation are left out: the training job picks them for its instance."""


def hyperparameter_string(value: Any) -> str:
    """A hyperparameter as SageMaker carries it: strings as they are, anything else JSON-encoded (30 -> "30",
    false -> "false"). The launcher sends this; batch.yaml's ``training:`` is validated on the same strings."""
    return value if isinstance(value, str) else json.dumps(value)


TRAINING_RUN_TAG: Final = "sim2cloud:run"
"""Tag on every training job (and model package) naming the dataset run it trained on."""
TRAINING_JOB_METADATA_KEY: Final = "sim2cloud:training-job"
"""Model package customer-metadata key naming the training job it was registered from (idempotency)."""
APPROVAL_MODES: Final = ("auto", "manual")
"""``SIM2CLOUD_MODEL_APPROVAL_MODE``: ``auto`` approves packages that pass the gate; ``manual`` never does."""


def training_state_change_pattern() -> dict[str, Any]:
    """SageMaker Training Job State Change for our jobs reaching a terminal state."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Training Job State Change"],
        "detail": {
            "TrainingJobName": [{"prefix": TRAINING_JOB_NAME_PREFIX}],
            "TrainingJobStatus": list(TRAINING_TERMINAL_STATUSES),
        },
    }


# --------------------------------------------------------------------------------------
# Dataset layout (Ultralytics YOLO detection) and manifest
# --------------------------------------------------------------------------------------
IMAGES_DIR: Final = "images"
LABELS_DIR: Final = "labels"
TRAIN_SPLIT: Final = "train"
VAL_SPLIT: Final = "val"
SPLITS: Final = (TRAIN_SPLIT, VAL_SPLIT)
MANIFEST_SCHEMA_VERSION: Final = 1
MANIFEST_TRAINING_FIELD: Final = "training"
"""manifest.json field holding the dataset's own hyperparameters: batch.yaml's ``training:`` mapping, carried by
every shard marker to finalize; the training launcher overlays it on the environment's defaults."""


# --------------------------------------------------------------------------------------
# Model artifact (SageMaker tars /opt/ml/model into model.tar.gz)
# --------------------------------------------------------------------------------------
MODEL_ONNX_NAME: Final = "model.onnx"
MODEL_PT_NAME: Final = "model.pt"
MODEL_JSON_NAME: Final = "model.json"
MODEL_ARCHIVE_NAME: Final = "model.tar.gz"
MODEL_JSON_METRICS_FIELD: Final = "metrics"
"""model.json field holding the final metrics, keyed by METRIC_NAMES (``mAP50``, ``mAP50-95``, ...)."""
MODEL_JSON_SCHEMA_VERSION: Final = 1
"""model.json keys: schema_version, contract_version, model_version (sha256 prefix of model.onnx), task,
class_names (index = class id), imgsz (square ONNX input size), input, metrics (METRIC_NAMES without epoch, of
the exported best epoch; mAP50 and mAP50-95 those of the exported model.onnx on the val split measured by
sim2cloud.evaluation, what the quality gate reads), metrics_source (split, model_file, images, definition,
per_class of that measurement), training_validation (Ultralytics' own numbers of that epoch), metrics_epoch,
epochs_trained, metrics_history, lineage (dataset_run, manifest_sha256, source_meshes, ...),
training_job, hyperparameters, training_device, versions, created_at."""
EVALUATION_JSON_NAME: Final = "evaluation.json"
DETECTIONS_PICTURE_NAME: Final = "detections.png"
"""What an evaluation writes into its folder (``sim2cloud evaluate --out``, the training job's evaluation)."""
TRAINING_EVALUATION_DIR: Final = "evaluation"
"""Under the training job's output data (output.tar.gz): the exported model's evaluation on the val split."""
TRAINING_PLOTS_DIR: Final = "plots"
"""Under the training job's output data: Ultralytics' plots of the final validation of best.pt."""


# --------------------------------------------------------------------------------------
# SageMaker container layout (training and serving)
# --------------------------------------------------------------------------------------
SM_DEFAULT_BASE_DIR: Final = "/opt/ml"
DATASET_CHANNEL: Final = "dataset"
WEIGHTS_CHANNEL: Final = "weights"
CHECKPOINT_LOCAL_DIR: Final = "checkpoints"
"""Relative to the base dir (``/opt/ml/checkpoints``); SageMaker syncs it with the checkpoint S3 URI."""


@dataclass(frozen=True)
class SageMakerPaths:
    """The ``/opt/ml`` tree; ``base`` is overridable so the same entrypoint runs locally."""

    base: str = SM_DEFAULT_BASE_DIR

    @property
    def hyperparameters(self) -> str:
        return f"{self.base}/input/config/hyperparameters.json"

    @property
    def input_data_config(self) -> str:
        return f"{self.base}/input/config/inputdataconfig.json"

    def channel(self, name: str) -> str:
        return f"{self.base}/input/data/{name}"

    @property
    def model_dir(self) -> str:
        return f"{self.base}/model"

    @property
    def checkpoint_dir(self) -> str:
        return f"{self.base}/{CHECKPOINT_LOCAL_DIR}"

    @property
    def output_dir(self) -> str:
        return f"{self.base}/output"

    @property
    def failure_file(self) -> str:
        return f"{self.base}/output/failure"


# --------------------------------------------------------------------------------------
# Training metrics: one line per epoch, parsed by the job's metric definitions
# --------------------------------------------------------------------------------------
METRIC_LINE_PREFIX: Final = "sim2cloud-metrics"
METRIC_NAMES: Final = (
    "epoch",
    "mAP50",
    "mAP50-95",
    "precision",
    "recall",
    "box_loss",
    "cls_loss",
    "dfl_loss",
    "val_box_loss",
    "val_cls_loss",
    "val_dfl_loss",
    "train_images_per_s",  # training throughput of the epoch (train pass only, all GPUs together)
)
_FLOAT = r"([-+0-9.eE]+|nan|inf)"


def format_metric_line(values: dict[str, float]) -> str:
    """``sim2cloud-metrics epoch=3 mAP50=0.512300 ...`` in METRIC_NAMES order (unknown keys dropped)."""
    fields = " ".join(f"{name}={float(values[name]):.6f}" for name in METRIC_NAMES if name in values)
    return f"{METRIC_LINE_PREFIX} {fields}"


def metric_regex(name: str) -> str:
    """The regex SageMaker applies to the log stream for one metric (first group = value)."""
    if name not in METRIC_NAMES:
        raise KeyError(name)
    return rf"{METRIC_LINE_PREFIX} .*\b{re.escape(name)}={_FLOAT}"


def metric_definitions() -> list[dict[str, str]]:
    """The ``MetricDefinitions`` of every training job (names as shown in SageMaker/CloudWatch)."""
    return [{"Name": f"train:{name}", "Regex": metric_regex(name)} for name in METRIC_NAMES]


def parse_metric_line(line: str) -> dict[str, float] | None:
    if not line.startswith(METRIC_LINE_PREFIX + " "):
        return None
    out: dict[str, float] = {}
    for name in METRIC_NAMES:
        match = re.search(metric_regex(name), line)
        if match:
            out[name] = float(match.group(1))
    return out


# --------------------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------------------
SERVING_DEFAULT_PORT: Final = 8080
PING_PATH: Final = "/ping"
INVOCATIONS_PATH: Final = "/invocations"
CUSTOM_ATTRIBUTES_HEADER: Final = "X-Amzn-SageMaker-Custom-Attributes"
SERVING_CONTENT_TYPES: Final = ("image/jpeg", "image/png", "application/x-image", "application/json")
SERVING_DEFAULT_MAX_BODY_BYTES: Final = 20 * 1024 * 1024
"""Request body limit when Env.SERVING_MAX_BODY_BYTES is unset: 20 MiB, below SageMaker real-time inference's
25 MB payload cap (a 640x640 JPEG is ~100 KB, so batches of base64 images fit); larger bodies get 413."""
SERVING_DEFAULT_MAX_IMAGES: Final = 64
"""Images in one JSON request when Env.SERVING_MAX_IMAGES is unset; more get 413 before any is decoded (64
images of 640x640 take about 2 s on 2 CPU cores, well inside the time budget)."""
SERVING_DEFAULT_MAX_IMAGE_PIXELS: Final = 40_000_000
"""Decoded pixels (width x height) per image when Env.SERVING_MAX_IMAGE_PIXELS is unset: 40 MP covers 8K video
frames (33 MP) and most camera sensors. Checked against the size the image header declares, before decoding,
so a decompression bomb (a 17 KB PNG declaring 12000x12000) gets 413 without being decompressed."""
SERVING_DEFAULT_TIME_BUDGET_SECONDS: Final = 30.0
"""Per-request time budget when Env.SERVING_TIME_BUDGET_SECONDS is unset: a request whose images are still
unprocessed after this long gets 413 (send fewer images per request) instead of running on; kept below
SageMaker's 60 s invocation timeout and the serving worker timeout, so no request is cut off mid-answer."""
SERVING_DEFAULT_CLIENT_TIMEOUT_SECONDS: Final = 10.0
"""How long the serving front waits for a client's request headers (in total) and between two reads of its body
when Env.SERVING_CLIENT_TIMEOUT_SECONDS is unset; a client slower than that is disconnected."""
SERVING_PING_DEADLINE_SECONDS: Final = 2.0
"""SageMaker's deadline for an answer to GET /ping; an instance that misses it is taken out of service."""
SERVING_THRESHOLD_ATTRIBUTES: Final = ("conf", "iou", "max_det", "multi_label")
"""Keys accepted in the X-Amzn-SageMaker-Custom-Attributes header, e.g. ``conf=0.4,iou=0.5,max_det=100``;
``multi_label=1`` keeps every class above ``conf`` per box (what mAP is measured with, as Ultralytics' val)."""


# --------------------------------------------------------------------------------------
# Infrastructure additions (CDK helper): batch-config rule, Batch failures, endpoint data capture
# --------------------------------------------------------------------------------------
def batch_config_created_pattern(bucket: str) -> dict[str, Any]:
    """S3 Object Created for ``meshes/<batch>/batch.yaml``: the explicit "batch complete" signal, delivered to
    the render launcher at once (mesh files wait out the quiet period first)."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [bucket]},
            "object": {"key": [{"wildcard": f"{MESHES_PREFIX}*/{BATCH_CONFIG_NAME}"}]},
        },
    }


BATCH_FAILED_STATUS: Final = "FAILED"


def batch_job_failed_pattern(job_queue_arn: str) -> dict[str, Any]:
    """AWS Batch Job State Change to FAILED for jobs of our render queue."""
    return {
        "source": ["aws.batch"],
        "detail-type": ["Batch Job State Change"],
        "detail": {"status": [BATCH_FAILED_STATUS], "jobQueue": [job_queue_arn]},
    }


DATA_CAPTURE_PREFIX: Final = "capture/"
"""Endpoint data capture (requests/responses) when the environment enables it: ``capture/<endpoint>/...``."""


# --------------------------------------------------------------------------------------
# Deployed environments: where ``sim2cloud submit``/``status`` find an environment's resources
# --------------------------------------------------------------------------------------
STACK_NAME_PREFIX: Final = "Sim2Cloud"
"""CloudFormation stack names are ``Sim2Cloud-<environment>-<Lifecycle>`` (stacks/config.py builds them)."""
DATA_BUCKET_OUTPUT: Final = "DataBucketName"
"""Output of the Storage stack: the environment's data bucket."""
MODEL_PACKAGE_GROUP_OUTPUT: Final = "ModelPackageGroupName"
"""Output of the Training stack: the model package group the gate registers in."""
RENDER_LAUNCHER_OUTPUT: Final = "RenderLauncherFunctionName"
"""Output of the Render stack: the render launcher, whose environment holds the batch limits it applies."""


def stack_name(environment: str, lifecycle: str) -> str:
    return f"{STACK_NAME_PREFIX}-{environment}-{lifecycle}"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hash every lineage record carries for a file (batch plan, manifest, model.json): sha256, hex.

    Read in 1 MiB blocks, so a large asset or model is never held in memory whole.
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
