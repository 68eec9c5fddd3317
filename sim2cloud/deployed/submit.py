"""``sim2cloud submit DIR --env dev``: send a local batch (``DIR/<class>/<file>`` plus an optional
``DIR/batch.yaml``) to an environment's ``meshes/<batch>/``.

Before anything is uploaded the batch is judged by the render launcher's own code (``judge_batch`` from its
Lambda bundle, with the limits the deployed launcher has): a file the launcher would quarantine, an invalid
batch.yaml or a batch it would not render stops the command with every reason, and nothing is uploaded. The
files go up in key order with batch.yaml LAST, since its arrival tells the launcher the batch is complete
(without one, the launcher starts after its quiet period). The run id is then computed by the launcher's code
from the uploaded objects' keys and ETags: the id the launcher gives the run.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sim2cloud import contract
from sim2cloud.deployed.environment import EnvironmentNotFound, add_environment_arguments, aws_session, lambda_logic

EXIT_REJECTED = 2


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="the batch: <class>/<file> meshes (+ companions), and batch.yaml")
    parser.add_argument("--batch", default=None, help="batch name: meshes/<batch>/ (default: the folder's name)")
    add_environment_arguments(parser)


def local_objects(folder: Path, batch: str, logic: Any) -> tuple[list[Any], dict[str, Path]]:
    """Every file of ``folder`` as the launcher will list it once uploaded: key, size, time, and the MD5 as
    ETag (judging never reads it; the run id is computed from the uploaded objects' real ETags, which differ
    under SSE-KMS). Hidden files are not part of a batch."""
    objects, paths = [], {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        key = contract.mesh_batch_prefix(batch) + relative.as_posix()
        data = path.read_bytes()
        stat = path.stat()
        objects.append(
            logic.StoredObject(
                key=key,
                etag=hashlib.md5(data, usedforsecurity=False).hexdigest(),
                size=stat.st_size,
                last_modified=datetime.fromtimestamp(stat.st_mtime, UTC),
            )
        )
        paths[key] = path
    return objects, paths


def upload_order(keys: list[str], batch: str) -> list[str]:
    """Key order, batch.yaml last (its event closes the batch)."""
    config = contract.batch_config_key(batch)
    return sorted(key for key in keys if key != config) + ([config] if config in keys else [])


def run(args: argparse.Namespace) -> int:
    folder: Path = args.folder
    if not folder.is_dir():
        print(f"sim2cloud submit: {folder} is not a folder", file=sys.stderr)
        return EXIT_REJECTED
    batch = args.batch or folder.resolve().name
    try:
        contract.check_name(batch, "batch name (--batch)")
    except ValueError as err:
        print(f"sim2cloud submit: {err}", file=sys.stderr)
        return EXIT_REJECTED
    logic = lambda_logic("render_launcher")
    try:
        with aws_session(args) as environment:
            return _submit(folder, batch, environment, logic)
    except EnvironmentNotFound as err:
        print(f"sim2cloud submit: {err}", file=sys.stderr)
        return 1


def _submit(folder: Path, batch: str, environment: Any, logic: Any) -> int:
    import boto3

    objects, paths = local_objects(folder, batch, logic)
    if not objects:
        print(f"sim2cloud submit: {folder} holds no files (expected <class>/<file>)", file=sys.stderr)
        return EXIT_REJECTED
    limits = logic.BatchLimits.from_env(environment.launcher_environment)
    verdict = logic.judge_batch(objects, lambda obj: paths[obj.key].read_bytes(), limits)
    if verdict.review.rejected or verdict.no_submit_reason:
        print(f"batch {batch!r} rejected before upload (the render launcher's rules); nothing was uploaded:")
        for rejection in verdict.review.rejected:
            print(f"  {paths[rejection.key]}: {rejection.reason}")
        if verdict.no_submit_reason:
            print(f"  batch: {verdict.no_submit_reason}")
        return EXIT_REJECTED

    s3 = boto3.client("s3")
    bucket = environment.bucket
    already = logic.list_batch(s3, bucket, batch)
    if already:
        # Nothing uploaded is ever deleted, so adding to an existing batch would change a run behind its back.
        print(
            f"sim2cloud submit: s3://{bucket}/{contract.mesh_batch_prefix(batch)} already holds {len(already)} "
            "objects; submit under another --batch name",
            file=sys.stderr,
        )
        return EXIT_REJECTED
    print(
        f"batch {batch!r}: {len(verdict.review.meshes)} meshes, {len(verdict.review.companions)} companion files, "
        f"{verdict.frames} frames in {verdict.shards} shards -> s3://{bucket}/{contract.mesh_batch_prefix(batch)}",
        flush=True,
    )
    order = upload_order(list(paths), batch)
    for number, key in enumerate(order, start=1):
        with paths[key].open("rb") as body:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        print(f"  [{number}/{len(order)}] {key}", flush=True)
    run_id = logic.run_id_for(batch, logic.list_batch(s3, bucket, batch))
    if contract.batch_config_key(batch) not in paths:
        print(f"no {contract.BATCH_CONFIG_NAME}: the render launcher starts the batch after its quiet period")
    print(f"run {run_id}")
    print(f"follow it with: sim2cloud status {run_id} --env {environment.name}")
    return 0
