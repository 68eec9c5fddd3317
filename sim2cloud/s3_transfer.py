"""S3 transfers, written once for the Lambdas, the render jobs, the local executor and the CLI.

Stdlib only: the caller passes its boto3 S3 client (so this module ships as it is in the Lambda bundles and the
Isaac Sim image, beside the contract). One rule says what "the object is not there" looks like
(:func:`is_not_found`), one parser splits ``s3://bucket/key`` URIs, and one walk lists, downloads and uploads
keys under a prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any, Final, TypeVar
from urllib.parse import urlparse

NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})
"""What S3 answers for a missing object: GetObject says ``NoSuchKey``, HeadObject (no body) ``404``/``NotFound``."""

DOWNLOAD_THREADS: Final = 8
"""Objects fetched at once by :func:`download_prefix`: a dataset is thousands of small files, where one request
at a time spends its time waiting on round trips (boto3 clients are thread-safe)."""

DOWNLOAD_CHUNK_BYTES: Final = 1 << 20
"""Bytes read from a GetObject body at a time while writing it to disk."""

T = TypeVar("T")
Progress = Callable[[Sequence[T]], Iterable[T]]
"""Wraps the list of items about to be transferred, e.g. ``lambda items: tqdm(items, ...)``."""


def is_not_found(error: BaseException) -> bool:
    """True when ``error`` (a botocore ClientError) says the object or key does not exist."""
    response = getattr(error, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") in NOT_FOUND_CODES


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; the key may be empty (a whole bucket) or a prefix."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def iter_objects(s3: Any, bucket: str, prefix: str = "") -> Iterator[dict[str, Any]]:
    """Every object under ``prefix`` (ListObjectsV2 items, folder placeholders included), in key order."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield dict(item)


def etag(item: dict[str, Any]) -> str:
    """An object's ETag without the quotes S3 puts around it."""
    return str(item["ETag"]).strip('"')


def relative_key(key: str, prefix: str) -> PurePosixPath | None:
    """The part of ``key`` below ``prefix`` as a safe relative path (the key's own name when ``prefix`` is the
    whole key); None for folder placeholders and keys that would escape the destination."""
    if key.endswith("/"):
        return None
    relative = PurePosixPath(key[len(prefix) :].lstrip("/") or PurePosixPath(key).name)
    if not relative.parts or relative.is_absolute() or ".." in relative.parts:
        return None
    return relative


def download_prefix(
    s3: Any, bucket: str, prefix: str, dest: Path, *, progress: Progress[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Download every object under ``prefix`` (or the single object ``prefix`` names) into ``dest`` keeping the
    relative layout, :data:`DOWNLOAD_THREADS` at a time; return the objects downloaded. Progress advances in
    listing order; the first failure is raised and the downloads not yet started are cancelled."""
    objects = [item for item in iter_objects(s3, bucket, prefix) if relative_key(item["Key"], prefix)]

    def fetch(item: dict[str, Any]) -> None:
        relative = relative_key(item["Key"], prefix)
        assert relative is not None
        target = dest.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        # One GetObject per object: boto3's download_file first asks HeadObject for the size it already has
        # from the listing, doubling the requests (a demo dataset: 6,400 instead of 3,200). Written beside the
        # target and renamed, so a failed download never leaves a partial file under the target's name.
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]
        partial = target.with_name(f".{target.name}.part")
        try:
            with partial.open("wb") as handle:
                for chunk in body.iter_chunks(DOWNLOAD_CHUNK_BYTES):
                    handle.write(chunk)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)

    pool = ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS, thread_name_prefix="s3-download")
    try:
        pending = [pool.submit(fetch, item) for item in objects]
        for _item, future in zip(progress(objects) if progress else objects, pending, strict=True):
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return objects


def upload_files(
    s3: Any,
    bucket: str,
    source: Path,
    prefix: str,
    relative_paths: Sequence[str],
    *,
    progress: Progress[str] | None = None,
) -> None:
    """Upload ``source/<relative>`` to ``<prefix><relative>`` for each relative path, in the order given."""
    for relative in progress(relative_paths) if progress else relative_paths:
        s3.upload_file(str(source / relative), bucket, prefix + relative)


def files_below(source: Path) -> list[str]:
    """The files under ``source`` as sorted POSIX paths relative to it."""
    return sorted(path.relative_to(source).as_posix() for path in source.rglob("*") if path.is_file())
