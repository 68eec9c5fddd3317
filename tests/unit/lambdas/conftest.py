"""Fixtures for the Lambda tests: handlers imported from real bundles, and moto."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

# The test modules import their builders from lambda_test_support beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from lambda_test_support import BUCKET, FUNCTIONS, REGION, bundle_builder, import_handler


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lambda-bundles")
    build = bundle_builder()
    return {name: build(name, root) for name in FUNCTIONS}


@pytest.fixture
def load_handler(bundles: dict[str, Path]) -> Callable[[str], ModuleType]:
    """``load_handler("render_launcher")``: a freshly imported handler (settings and clients not yet built)."""
    return lambda name: import_handler(bundles[name])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for every client created inside the test; Batch jobs without Docker (moto's simple Batch)."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client
