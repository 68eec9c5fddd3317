"""Builders shared by the Lambda tests: real-shaped events, uploads, model archives, bundle import.

Each test imports its handler from the folder ``sim2cloud/lambda_bundle.build_lambda_bundle``
stages (the Lambda's own modules, ``shared/`` and the contract), with the same loader the local pipeline
uses (``sim2cloud.local.runner.import_from_bundle``), so a handler importing anything the bundle lacks
fails here.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from sim2cloud.local.runner import FUNCTIONS, LambdaContext, import_from_bundle, import_handler

__all__ = ["FUNCTIONS", "LambdaContext", "import_from_bundle", "import_handler"]  # the Lambda tests import these

REPO_ROOT = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "sim2cloud-test-data"


def bundle_builder() -> Any:
    """``build_lambda_bundle``, the bundler the stacks and the local runner use."""
    from sim2cloud.lambda_bundle import build_lambda_bundle

    return build_lambda_bundle


# --------------------------------------------------------------------------------------
# Events of the real shapes
# --------------------------------------------------------------------------------------
def eventbridge_object_created(bucket: str, key: str, *, size: int, etag: str) -> dict[str, Any]:
    """S3 -> EventBridge ``Object Created``: the key as stored, not URL-encoded."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, "etag": etag, "sequencer": "0064D3901D00059242"},
            "request-id": "XRRTKJXSZQCWNQR1",
            "requester": ACCOUNT,
            "source-ip-address": "192.0.2.1",
            "reason": "PutObject",
        },
    }


def s3_notification(bucket: str, key: str, *, size: int, etag: str) -> dict[str, Any]:
    """A native S3 notification: the key URL-encoded form-style ('+' for space, %2B for '+', UTF-8 %xx)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "sim2cloud",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag, "sequencer": "0A1B2C"},
                },
            }
        ]
    }


def sqs_event(*bodies: dict[str, Any]) -> dict[str, Any]:
    """An SQS-triggered invocation whose record bodies are the given events (as JSON strings)."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "handle",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:render-quiet-period",
                "awsRegion": REGION,
            }
            for body in bodies
        ]
    }


def put(s3: Any, key: str, body: bytes) -> dict[str, Any]:
    """Upload and return the EventBridge event S3 would send for it."""
    response = s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return eventbridge_object_created(BUCKET, key, size=len(body), etag=response["ETag"].strip('"'))


def model_archive(model_json: dict[str, Any] | None) -> bytes:
    """A model.tar.gz as SageMaker tars /opt/ml/model (model.json plus a stand-in ONNX file)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        files = {"model.onnx": b"onnx-bytes"}
        if model_json is not None:
            files["model.json"] = json.dumps(model_json).encode()
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
