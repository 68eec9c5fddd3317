"""Find the S3 objects an event is about, with each key exactly as stored in the bucket.

Delivery paths the functions accept, and how each carries the key:

* **EventBridge** ``Object Created`` (``source`` ``aws.s3``): ``detail.object.key`` is the key as stored
  (characters such as ``:`` and spaces arrive as-is), so it is used unchanged.
* **Native S3 notifications** (``{"Records": [{"s3": ...}]}``, directly or via SQS/SNS): the key is
  URL-encoded form-style (``+`` for a space, ``%2B`` for a plus, ``%xx`` UTF-8 bytes for other
  characters), so it is decoded with :func:`urllib.parse.unquote_plus`.
* **SQS** records (``eventSource`` ``aws:sqs``) whose body is either of the above as JSON (the render
  launcher's quiet-period queue receives EventBridge events this way).

An S3 ``s3:TestEvent`` (sent when a notification is configured) holds no object and yields nothing.
Anything else raises :class:`UnrecognizedEvent` naming what was seen, so a wiring mistake is loud.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_plus

EVENTBRIDGE: Final = "eventbridge"
S3_NOTIFICATION: Final = "s3-notification"


class UnrecognizedEvent(ValueError):
    """The event is not one of the shapes listed in this module's docstring."""


@dataclass(frozen=True)
class S3ObjectRef:
    """One object an event reports: bucket and key as stored, plus what the event says about it."""

    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None
    delivery: str = EVENTBRIDGE
    """How the object was reported (:data:`EVENTBRIDGE` or :data:`S3_NOTIFICATION`)."""

    @property
    def is_folder_placeholder(self) -> bool:
        """Consoles create ``folder/`` objects of size 0 to show a folder; they hold no data."""
        return self.key.endswith("/")


def _eventbridge_object(event: Mapping[str, Any]) -> S3ObjectRef:
    detail = event.get("detail") or {}
    try:
        bucket = detail["bucket"]["name"]
        obj = detail["object"]
        key = obj["key"]
    except (KeyError, TypeError) as err:
        raise UnrecognizedEvent(f"EventBridge S3 event without detail.bucket.name / detail.object.key: {err}") from err
    size = obj.get("size")
    return S3ObjectRef(
        bucket=str(bucket),
        key=str(key),
        etag=obj.get("etag"),
        size=int(size) if size is not None else None,
        delivery=EVENTBRIDGE,
    )


def _notification_object(record: Mapping[str, Any]) -> S3ObjectRef:
    try:
        bucket = record["s3"]["bucket"]["name"]
        obj = record["s3"]["object"]
        encoded_key = obj["key"]
    except (KeyError, TypeError) as err:
        raise UnrecognizedEvent(f"S3 notification record without s3.bucket.name / s3.object.key: {err}") from err
    size = obj.get("size")
    return S3ObjectRef(
        bucket=str(bucket),
        key=unquote_plus(str(encoded_key), encoding="utf-8", errors="strict"),
        etag=obj.get("eTag"),
        size=int(size) if size is not None else None,
        delivery=S3_NOTIFICATION,
    )


def _describe(message: Any) -> str:
    if isinstance(message, Mapping):
        return f"keys {sorted(message)[:8]}"
    return type(message).__name__


def s3_objects_in(message: Any) -> list[S3ObjectRef]:
    """The objects one event or one record reports, keys exactly as stored.

    ``message`` may be an EventBridge event, a native S3 notification event or one of its records, an
    SQS record wrapping either, or an SNS notification/record wrapping an S3 notification.
    """
    if not isinstance(message, Mapping):
        raise UnrecognizedEvent(f"expected a JSON object, got {_describe(message)}")
    if "detail-type" in message and message.get("source") == "aws.s3":
        return [_eventbridge_object(message)]
    if message.get("Event") == "s3:TestEvent":
        return []
    if "s3" in message:
        return [_notification_object(message)]
    if message.get("eventSource") == "aws:sqs" and "body" in message:
        return s3_objects_in(_json_body(message["body"], "SQS record body"))
    if message.get("EventSource") == "aws:sns" and "Sns" in message:
        return s3_objects_in(_json_body(message["Sns"].get("Message"), "SNS message"))
    if message.get("Type") == "Notification" and "Message" in message:
        return s3_objects_in(_json_body(message["Message"], "SNS message"))
    records = message.get("Records")
    if isinstance(records, list):
        return [ref for record in records for ref in s3_objects_in(record)]
    raise UnrecognizedEvent(f"not an S3 event of a known shape ({_describe(message)})")


def _json_body(body: Any, what: str) -> Any:
    if not isinstance(body, str):
        raise UnrecognizedEvent(f"{what} is not a string")
    try:
        return json.loads(body)
    except json.JSONDecodeError as err:
        raise UnrecognizedEvent(f"{what} is not JSON ({err.msg} at position {err.pos})") from err


def sqs_records(event: Any) -> list[Mapping[str, Any]] | None:
    """The records of an SQS-triggered invocation, or None when the event did not come from SQS."""
    if not isinstance(event, Mapping):
        return None
    records = event.get("Records")
    if (
        isinstance(records, list)
        and records
        and all(isinstance(record, Mapping) and record.get("eventSource") == "aws:sqs" for record in records)
    ):
        return records
    return None


def not_ours(ref: S3ObjectRef, bucket: str, log: logging.Logger) -> str | None:
    """Why an object event is none of this pipeline's business (logged to ``log``), or None when it is: an
    event of another bucket, or a console's folder placeholder."""
    if ref.bucket != bucket:
        log.warning("ignored: event for another bucket", extra={"bucket": ref.bucket, "key": ref.key})
        return f"bucket {ref.bucket!r} is not {bucket!r}"
    if ref.is_folder_placeholder:
        log.info("ignored: folder placeholder", extra={"key": ref.key})
        return "folder placeholder"
    return None
