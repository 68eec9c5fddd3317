"""Lazily created boto3 clients: nothing talks to AWS (or reads credentials) at import time.

One client per service per execution environment, created on first use and reused across warm
invocations. The endpoint, region and credentials come from boto3's usual environment
(``AWS_ENDPOINT_URL`` points every client at a moto server when the pipeline runs on one machine).
"""

from __future__ import annotations

import functools
from typing import Any

from botocore.config import Config

_RETRIES = Config(retries={"mode": "standard", "max_attempts": 5})
"""Standard retry mode backs off on throttling and 5xx, so transient errors rarely reach the handler."""


@functools.cache
def client(service_name: str) -> Any:
    """The shared client for ``service_name`` (``s3``, ``batch``, ``sagemaker``, ``sns``)."""
    import boto3  # the import is cheap; deferring it keeps the handler modules import-light

    return boto3.client(service_name, config=_RETRIES)  # type: ignore[call-overload]
