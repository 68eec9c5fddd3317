"""Builders shared by the Lambda tests: real-shaped events, uploads, model archives, bundle import.

Each test imports its handler from the folder ``stacks/constructs/lambda_bundle.build_lambda_bundle``
stages (the Lambda's own modules, ``shared/`` and the contract), so a handler importing anything the
bundle lacks fails here. The repository's ``sim2cloud`` is hidden while the bundle is imported and
restored afterwards.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import sys
import tarfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

REPO_ROOT = Path(__file__).resolve().parents[3]
FUNCTIONS = ("render_launcher", "training_launcher", "model_gate")
REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "sim2cloud-test-data"
_BUNDLE_MODULE_ROOTS = ("handler", "shared", "sim2cloud", *(f"{name}_logic" for name in FUNCTIONS))


def bundle_builder() -> Any:
    """``build_lambda_bundle`` from the CDK code (loaded by path: ``stacks`` is not an installed package)."""
    path = REPO_ROOT / "stacks" / "constructs" / "lambda_bundle.py"
    spec = importlib.util.spec_from_file_location("sim2cloud_lambda_bundle_for_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_lambda_bundle


def _is_bundle_module(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in _BUNDLE_MODULE_ROOTS)


def import_from_bundle(bundle: Path, *names: str) -> list[ModuleType]:
    """Import modules from ``bundle`` as Lambda would (bundle root first on sys.path), fresh each call.

    The repository's own ``sim2cloud`` (and any earlier bundle's modules) are hidden meanwhile and put
    back afterwards; the returned modules keep working, holding references to what they imported.
    """
    saved = {name: module for name, module in sys.modules.items() if _is_bundle_module(name)}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(bundle))
    try:
        modules = [importlib.import_module(name) for name in names]
        if "sim2cloud" in sys.modules:
            assert Path(sys.modules["sim2cloud"].__file__ or "").parent == bundle / "sim2cloud"
        for module in modules:
            assert Path(module.__file__ or "").is_relative_to(bundle)
        return modules
    finally:
        sys.path.remove(str(bundle))
        for name in [name for name in sys.modules if _is_bundle_module(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


def import_handler(bundle: Path) -> ModuleType:
    """The bundle's ``handler`` module, with its logic module reachable as ``handler.logic``."""
    handler, logic = import_from_bundle(bundle, "handler", f"{bundle.name}_logic")
    handler.logic = logic  # type: ignore[attr-defined]
    return handler


class LambdaContext:
    """The attributes of the Lambda context object the handlers read."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())


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
