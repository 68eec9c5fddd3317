"""Render launcher: turn a drop of meshes into ONE AWS Batch render submission per batch content.

Batching rule
-------------
A batch is everything under ``meshes/<batch>/``. Two kinds of events reach the launcher:

* every ``Object Created`` under ``meshes/`` arrives through an SQS queue whose delivery delay equals
  the quiet period (``SIM2CLOUD_QUIET_PERIOD_SECONDS``). When such a delayed event for batch B arrives,
  the launcher lists ``meshes/B/``: if the newest object is younger than the quiet period, files are
  still arriving and it does nothing (the delayed event of that newer file comes later and decides);
  otherwise the batch is quiet and the launcher evaluates it;
* ``meshes/B/batch.yaml`` arriving directly (EventBridge, no delay) evaluates the batch at once: the
  batch file says "this batch is complete".

Evaluating a batch validates every object: key layout ``<batch>/<class>/<file>``, batch and class folder
names that can be carried (``coffee mug`` can; :func:`sim2cloud.contract.name_problem` says what cannot),
extension (a mesh from ``SUPPORTED_MESH_EXTENSIONS`` or a companion from ``MESH_COMPANION_EXTENSIONS``), not
empty, at most ``SIM2CLOUD_MAX_MESH_BYTES``, and ``batch.yaml`` by the render job's own rules
(:mod:`sim2cloud.batch_config`: keys, types, the ``training:`` hyperparameters), so a typo costs no GPU hour.
Each rejected object gets a JSON reason at :func:`sim2cloud.contract.quarantine_reason_key`; the upload
itself is never moved, changed or deleted. If at least one valid mesh remains, ONE Batch job is
submitted: an array job of ``ceil(frames / SIM2CLOUD_FRAMES_PER_SHARD)`` children (a plain job when that
is 1, since Batch arrays need 2 or more), plus the finalize job depending on it (a dependency on an
array job's id waits for all its children). ``frames`` is ``batch.yaml``'s top-level ``frames`` or
``SIM2CLOUD_DEFAULT_FRAMES``.

Idempotency
-----------
The run id is ``<batch>-<hash>``, the hash taken over the sorted ``(key, ETag)`` list of the whole
batch, so the same content always maps to the same run and new content to a new run. Before anything
is submitted the launcher *claims* the run by creating ``runs/<run>/status.json`` with a conditional
put (``If-None-Match: *``): exactly one invocation wins; every other one (duplicates, the batch.yaml
event plus the delayed events of the same files, redeliveries) sees the status object and stops. The
status then moves ``claimed -> render_submitted -> submitted`` (each update conditional on the ETag the
owner last wrote), and carries the job ids. A submission that fails before any job exists releases the
claim and raises (the event is retried). A claim left unfinished for longer than
:data:`CLAIM_TIMEOUT_SECONDS` (the owner crashed or timed out) is taken over by the next event for that
content with a conditional put on the stale claim's ETag, and resumes after the last recorded step.
A fresh claim owned by another invocation raises :class:`RunBusy`, so the event is retried later rather
than lost. No-submission outcomes (nothing valid) are recorded the same way with state ``rejected``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from botocore.exceptions import ClientError
from shared import outcome as shared_outcome
from shared.quarantine import write_quarantine_record
from shared.s3_events import S3ObjectRef, not_ours
from shared.structured_log import bind, get_logger

from sim2cloud import contract
from sim2cloud.batch_config import MAX_BATCH_CONFIG_BYTES, BatchConfigProblem, parse_batch_config
from sim2cloud.contract import Env
from sim2cloud.env_reader import EnvReader
from sim2cloud.s3_transfer import etag, is_not_found, iter_objects

log = get_logger("sim2cloud.render_launcher")

CLAIM_TIMEOUT_SECONDS: Final = 900
"""A claim older than this (the Lambda maximum timeout) was abandoned by a crashed or timed-out owner."""
MAX_ARRAY_SIZE: Final = 10_000
"""AWS Batch's largest array job."""
RUN_HASH_CHARS: Final = 12
"""Hex digits of the content hash in the run id (48 bits: collisions within one batch name are moot)."""
MAX_BATCH_IN_RUN_ID: Final = 100
"""Batch-name characters kept in the run id, so ``<batch>-<hash>`` stays a valid 128-character id."""
_JOB_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

STATE_CLAIMED: Final = "claimed"
STATE_RENDER_SUBMITTED: Final = "render_submitted"
STATE_SUBMITTED: Final = "submitted"
STATE_REJECTED: Final = "rejected"
FINAL_STATES: Final = (STATE_SUBMITTED, STATE_REJECTED)


class RunBusy(RuntimeError):
    """Another invocation holds a fresh claim on this run; retry the event later."""


class BatchConfigError(ValueError):
    """``batch.yaml`` has a value the launcher cannot use; the message says which and why."""


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderLauncherSettings:
    """The launcher's environment, parsed once at cold start."""

    bucket: str
    """``SIM2CLOUD_DATA_BUCKET``: the data bucket; events for other buckets are ignored."""
    job_queue: str
    """``SIM2CLOUD_JOB_QUEUE``: the Batch job queue (name or ARN)."""
    render_job_definition: str
    """``SIM2CLOUD_RENDER_JOB_DEFINITION``: the render (array) job definition (name, name:revision or ARN)."""
    finalize_job_definition: str
    """``SIM2CLOUD_FINALIZE_JOB_DEFINITION``: the finalize job definition."""
    frames_per_shard: int
    """``SIM2CLOUD_FRAMES_PER_SHARD``: frames one array child renders (default 50)."""
    default_frames: int
    """``SIM2CLOUD_DEFAULT_FRAMES``: frames of a batch whose batch.yaml gives none (default 500)."""
    quiet_period_seconds: int
    """``SIM2CLOUD_QUIET_PERIOD_SECONDS``: a batch is complete after this long without new files (default
    300; the queue's delivery delay must equal it)."""
    max_mesh_bytes: int
    """``SIM2CLOUD_MAX_MESH_BYTES``: larger files are rejected (default 512 MiB)."""

    @property
    def limits(self) -> BatchLimits:
        return BatchLimits(self.max_mesh_bytes, self.default_frames, self.frames_per_shard)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RenderLauncherSettings:
        reader = EnvReader(env)
        bucket = reader.text(Env.DATA_BUCKET)
        job_queue = reader.text(Env.JOB_QUEUE)
        render_job_definition = reader.text(Env.RENDER_JOB_DEFINITION)
        finalize_job_definition = reader.text(Env.FINALIZE_JOB_DEFINITION)
        quiet_period_seconds = reader.integer(Env.QUIET_PERIOD_SECONDS, default=300, minimum=0)
        limits = BatchLimits.read(reader)
        reader.raise_if_problems("render launcher")
        return cls(
            bucket=bucket,
            job_queue=job_queue,
            render_job_definition=render_job_definition,
            finalize_job_definition=finalize_job_definition,
            frames_per_shard=limits.frames_per_shard,
            default_frames=limits.default_frames,
            quiet_period_seconds=quiet_period_seconds,
            max_mesh_bytes=limits.max_mesh_bytes,
        )


# --------------------------------------------------------------------------------------
# Pure rules: listing, validation, run id, shard count
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredObject:
    """One object of a batch as listed (ETag without quotes)."""

    key: str
    etag: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class Rejection:
    key: str
    etag: str
    size: int
    reason: str


@dataclass
class BatchReview:
    """The verdict on every object of one batch."""

    meshes: list[StoredObject] = field(default_factory=list)
    companions: list[StoredObject] = field(default_factory=list)
    config: StoredObject | None = None
    rejected: list[Rejection] = field(default_factory=list)


def review_objects(objects: Sequence[StoredObject], max_bytes: int) -> BatchReview:
    """Sort a batch's objects into meshes, companions, the batch file and rejections (with reasons)."""
    review = BatchReview()
    for obj in objects:
        parsed = contract.parse_mesh_key(obj.key)
        problem: str | None = None
        if parsed is None:
            problem = (
                f"key {obj.key!r} does not follow {contract.MESHES_PREFIX}<batch>/<class>/<file> "
                f"(or {contract.MESHES_PREFIX}<batch>/{contract.BATCH_CONFIG_NAME})"
            )
        elif parsed.class_name and (name_problem := contract.name_problem(parsed.class_name)) is not None:
            problem = f"class folder name {parsed.class_name!r} {name_problem}"
        elif obj.size == 0 and not parsed.is_batch_config:  # an empty batch.yaml: every setting's default
            problem = "file is empty (0 bytes)"
        elif obj.size > max_bytes:
            problem = f"file is {obj.size} bytes, over the limit of {max_bytes} bytes ({Env.MAX_MESH_BYTES})"
        elif not parsed.is_batch_config and parsed.extension not in (
            contract.SUPPORTED_MESH_EXTENSIONS + contract.MESH_COMPANION_EXTENSIONS
        ):
            problem = (
                f"extension {parsed.extension or '(none)'!r} is not supported: meshes "
                f"{', '.join(contract.SUPPORTED_MESH_EXTENSIONS)}; companions "
                f"{', '.join(contract.MESH_COMPANION_EXTENSIONS)}"
            )
        if problem is not None:
            review.rejected.append(Rejection(obj.key, obj.etag, obj.size, problem))
            if parsed is not None and parsed.is_batch_config:
                review.config = obj  # a refused batch.yaml stops the batch: its settings are unknown
        elif parsed is not None and parsed.is_batch_config:
            review.config = obj
        elif parsed is not None and parsed.extension in contract.SUPPORTED_MESH_EXTENSIONS:
            review.meshes.append(obj)
        else:
            review.companions.append(obj)
    return review


def frames_from_batch_config(text: str) -> int | None:
    """The top-level ``frames`` of batch.yaml, or None when absent; BatchConfigError (every reason) when the
    file breaks any of batch.yaml's rules (:mod:`sim2cloud.batch_config`, the render job's own rules):
    unknown keys, wrong types, an unknown training hyperparameter or a value the training job refuses."""
    try:
        config = parse_batch_config(text)
    except BatchConfigProblem as err:
        raise BatchConfigError(str(err)) from err
    frames = config.get("frames")
    return int(frames) if frames is not None else None


def shard_count(frames: int, frames_per_shard: int) -> int:
    return math.ceil(frames / frames_per_shard)


@dataclass(frozen=True)
class BatchLimits:
    """The launcher settings that decide whether a batch is rendered (see RenderLauncherSettings)."""

    max_mesh_bytes: int
    default_frames: int
    frames_per_shard: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BatchLimits:
        """The limits a launcher with environment ``env`` applies (its defaults where a variable is unset)."""
        reader = EnvReader(env)
        limits = cls.read(reader)
        reader.raise_if_problems("render launcher limits")
        return limits

    @classmethod
    def read(cls, reader: EnvReader) -> BatchLimits:
        """The limits from ``reader`` (problems are collected by the reader, raised by its owner)."""
        return cls(
            max_mesh_bytes=reader.integer(Env.MAX_MESH_BYTES, default=512 * 1024 * 1024, minimum=1),
            default_frames=reader.integer(Env.DEFAULT_FRAMES, default=500, minimum=1),
            frames_per_shard=reader.integer(Env.FRAMES_PER_SHARD, default=50, minimum=1),
        )


@dataclass(frozen=True)
class BatchVerdict:
    """What the launcher decides for one batch's content: per-object review, frames, shards, and why nothing
    would be submitted (None: it is submitted)."""

    review: BatchReview
    frames: int
    shards: int
    no_submit_reason: str | None


def judge_batch(
    objects: Sequence[StoredObject], read_config: Callable[[StoredObject], bytes], limits: BatchLimits
) -> BatchVerdict:
    """The launcher's whole verdict on a batch; ``read_config`` returns batch.yaml's bytes (S3 in the Lambda,
    a local file in ``sim2cloud submit``, which validates with this same function before uploading)."""
    review = review_objects(objects, limits.max_mesh_bytes)
    frames = limits.default_frames
    if review.config is not None and not any(r.key == review.config.key for r in review.rejected):
        # An oversized batch.yaml is refused unread (frames_from_config_object says why).
        body = read_config(review.config) if review.config.size <= MAX_BATCH_CONFIG_BYTES else b""
        frames, config_rejection = frames_from_config_object(review.config, body, limits)
        if config_rejection is not None:
            review.rejected.append(config_rejection)
    shards = shard_count(frames, limits.frames_per_shard)
    return BatchVerdict(review, frames, shards, why_not_submit(review, shards))


def frames_from_config_object(config: StoredObject, body: bytes, limits: BatchLimits) -> tuple[int, Rejection | None]:
    """batch.yaml's frames (the default when it gives none), or the default and the rejection of the file."""
    if config.size > MAX_BATCH_CONFIG_BYTES:
        reason = f"batch.yaml is {config.size} bytes, over the limit of {MAX_BATCH_CONFIG_BYTES}"
        return limits.default_frames, Rejection(config.key, config.etag, config.size, reason)
    try:
        frames = frames_from_batch_config(body.decode("utf-8"))
    except UnicodeDecodeError:
        return limits.default_frames, Rejection(config.key, config.etag, config.size, "batch.yaml is not UTF-8 text")
    except BatchConfigError as err:
        return limits.default_frames, Rejection(config.key, config.etag, config.size, f"batch.yaml: {err}")
    return (frames or limits.default_frames), None


def why_not_submit(review: BatchReview, shards: int) -> str | None:
    if review.config is not None and any(r.key == review.config.key for r in review.rejected):
        return f"{contract.BATCH_CONFIG_NAME} is invalid (see its quarantine reason); fix it to render this batch"
    if not review.meshes:
        return "no valid mesh in the batch (every rejected file has a quarantine reason)"
    if shards > MAX_ARRAY_SIZE:
        return (
            f"{shards} shards exceed the AWS Batch array limit of {MAX_ARRAY_SIZE}: "
            f"lower frames or raise {Env.FRAMES_PER_SHARD}"
        )
    return None


def run_id_for(batch: str, objects: Sequence[StoredObject]) -> str:
    """``<batch id>-<hash of the sorted (key, ETag) list>``: same content, same run. The batch id is the batch
    name when that is an identifier already, else derived from it (``kitchen set 2`` -> ``kitchen-set-2-<hash>``,
    :func:`contract.id_from_name`); the run's status and manifest keep the name as written."""
    listing = "\n".join(f"{obj.key}\t{obj.etag}" for obj in sorted(objects, key=lambda obj: obj.key))
    digest = hashlib.sha256(listing.encode("utf-8")).hexdigest()[:RUN_HASH_CHARS]
    return contract.check_id(f"{contract.id_from_name(batch, MAX_BATCH_IN_RUN_ID)}-{digest}", "run id")


def batch_job_name(kind: str, run: str) -> str:
    """A Batch job name (letters, digits, ``-``, ``_``; at most 128)."""
    return _JOB_NAME_UNSAFE.sub("_", f"sim2cloud-{kind}-{run}")[:128]


def batch_of_key(key: str) -> str | None:
    """The ``<batch>`` segment of ``meshes/<batch>/...`` (None when the key is not inside a batch folder)."""
    rest = key[len(contract.MESHES_PREFIX) :] if key.startswith(contract.MESHES_PREFIX) else None
    if rest is None:
        return None
    batch, sep, _ = rest.partition("/")
    return batch if batch and sep else None


# --------------------------------------------------------------------------------------
# S3 side
# --------------------------------------------------------------------------------------
def list_batch(s3: Any, bucket: str, batch: str) -> list[StoredObject]:
    """Every object under ``meshes/<batch>/`` except folder placeholders."""
    return [
        StoredObject(key=item["Key"], etag=etag(item), size=int(item["Size"]), last_modified=item["LastModified"])
        for item in iter_objects(s3, bucket, contract.mesh_batch_prefix(batch))
        if not item["Key"].endswith("/")
    ]


def _put_json(s3: Any, bucket: str, key: str, body: Mapping[str, Any], **conditions: str) -> str:
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8"),
        ContentType="application/json",
        **conditions,
    )
    return str(response["ETag"])


def _is_precondition_failure(err: ClientError) -> bool:
    # 412: the condition failed; 409: S3 saw a concurrent conditional write to the same key.
    code = err.response.get("Error", {}).get("Code", "")
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


def write_quarantine_reason(s3: Any, bucket: str, rejection: Rejection, batch: str | None, run: str | None) -> None:
    """Record why an upload was rejected. The content is deterministic, so a repeat write changes nothing."""
    record = contract.quarantine_record(
        key=rejection.key,
        etag=rejection.etag,
        size=rejection.size,
        reason=rejection.reason,
        rejected_by="render-launcher",
        batch=batch,
        run=run,
    )
    write_quarantine_record(s3, bucket, record)
    log.warning("rejected upload", extra={"key": rejection.key, "reason": rejection.reason})


@dataclass
class RunStatus:
    body: dict[str, Any]
    etag: str
    last_modified: datetime


def read_status(s3: Any, bucket: str, run: str) -> RunStatus | None:
    try:
        response = s3.get_object(Bucket=bucket, Key=contract.run_status_key(run))
    except ClientError as err:
        if is_not_found(err):
            return None
        raise
    return RunStatus(json.loads(response["Body"].read()), str(response["ETag"]), response["LastModified"])


# --------------------------------------------------------------------------------------
# The launcher
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Outcome(shared_outcome.Outcome):
    """Actions: ``ignored``, ``waiting``, ``duplicate``, ``rejected`` or ``submitted``."""

    batch: str | None = None
    render_job_id: str | None = None
    finalize_job_id: str | None = None


class RenderLauncher:
    """Evaluates batches and submits renders; the clients are passed in (created lazily by the handler)."""

    def __init__(self, settings: RenderLauncherSettings, s3: Any, batch: Any) -> None:
        self.settings = settings
        self.s3 = s3
        self.batch = batch

    def on_object_created(self, ref: S3ObjectRef, now: datetime) -> Outcome:
        """Handle one ``Object Created`` report (delayed, or the batch file's immediate event)."""
        ignored = not_ours(ref, self.settings.bucket, log)
        if ignored:
            return Outcome(action="ignored", detail=ignored)
        if not ref.key.startswith(contract.MESHES_PREFIX):
            log.info("ignored: key outside meshes/", extra={"key": ref.key})
            return Outcome(action="ignored", detail=f"key outside {contract.MESHES_PREFIX}")
        batch = batch_of_key(ref.key)
        if batch is None:
            self._reject_loose_file(ref)
            return Outcome(action="rejected", detail="file is not inside a batch folder")
        bind(batch=batch)
        is_batch_file = ref.key == contract.batch_config_key(batch)
        return self.evaluate_batch(batch, now, immediate=is_batch_file)

    def _reject_loose_file(self, ref: S3ObjectRef) -> None:
        try:
            head = self.s3.head_object(Bucket=ref.bucket, Key=ref.key)
        except ClientError as err:
            if is_not_found(err):
                log.info("ignored: loose file no longer exists", extra={"key": ref.key})
                return
            raise
        rejection = Rejection(
            ref.key,
            str(head["ETag"]).strip('"'),
            int(head["ContentLength"]),
            f"file is not inside a batch folder: put it under {contract.MESHES_PREFIX}<batch>/<class>/",
        )
        write_quarantine_reason(self.s3, ref.bucket, rejection, None, None)

    def evaluate_batch(self, batch: str, now: datetime, *, immediate: bool) -> Outcome:
        objects = list_batch(self.s3, self.settings.bucket, batch)
        if not objects:
            log.info("ignored: batch has no objects any more")
            return Outcome(action="ignored", batch=batch, detail="batch is empty")
        newest = max(obj.last_modified for obj in objects)
        age = (now - newest).total_seconds()
        if not immediate and age < self.settings.quiet_period_seconds:
            log.info(
                "waiting: files still arriving",
                extra={"newest_age_s": round(age, 1), "quiet_period_s": self.settings.quiet_period_seconds},
            )
            return Outcome(action="waiting", batch=batch, detail=f"newest object is {age:.0f}s old")
        try:
            contract.check_name(batch, "batch folder name")
        except ValueError as err:
            for obj in objects:
                write_quarantine_reason(
                    self.s3, self.settings.bucket, Rejection(obj.key, obj.etag, obj.size, str(err)), batch, None
                )
            return Outcome(action="rejected", batch=batch, detail=str(err))

        run = run_id_for(batch, objects)
        bind(run=run)
        status = read_status(self.s3, self.settings.bucket, run)
        if status is not None and status.body.get("state") in FINAL_STATES:
            log.info("duplicate: this batch content was already handled", extra={"state": status.body["state"]})
            return Outcome(action="duplicate", batch=batch, run=run, detail=str(status.body["state"]))

        verdict = judge_batch(objects, self._read_config, self.settings.limits)
        review, frames, shards = verdict.review, verdict.frames, verdict.shards
        for rejection in review.rejected:
            write_quarantine_reason(self.s3, self.settings.bucket, rejection, batch, run)

        base = {
            "run": run,
            "batch": batch,
            "contract_version": contract.CONTRACT_VERSION,
            "content": [{"key": obj.key, "etag": obj.etag} for obj in sorted(objects, key=lambda obj: obj.key)],
            "meshes": [obj.key for obj in review.meshes],
            "rejected": [{"key": r.key, "reason": r.reason} for r in review.rejected],
            "frames": frames,
            "shards": shards,
        }
        no_submit_reason = verdict.no_submit_reason
        if no_submit_reason is not None:
            self._record_rejected_run(run, {**base, "state": STATE_REJECTED, "reason": no_submit_reason}, now)
            log.warning("rejected: nothing submitted", extra={"reason": no_submit_reason})
            return Outcome(action="rejected", batch=batch, run=run, detail=no_submit_reason)
        return self._claim_and_submit(base, review, now)

    def _read_config(self, config: StoredObject) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.settings.bucket, Key=config.key)["Body"].read()
        return body

    def _record_rejected_run(self, run: str, body: dict[str, Any], now: datetime) -> None:
        try:
            _put_json(
                self.s3,
                self.settings.bucket,
                contract.run_status_key(run),
                {**body, "updated_at": now.isoformat()},
                IfNoneMatch="*",
            )
        except ClientError as err:
            if not _is_precondition_failure(err):
                raise
            log.info("rejection already recorded")

    # ---- claim / submit ------------------------------------------------------------------
    def _claim_and_submit(self, base: dict[str, Any], review: BatchReview, now: datetime) -> Outcome:
        run, batch = base["run"], base["batch"]
        status_key = contract.run_status_key(run)
        body = {**base, "state": STATE_CLAIMED, "updated_at": now.isoformat()}
        try:
            etag = _put_json(self.s3, self.settings.bucket, status_key, body, IfNoneMatch="*")
        except ClientError as err:
            if not _is_precondition_failure(err):
                raise
            taken = self._take_over_stale_claim(run, now)
            if isinstance(taken, Outcome):
                return taken
            body, etag = taken

        render_job_id = body.get("render_job_id")
        try:
            if render_job_id is None:
                render_job_id = self._submit_render(run, batch, body["frames"], body["shards"], review)
                body = {
                    **body,
                    "state": STATE_RENDER_SUBMITTED,
                    "render_job_id": render_job_id,
                    "updated_at": now.isoformat(),
                }
                etag = _put_json(self.s3, self.settings.bucket, status_key, body, IfMatch=etag)
        except Exception:
            if render_job_id is None:
                # Nothing was submitted: release the claim so the retried event can submit.
                self.s3.delete_object(Bucket=self.settings.bucket, Key=status_key)
                log.exception("render submission failed; claim released")
            raise
        finalize_job_id = self._submit_finalize(run, batch, body["shards"], render_job_id)
        body = {**body, "state": STATE_SUBMITTED, "finalize_job_id": finalize_job_id, "updated_at": now.isoformat()}
        _put_json(self.s3, self.settings.bucket, status_key, body, IfMatch=etag)
        log.info(
            "submitted render",
            extra={
                "render_job_id": render_job_id,
                "finalize_job_id": finalize_job_id,
                "shards": body["shards"],
                "frames": body["frames"],
            },
        )
        return Outcome(
            action="submitted", batch=batch, run=run, render_job_id=render_job_id, finalize_job_id=finalize_job_id
        )

    def _take_over_stale_claim(self, run: str, now: datetime) -> tuple[dict[str, Any], str] | Outcome:
        status = read_status(self.s3, self.settings.bucket, run)
        if status is None:
            raise RunBusy(f"run {run}: claim vanished while being read (released by a failed owner); retry")
        state = status.body.get("state")
        if state in FINAL_STATES:
            log.info("duplicate: another invocation handled this batch content", extra={"state": state})
            return Outcome(action="duplicate", batch=status.body.get("batch"), run=run, detail=str(state))
        age = (now - status.last_modified).total_seconds()
        if age < CLAIM_TIMEOUT_SECONDS:
            raise RunBusy(f"run {run} is being submitted by another invocation ({state}, {age:.0f}s ago); retry")
        body = {**status.body, "updated_at": now.isoformat(), "taken_over_at": now.isoformat()}
        try:
            etag = _put_json(self.s3, self.settings.bucket, contract.run_status_key(run), body, IfMatch=status.etag)
        except ClientError as err:
            if _is_precondition_failure(err):
                raise RunBusy(f"run {run}: another invocation took over the stale claim first; retry") from err
            raise
        log.warning("took over an abandoned claim", extra={"state": state, "claim_age_s": round(age)})
        return body, etag

    def _submit_render(self, run: str, batch: str, frames: int, shards: int, review: BatchReview) -> str:
        environment = {
            Env.DATA_BUCKET: self.settings.bucket,
            Env.BATCH_ID: batch,
            Env.RUN_ID: run,
            Env.SHARD_COUNT: str(shards),
            Env.FRAMES: str(frames),
        }
        request: dict[str, Any] = {
            "jobName": batch_job_name("render", run),
            "jobQueue": self.settings.job_queue,
            "jobDefinition": self.settings.render_job_definition,
            "containerOverrides": {"environment": [{"name": k, "value": v} for k, v in environment.items()]},
        }
        if shards > 1:
            request["arrayProperties"] = {"size": shards}
        return str(self.batch.submit_job(**request)["jobId"])

    def _submit_finalize(self, run: str, batch: str, shards: int, render_job_id: str) -> str:
        environment = {
            Env.DATA_BUCKET: self.settings.bucket,
            Env.BATCH_ID: batch,
            Env.RUN_ID: run,
            Env.SHARD_COUNT: str(shards),
        }
        response = self.batch.submit_job(
            jobName=batch_job_name("finalize", run),
            jobQueue=self.settings.job_queue,
            jobDefinition=self.settings.finalize_job_definition,
            dependsOn=[{"jobId": render_job_id}],
            containerOverrides={"environment": [{"name": k, "value": v} for k, v in environment.items()]},
        )
        return str(response["jobId"])
