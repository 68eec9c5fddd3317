"""The cloud entrypoints the AWS Batch jobs run: ``python -m isaac_jobs.cloud shard|finalize``.

Same code as ``sim2cloud render`` / ``sim2cloud finalize``, with S3 in place of local folders:

* ``shard``: downloads ``meshes/<batch>/`` (and the optional render config object) into a work folder,
  takes the batch's USD assets from ``assets/<batch>/`` (or prepares and uploads them there, once per batch:
  :func:`ensure_assets`), renders shard ``k`` of ``N`` with :func:`isaac_jobs.shards.render_prepared`, and
  uploads it under
  ``renders/<run>/shard-<k>/`` with the marker object (:func:`sim2cloud.contract.shard_marker_key`)
  LAST, so a shard on S3 is complete or absent. ``k`` is ``AWS_BATCH_JOB_ARRAY_INDEX`` (0 when the
  job is not an array job). A shard whose marker already exists is left alone (Batch retries are no-ops).
* ``finalize``: refuses, naming them, if any of the ``N`` shard markers is missing; otherwise downloads
  the shards, merges them with :func:`isaac_jobs.dataset.finalize` and uploads ``datasets/<run>/`` with
  ``manifest.json`` LAST (its creation is what starts training). An existing manifest makes it a no-op.

Every setting comes from the environment variables named in :class:`sim2cloud.contract.Env`, parsed and
checked once by :class:`ShardSettings` / :class:`FinalizeSettings` (all problems reported together).
The S3 endpoint is boto3's: ``AWS_ENDPOINT_URL`` points it at a moto server locally.
Nothing under ``meshes/`` is ever written or deleted; the only deletions are stale objects of this very
shard or dataset left by an earlier failed attempt (always under ``renders/`` or ``datasets/``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Final

from isaac_jobs.backends import BACKENDS
from sim2cloud import contract, s3_transfer
from sim2cloud.contract import Env
from sim2cloud.env_reader import EnvReader, SettingsError
from sim2cloud.s3_transfer import is_not_found, iter_objects

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from isaac_jobs.prepare import PreparedBatch

log = logging.getLogger(__name__)

DEFAULT_BACKEND: Final = "gl"
"""Used when ``SIM2CLOUD_RENDER_BACKEND`` is unset; the Isaac Sim image's job definition sets ``isaac``."""
MARKER_FILES_KEY: Final = "uploaded_files"
"""Key the uploaded marker adds to the shard's own marker JSON: every object of the shard (relative key,
bytes), so a reader can check it has the whole shard."""
MARKER_SOURCES_KEY: Final = "source_objects"
"""Key the uploaded marker adds: the mesh objects the shard was rendered from (key, ETag, bytes)."""


class MissingShardsError(RuntimeError):
    """Finalize found fewer complete shards than the run has."""


# --------------------------------------------------------------------------------------
# Settings (one typed parse of the environment)
# --------------------------------------------------------------------------------------
def _work_dir(reader: EnvReader) -> Path:
    raw = reader.optional_text(Env.WORK_DIR)
    return Path(raw) if raw else Path(tempfile.gettempdir())


@dataclass(frozen=True)
class ShardSettings:
    """What one render shard job needs, from :class:`sim2cloud.contract.Env` variables."""

    bucket: str
    """``SIM2CLOUD_DATA_BUCKET``: the data bucket."""
    batch: str
    """``SIM2CLOUD_BATCH_ID``: renders ``meshes/<batch>/``."""
    run: str
    """``SIM2CLOUD_RUN_ID``: writes ``renders/<run>/shard-<k>/``."""
    shard: int
    """``AWS_BATCH_JOB_ARRAY_INDEX`` (set by Batch for array jobs); 0 when absent."""
    shards: int
    """``SIM2CLOUD_SHARD_COUNT``: N, the array size (1 or more)."""
    frames: int | None
    """``SIM2CLOUD_FRAMES``: total frames of the run; unset keeps the scene spec's value."""
    backend: str
    """``SIM2CLOUD_RENDER_BACKEND``: ``gl`` or ``isaac`` (default ``gl``)."""
    config_key: str | None
    """``SIM2CLOUD_RENDER_CONFIG_KEY``: optional S3 key of a scene-spec YAML in the same bucket."""
    work_dir: Path
    """``SIM2CLOUD_WORK_DIR``: scratch space (instance storage on Batch); default the system temp dir."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ShardSettings:
        reader = EnvReader(os.environ if env is None else env)
        bucket = reader.text(Env.DATA_BUCKET)
        batch = reader.user_name(Env.BATCH_ID, "batch id")
        run = reader.identifier(Env.RUN_ID, "run id")
        shards = reader.integer(Env.SHARD_COUNT, minimum=1) or 1
        shard = reader.integer(Env.ARRAY_INDEX, default=0, minimum=0)
        if shard >= shards and not reader.problems:
            reader.problems.append(f"{Env.ARRAY_INDEX}={shard} is outside 0..{shards - 1} ({Env.SHARD_COUNT})")
        frames = reader.integer(Env.FRAMES, default=-1, minimum=1)
        backend = reader.optional_text(Env.RENDER_BACKEND) or DEFAULT_BACKEND
        if backend not in BACKENDS:
            reader.problems.append(f"{Env.RENDER_BACKEND}={backend!r} is not one of {list(BACKENDS)}")
        config_key = reader.optional_text(Env.RENDER_CONFIG_KEY)
        if config_key is not None and (config_key.endswith("/") or ".." in PurePosixPath(config_key).parts):
            reader.problems.append(f"{Env.RENDER_CONFIG_KEY}={config_key!r} is not an object key")
        work_dir = _work_dir(reader)
        reader.raise_if_problems("render shard job")
        return cls(
            bucket=bucket,
            batch=batch,
            run=run,
            shard=shard,
            shards=shards,
            frames=None if frames in (None, -1) else frames,
            backend=backend,
            config_key=config_key,
            work_dir=work_dir,
        )


@dataclass(frozen=True)
class FinalizeSettings:
    """What the finalize job needs, from :class:`sim2cloud.contract.Env` variables."""

    bucket: str
    """``SIM2CLOUD_DATA_BUCKET``."""
    run: str
    """``SIM2CLOUD_RUN_ID``: merges ``renders/<run>/`` into ``datasets/<run>/``."""
    shards: int
    """``SIM2CLOUD_SHARD_COUNT``: every shard 0..N-1 must be complete."""
    work_dir: Path
    """``SIM2CLOUD_WORK_DIR``: scratch space; default the system temp dir."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FinalizeSettings:
        reader = EnvReader(os.environ if env is None else env)
        bucket = reader.text(Env.DATA_BUCKET)
        run = reader.identifier(Env.RUN_ID, "run id")
        shards = reader.integer(Env.SHARD_COUNT, minimum=1) or 1
        work_dir = _work_dir(reader)
        reader.raise_if_problems("finalize job")
        return cls(bucket=bucket, run=run, shards=shards, work_dir=work_dir)


# --------------------------------------------------------------------------------------
# S3 helpers
# --------------------------------------------------------------------------------------
def s3_client() -> S3Client:
    import boto3

    # boto3 reads AWS_ENDPOINT_URL (moto locally), region and credentials from the environment.
    return boto3.client("s3")


def object_exists(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as err:
        if is_not_found(err):
            return False
        raise
    return True


def download_prefix(
    s3: S3Client, bucket: str, prefix: str, dest: Path, *, progress: bool = True
) -> list[dict[str, Any]]:
    """Download every object under ``prefix`` into ``dest`` keeping the relative layout; return the objects."""
    from tqdm import tqdm

    return s3_transfer.download_prefix(
        s3,
        bucket,
        prefix,
        dest,
        progress=lambda items: tqdm(items, desc=f"download s3://{bucket}/{prefix}", unit="file", disable=not progress),
    )


def upload_tree(
    s3: S3Client,
    bucket: str,
    source: Path,
    prefix: str,
    *,
    last: str,
    last_body: bytes | None = None,
    progress: bool = True,
    delete_stale: bool = True,
) -> list[str]:
    """Upload ``source`` under ``prefix`` with the file named ``last`` uploaded after every other object.

    ``last_body`` replaces that file's content when given. With ``delete_stale``, objects already under
    ``prefix`` that this upload does not write (stale leftovers of an earlier failed attempt) are deleted
    before ``last`` goes up. Returns the relative keys uploaded, ``last`` included and last.
    """
    from tqdm import tqdm

    if not prefix.startswith((contract.RENDERS_PREFIX, contract.DATASETS_PREFIX, contract.ASSETS_PREFIX)):
        raise ValueError(f"refusing to write outside renders/, datasets/ or assets/: {prefix!r}")
    relative = s3_transfer.files_below(source)
    if last not in relative:
        raise FileNotFoundError(f"{source}: {last} is missing, so the upload would never be complete")
    ordered = [r for r in relative if r != last]
    s3_transfer.upload_files(
        s3,
        bucket,
        source,
        prefix,
        ordered,
        progress=lambda items: tqdm(items, desc=f"upload s3://{bucket}/{prefix}", unit="file", disable=not progress),
    )
    written = {prefix + r for r in relative}
    stale = [obj["Key"] for obj in iter_objects(s3, bucket, prefix) if obj["Key"] not in written and delete_stale]
    for key in stale:
        log.info("deleting stale s3://%s/%s from an earlier attempt", bucket, key)
        s3.delete_object(Bucket=bucket, Key=key)
    if last_body is None:
        s3.upload_file(str(source / last), bucket, prefix + last)
    else:
        s3.put_object(Bucket=bucket, Key=prefix + last, Body=last_body, ContentType="application/json")
    return [*ordered, last]


# --------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------
def run_shard_job(settings: ShardSettings, *, s3: S3Client | None = None, progress: bool = True) -> str:
    """Render and upload one shard; return its marker key. A shard already complete on S3 is left alone."""
    from isaac_jobs.shards import render_prepared
    from isaac_jobs.spec import load_spec

    s3 = s3 or s3_client()
    marker_key = contract.shard_marker_key(settings.run, settings.shard)
    if object_exists(s3, settings.bucket, marker_key):
        log.info("s3://%s/%s exists: shard %d is already complete", settings.bucket, marker_key, settings.shard)
        return marker_key
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(
        tempfile.mkdtemp(prefix=f"{settings.run}-{contract.shard_name(settings.shard)}-", dir=settings.work_dir)
    )
    try:
        meshes_dir = work / "meshes"
        batch_prefix = contract.mesh_batch_prefix(settings.batch)
        sources = download_prefix(s3, settings.bucket, batch_prefix, meshes_dir, progress=progress)
        if not sources:
            raise FileNotFoundError(f"s3://{settings.bucket}/{batch_prefix} holds no objects")
        config_path: Path | None = None
        if settings.config_key:
            config_path = work / "render-config.yaml"
            s3.download_file(settings.bucket, settings.config_key, str(config_path))
        overrides = {"frames": settings.frames} if settings.frames is not None else None
        spec = load_spec(config_path, overrides)
        prepared = ensure_assets(s3, settings.bucket, settings.batch, meshes_dir, work / "assets", progress=progress)
        for line in prepared.error_lines():
            log.warning("mesh skipped: %s", line)
        result = render_prepared(
            prepared,
            work / "out",
            spec=spec,
            shard=settings.shard,
            shards=settings.shards,
            backend=settings.backend,
            progress=progress,
            assets_root=f"s3://{settings.bucket}/{contract.asset_batch_prefix(settings.batch)}",
        )
        shard_dir = Path(result.path)
        marker = _marker_with_listing(shard_dir, batch_prefix, sources)
        prefix = contract.render_shard_prefix(settings.run, settings.shard)
        upload_tree(
            s3,
            settings.bucket,
            shard_dir,
            prefix,
            last=contract.SHARD_COMPLETE_MARKER,
            last_body=marker,
            progress=progress,
        )
        log.info("shard %d of %d uploaded to s3://%s/%s", settings.shard, settings.shards, settings.bucket, prefix)
        return marker_key
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_assets(
    s3: S3Client, bucket: str, batch: str, meshes_dir: Path, assets_dir: Path, *, progress: bool = True
) -> PreparedBatch:
    """The batch's USD assets and plan, prepared once per batch and shared by every shard through S3.

    When ``assets/<batch>/batch-plan.json`` exists and its fingerprint matches the downloaded meshes (same
    bytes), the assets are downloaded and reused as they are. Otherwise this shard prepares them and uploads
    them under ``assets/<batch>/``, the plan LAST, so a plan on S3 always has all of its assets. Shards that
    start while no plan exists yet each prepare the same bytes (the first finished upload serves every later
    shard and every later run of an unchanged batch).
    """
    from isaac_jobs.prepare import batch_fingerprint, prepare_batch, read_prepared

    prefix = contract.asset_batch_prefix(batch)
    plan_key = contract.asset_plan_key(batch)
    if object_exists(s3, bucket, plan_key):
        stored = json.loads(s3.get_object(Bucket=bucket, Key=plan_key)["Body"].read())
        if stored.get("fingerprint") == batch_fingerprint(meshes_dir):
            download_prefix(s3, bucket, prefix, assets_dir, progress=progress)
            prepared = read_prepared(assets_dir)
            if prepared is not None and all(
                _sha256_matches(assets_dir / f.path, f.sha256) for a in prepared.assets for f in a.files
            ):
                log.info("reusing the batch's USD assets at s3://%s/%s", bucket, prefix)
                prepared.reused = True
                return prepared
            log.warning("s3://%s/%s is incomplete or altered: preparing the batch again", bucket, prefix)
            shutil.rmtree(assets_dir, ignore_errors=True)
    prepared = prepare_batch(meshes_dir, assets_dir, progress=progress)
    # Assets of an earlier version of the batch are left in place (the plan lists what belongs to it): a
    # shard job may write under assets/ but never deletes there.
    upload_tree(s3, bucket, assets_dir, prefix, last=contract.ASSET_PLAN_NAME, progress=progress, delete_stale=False)
    log.info("%d USD assets uploaded to s3://%s/%s", len(prepared.assets), bucket, prefix)
    return prepared


def _sha256_matches(path: Path, expected: str) -> bool:
    return path.is_file() and contract.file_sha256(path) == expected


def _marker_with_listing(
    shard_dir: Path,
    batch_prefix: str,
    sources: Sequence[Mapping[str, Any]],
) -> bytes:
    """The shard's own marker JSON (batch.yaml's training section included) plus the list of its files and the
    mesh objects it came from."""
    marker_path = shard_dir / contract.SHARD_COMPLETE_MARKER
    try:
        marker: dict[str, Any] = json.loads(marker_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise RuntimeError(f"{marker_path}: the shard writer's marker is unreadable ({err})") from err
    marker[MARKER_FILES_KEY] = [
        {"key": p.relative_to(shard_dir).as_posix(), "bytes": p.stat().st_size}
        for p in sorted(shard_dir.rglob("*"))
        if p.is_file() and p != marker_path
    ]
    marker[MARKER_SOURCES_KEY] = [
        {
            "key": str(obj["Key"]),
            "etag": str(obj.get("ETag", "")).strip('"'),
            "bytes": int(obj.get("Size", 0)),
        }
        for obj in sources
        if obj["Key"].startswith(batch_prefix)
    ]
    return json.dumps(marker, indent=2, sort_keys=True).encode("utf-8")


def missing_shards(s3: S3Client, bucket: str, run: str, shards: int) -> list[int]:
    """Shard indices 0..shards-1 whose marker object does not exist."""
    present = {obj["Key"] for obj in iter_objects(s3, bucket, contract.render_run_prefix(run))}
    return [k for k in range(shards) if contract.shard_marker_key(run, k) not in present]


def run_finalize_job(
    settings: FinalizeSettings, *, s3: S3Client | None = None, progress: bool = True
) -> dict[str, Any]:
    """Merge the run's complete shards into ``datasets/<run>/`` (manifest.json last); return the manifest."""
    from isaac_jobs.dataset import finalize

    s3 = s3 or s3_client()
    manifest_key = contract.dataset_manifest_key(settings.run)
    if object_exists(s3, settings.bucket, manifest_key):
        log.info("s3://%s/%s exists: the dataset is already final", settings.bucket, manifest_key)
        body = s3.get_object(Bucket=settings.bucket, Key=manifest_key)["Body"].read()
        existing: dict[str, Any] = json.loads(body)
        return existing
    missing = missing_shards(s3, settings.bucket, settings.run, settings.shards)
    if missing:
        names = ", ".join(
            f"{contract.shard_name(k)} (s3://{settings.bucket}/{contract.shard_marker_key(settings.run, k)})"
            for k in missing
        )
        raise MissingShardsError(
            f"run {settings.run}: {len(missing)} of {settings.shards} shards are not complete: {names}"
        )
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{settings.run}-finalize-", dir=settings.work_dir))
    try:
        shard_dirs: list[Path] = []
        for k in range(settings.shards):
            shard_dir = work / "shards" / contract.shard_name(k)
            download_prefix(
                s3, settings.bucket, contract.render_shard_prefix(settings.run, k), shard_dir, progress=progress
            )
            _check_listing(shard_dir)
            shard_dirs.append(shard_dir)
        out_dir = work / "dataset"
        # Every shard rendered the same batch snapshot; the first marker's list of mesh objects (key, ETag,
        # size) goes into the manifest so the dataset's lineage names the exact uploads it came from.
        first_marker = json.loads((shard_dirs[0] / contract.SHARD_COMPLETE_MARKER).read_text(encoding="utf-8"))
        lineage = {
            "run": settings.run,
            "bucket": settings.bucket,
            MARKER_SOURCES_KEY: first_marker.get(MARKER_SOURCES_KEY, []),
        }
        manifest = finalize(shard_dirs, out_dir, expected_shards=settings.shards, extra_manifest=lineage)
        prefix = contract.dataset_prefix(settings.run)
        upload_tree(s3, settings.bucket, out_dir, prefix, last=contract.DATASET_MANIFEST_NAME, progress=progress)
        log.info("dataset uploaded to s3://%s/%s", settings.bucket, prefix)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_listing(shard_dir: Path) -> None:
    """Every file the uploaded marker lists must have been downloaded, at its size."""
    marker = json.loads((shard_dir / contract.SHARD_COMPLETE_MARKER).read_text(encoding="utf-8"))
    problems = []
    for entry in marker.get(MARKER_FILES_KEY, []):
        path = shard_dir / entry["key"]
        if not path.is_file():
            problems.append(f"{entry['key']} is missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"{entry['key']} has {path.stat().st_size} bytes, marker says {entry['bytes']}")
    if problems:
        raise MissingShardsError(f"{shard_dir.name}: " + "; ".join(problems))


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m isaac_jobs.cloud",
        description="AWS Batch render entrypoints; settings come from the SIM2CLOUD_* environment variables.",
    )
    parser.add_argument("mode", choices=("shard", "finalize"), help="render one shard, or merge all shards")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The job's entry: off a terminal (Batch, CloudWatch) its output is JSON lines, progress a line every few
    seconds (:func:`sim2cloud.job_log.job_output`); on a terminal it stays human-readable."""
    args = build_parser().parse_args(argv)
    from sim2cloud.job_log import job_output

    with job_output(f"{args.mode}-job", level=os.environ.get(Env.LOG_LEVEL, "INFO")):
        return _run(args.mode, progress=not args.no_progress)


def _run(mode: str, *, progress: bool) -> int:
    from isaac_jobs.backends import BackendUnavailableError
    from isaac_jobs.batch import BatchConfigError
    from isaac_jobs.dataset import ShardIncompleteError
    from isaac_jobs.prepare import NoValidMeshesError
    from isaac_jobs.spec import SpecError

    try:
        if mode == "shard":
            run_shard_job(ShardSettings.from_env(), progress=progress)
        else:
            run_finalize_job(FinalizeSettings.from_env(), progress=progress)
    except (SettingsError, SpecError) as err:
        log.error("%s", err)
        return 2
    # Failures whose message is the whole story (a traceback would only bury it in the job log).
    except (
        MissingShardsError,
        ShardIncompleteError,
        NoValidMeshesError,
        BackendUnavailableError,
        BatchConfigError,
        FileNotFoundError,
    ) as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
