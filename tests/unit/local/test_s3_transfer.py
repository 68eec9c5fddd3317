"""The one S3 download walk (sim2cloud/s3_transfer.py), against moto's S3: every object lands at its relative
path with its bytes, several at a time, progress sees each object once, and keys that would escape the
destination or are folder placeholders are skipped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sim2cloud import s3_transfer

BUCKET = "transfer-test"
PREFIX = "datasets/run-1/"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_download_prefix_keeps_layout_and_bytes_of_every_object(s3: Any, tmp_path: Path) -> None:
    written = {
        f"{split}/{index:04d}.txt": f"{split} {index}".encode() for split in ("train", "val") for index in range(40)
    }
    for relative, body in written.items():
        s3.put_object(Bucket=BUCKET, Key=PREFIX + relative, Body=body)
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "empty-folder/", Body=b"")  # a console "folder": nothing to write
    s3.put_object(Bucket=BUCKET, Key="datasets/run-10/other.txt", Body=b"not under the prefix with its slash")
    seen: list[str] = []

    def progress(items: Sequence[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        for item in items:
            seen.append(item["Key"])
            yield item

    objects = s3_transfer.download_prefix(s3, BUCKET, PREFIX, tmp_path / "out", progress=progress)

    assert sorted(item["Key"] for item in objects) == sorted(PREFIX + relative for relative in written)
    assert sorted(seen) == sorted(PREFIX + relative for relative in written)  # each once, in listing order
    got = {
        p.relative_to(tmp_path / "out").as_posix(): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()
    }
    assert got == written


def test_a_failed_download_is_raised(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key=PREFIX + "a.txt", Body=b"a")
    (tmp_path / "out").write_text("a file where the folder should be")
    with pytest.raises(OSError):
        s3_transfer.download_prefix(s3, BUCKET, PREFIX, tmp_path / "out")
