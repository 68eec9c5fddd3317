"""Runs the jobs the Lambdas actually submitted, as local processes with the cloud's environment and layout.

moto records a SubmitJob or CreateTrainingJob but runs nothing. The executor reads each request back
(DescribeJobs, DescribeTrainingJob) and runs that job's real entrypoint:

* **Batch**: the job definition's container environment overlaid by the submission's
  ``containerOverrides``, ``AWS_BATCH_JOB_ARRAY_INDEX`` per child of an array job, the job definition's
  ``command`` appended to the image's entrypoint (``python -m isaac_jobs.cloud``, what
  ``containers/isaac-sim``'s entry script runs). A job runs only once every job it ``dependsOn`` has
  succeeded. Each child is its own process, as each is its own container on Batch; render processes never
  import torch (a moderngl EGL context and torch in one process crash).
* **SageMaker training**: an ``/opt/ml``-style tree (:class:`sim2cloud.contract.SageMakerPaths` with a
  local base) with every channel's S3 prefix downloaded, ``hyperparameters.json`` and
  ``inputdataconfig.json`` from the request, the checkpoint prefix synced down before and up after,
  ``sim2cloud train`` as the container's ``train``, and ``/opt/ml/model`` tarred into
  ``<S3OutputPath>/<job>/output/model.tar.gz`` as SageMaker uploads it (``output/data`` as
  ``output.tar.gz``). The outcome (Completed with the artifact, or Failed with ``/opt/ml/output/failure``)
  is returned for the caller to announce as a state-change event.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from sim2cloud import contract, s3_transfer
from sim2cloud.contract import Env
from sim2cloud.s3_transfer import split_s3_uri

BATCH_IMAGE_ENTRYPOINT: Final = (sys.executable, "-m", "isaac_jobs.cloud")
"""The render image's entrypoint (``/isaac-sim/python.sh -m isaac_jobs.cloud``) with this interpreter."""
TRAINING_ENTRYPOINT: Final = (sys.executable, "-m", "sim2cloud.cli", "train")
"""The YOLO image's ``train`` (SageMaker runs ``<image> train``)."""
ARCHIVE_NAME_OUTPUT: Final = "output.tar.gz"
"""SageMaker's archive of ``/opt/ml/output/data`` beside model.tar.gz."""


class JobFailed(RuntimeError):
    """A job exited non-zero; the message names the job and its reason."""


# --------------------------------------------------------------------------------------
# Batch
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchJob:
    """One submitted Batch job as DescribeJobs reports it."""

    job_id: str
    name: str
    definition: str
    command: tuple[str, ...]
    environment: dict[str, str]
    """Job definition environment overlaid by the submission's container overrides."""
    array_size: int | None
    depends_on: tuple[str, ...]

    @property
    def indices(self) -> list[int | None]:
        """Array indices to run (None: a plain job, no AWS_BATCH_JOB_ARRAY_INDEX)."""
        return list(range(self.array_size)) if self.array_size else [None]


def _pairs(items: Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    return {str(item["name"]): str(item["value"]) for item in items or []}


def submitted_batch_jobs(batch: Any, queue: str) -> list[BatchJob]:
    """Every parent job of ``queue`` (array children left out), with definition and overrides merged."""
    summaries: list[dict[str, Any]] = []
    request: dict[str, Any] = {"jobQueue": queue, "filters": [{"name": "JOB_NAME", "values": ["*"]}]}
    while True:
        page = batch.list_jobs(**request)
        summaries.extend(page["jobSummaryList"])
        if not page.get("nextToken"):
            break
        request["nextToken"] = page["nextToken"]
    ids = [s["jobId"] for s in summaries if ":" not in s["jobId"]]
    jobs: list[BatchJob] = []
    for start in range(0, len(ids), 100):  # DescribeJobs takes at most 100 ids
        for job in batch.describe_jobs(jobs=ids[start : start + 100])["jobs"]:
            definition = batch.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])["jobDefinitions"]
            if not definition:
                raise JobFailed(f"Batch job {job['jobName']}: job definition {job['jobDefinition']} not found")
            container = definition[0].get("containerProperties", {})
            overrides = job.get("container", {})
            environment = {**_pairs(container.get("environment")), **_pairs(overrides.get("environment"))}
            size = (job.get("arrayProperties") or {}).get("size")
            jobs.append(
                BatchJob(
                    job_id=job["jobId"],
                    name=job["jobName"],
                    definition=definition[0]["jobDefinitionName"],
                    command=tuple(overrides.get("command") or container.get("command") or ()),
                    environment=environment,
                    array_size=int(size) if size else None,
                    depends_on=tuple(dep["jobId"] for dep in job.get("dependsOn") or []),
                )
            )
    return jobs


def dependency_order(jobs: Sequence[BatchJob]) -> list[BatchJob]:
    """Jobs ordered so each comes after what it depends on; a cycle or unknown dependency is an error."""
    by_id = {job.job_id: job for job in jobs}
    ordered: list[BatchJob] = []
    done: set[str] = set()
    pending = list(jobs)
    while pending:
        ready = [job for job in pending if all(dep in done for dep in job.depends_on)]
        if not ready:
            unknown = {dep for job in pending for dep in job.depends_on if dep not in by_id}
            names = ", ".join(job.name for job in pending)
            raise JobFailed(f"Batch jobs {names} wait on jobs that never run: {sorted(unknown) or 'a cycle'}")
        for job in ready:
            ordered.append(job)
            done.add(job.job_id)
            pending.remove(job)
    return ordered


def _pump(stream: IO[str], log_file: IO[str], echo: Callable[[str], None] | None) -> None:
    for line in stream:
        log_file.write(line)
        log_file.flush()
        if echo is not None:
            echo(line.rstrip("\n"))


def run_process(
    command: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    *,
    echo: Callable[[str], None] | None = None,
    cwd: Path | None = None,
) -> int:
    """Run ``command``; stdout goes to ``log_path`` (each line also to ``echo``), stderr (progress bars and
    log lines) straight to the terminal. Returns the exit status."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log_file:
        log_file.write(f"$ {' '.join(command)}\n")
        log_file.flush()
        process = subprocess.Popen(
            list(command), env=dict(env), stdout=subprocess.PIPE, text=True, cwd=cwd, bufsize=1, errors="replace"
        )
        assert process.stdout is not None
        reader = threading.Thread(target=_pump, args=(process.stdout, log_file, echo), daemon=True)
        reader.start()
        try:
            status = process.wait()
        except BaseException:
            process.terminate()
            process.wait(timeout=30)
            raise
        reader.join()
    return status


@dataclass
class BatchRun:
    """What running one job did: per-index exit status and timing."""

    job: BatchJob
    seconds: float = 0.0
    statuses: dict[int | None, int] = field(default_factory=dict)


def run_batch_job(job: BatchJob, base_env: Mapping[str, str], log_dir: Path, *, label: str = "") -> BatchRun:
    """Run every index of ``job`` in turn (children of an array are independent containers on Batch; here
    they share two cores, so one at a time). Raises JobFailed naming the first failing index."""
    result = BatchRun(job)
    started = time.perf_counter()
    for index in job.indices:
        env = {**base_env, **job.environment}
        env.pop(Env.ARRAY_INDEX, None)
        if index is not None:
            env[Env.ARRAY_INDEX] = str(index)
        suffix = "" if index is None else f"-{index}"
        command = [*BATCH_IMAGE_ENTRYPOINT, *job.command]
        where = f"{label or job.name}{'' if index is None else f' [{index + 1}/{job.array_size}]'}"
        print(f"    {where}: {' '.join(job.command)}", flush=True)
        status = run_process(command, env, log_dir / f"{job.name}{suffix}.log")
        result.statuses[index] = status
        if status != 0:
            raise JobFailed(
                f"Batch job {job.name} ({job.definition})"
                + ("" if index is None else f" array index {index}")
                + f" exited with {status}; log: {log_dir / f'{job.name}{suffix}.log'} (and the lines above)"
            )
    result.seconds = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------------------
# SageMaker training
# --------------------------------------------------------------------------------------
def download_uri(s3: Any, uri: str, dest: Path) -> int:
    """Download every object under the S3 prefix (or the single object) ``uri`` into ``dest``; return how many."""
    bucket, prefix = split_s3_uri(uri)
    return len(s3_transfer.download_prefix(s3, bucket, prefix, dest))


def _upload_dir(s3: Any, source: Path, uri: str) -> int:
    bucket, prefix = split_s3_uri(uri)
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    files = s3_transfer.files_below(source)
    s3_transfer.upload_files(s3, bucket, source, prefix, files)
    return len(files)


def _tar_dir(source: Path, archive: Path) -> None:
    """SageMaker's archive layout: the directory's files at the top level of the tar."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(source).as_posix())


@dataclass(frozen=True)
class TrainingOutcome:
    """How the local training job ended, in the terms of its state-change event."""

    status: str
    """``Completed`` or ``Failed``."""
    model_artifact: str | None
    failure_reason: str | None
    paths: contract.SageMakerPaths
    hyperparameters: dict[str, str]
    """The request's hyperparameters, exactly as written into ``hyperparameters.json``."""
    final_metrics: dict[str, float]
    seconds: float


def run_training_job(
    sagemaker: Any,
    s3: Any,
    job_name: str,
    base: Path,
    base_env: Mapping[str, str],
    log_dir: Path,
) -> TrainingOutcome:
    """Run the training job ``job_name`` as SageMaker would, from its DescribeTrainingJob request (nothing else:
    what the launcher asked for is what trains)."""
    started = time.perf_counter()
    request = sagemaker.describe_training_job(TrainingJobName=job_name)
    paths = contract.SageMakerPaths(base=str(base.resolve()))
    hyperparameters = {str(k): str(v) for k, v in (request.get("HyperParameters") or {}).items()}

    config = Path(paths.hyperparameters)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(hyperparameters, indent=2))  # strings, as SageMaker writes them
    channels = request.get("InputDataConfig") or []
    Path(paths.input_data_config).write_text(
        json.dumps({c["ChannelName"]: {"TrainingInputMode": c.get("InputMode", "File")} for c in channels}, indent=2)
    )
    for channel in channels:
        uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
        count = download_uri(s3, uri, Path(paths.channel(channel["ChannelName"])))
        print(f"    channel {channel['ChannelName']}: {count} objects from {uri}", flush=True)
    checkpoint_uri = (request.get("CheckpointConfig") or {}).get("S3Uri")
    if checkpoint_uri:
        restored = download_uri(s3, checkpoint_uri, Path(paths.checkpoint_dir))
        if restored:
            print(f"    checkpoints: {restored} objects restored from {checkpoint_uri}", flush=True)

    env = {**base_env, Env.SM_BASE_DIR: paths.base, "TRAINING_JOB_NAME": job_name}
    env["TRAINING_JOB_ARN"] = str(request.get("TrainingJobArn", ""))
    final_metrics: dict[str, float] = {}

    def on_line(line: str) -> None:
        # SageMaker applies the job's metric definitions to the log; show what they would capture.
        metrics = contract.parse_metric_line(line)
        if metrics is not None:
            final_metrics.update(metrics)
            shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in ("epoch", "mAP50", "mAP50-95") if k in metrics)
            print(f"    metrics: {shown}", flush=True)

    status = run_process(TRAINING_ENTRYPOINT, env, log_dir / f"{job_name}.log", echo=on_line)
    if checkpoint_uri and Path(paths.checkpoint_dir).is_dir():
        _upload_dir(s3, Path(paths.checkpoint_dir), checkpoint_uri)

    output_path = str(request["OutputDataConfig"]["S3OutputPath"]).rstrip("/")
    bucket, prefix = split_s3_uri(f"{output_path}/{job_name}/output/")
    output_data = Path(paths.output_dir) / "data"
    if output_data.is_dir():
        archive = base / "upload" / ARCHIVE_NAME_OUTPUT
        _tar_dir(output_data, archive)
        s3.upload_file(str(archive), bucket, prefix + ARCHIVE_NAME_OUTPUT)
    failure = Path(paths.failure_file)
    model_dir = Path(paths.model_dir)
    if status != 0 or not (model_dir / contract.MODEL_JSON_NAME).is_file():
        reason = failure.read_text().strip() if failure.is_file() else f"AlgorithmError: train exited with {status}"
        return TrainingOutcome(
            "Failed", None, reason, paths, hyperparameters, final_metrics, time.perf_counter() - started
        )
    archive = base / "upload" / contract.MODEL_ARCHIVE_NAME
    _tar_dir(model_dir, archive)
    s3.upload_file(str(archive), bucket, prefix + contract.MODEL_ARCHIVE_NAME)
    artifact = f"s3://{bucket}/{prefix}{contract.MODEL_ARCHIVE_NAME}"
    return TrainingOutcome(
        "Completed", artifact, None, paths, hyperparameters, final_metrics, time.perf_counter() - started
    )


def environment_without(names: Sequence[str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment with ``names`` removed (a job must not inherit the runner's stale values)."""
    source = os.environ if env is None else env
    return {k: v for k, v in source.items() if k not in names}
