"""Render launcher Lambda entry point: parse the delivery, hand each S3 object to the logic, report.

Two delivery shapes (see ``render_launcher_logic`` for the batching rule):

* SQS (the quiet-period queue): each record's body is an EventBridge ``Object Created`` event. Records
  that fail are returned as ``batchItemFailures`` so SQS redelivers only those (the event source mapping
  enables ``ReportBatchItemFailures``); the others are deleted.
* EventBridge directly (``meshes/<batch>/batch.yaml``): a failure raises, so Lambda's asynchronous retry
  and the function's dead-letter queue take over.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cache
from typing import Any

from render_launcher_logic import RenderLauncher, RenderLauncherSettings, RunBusy
from shared import aws_clients
from shared.s3_events import s3_objects_in, sqs_records
from shared.structured_log import get_logger, invocation_context, log_context

log = get_logger("sim2cloud.render_launcher")


@cache
def _launcher() -> RenderLauncher:
    # Parsed once per execution environment; a bad environment fails every invocation with one clear error.
    return RenderLauncher(
        RenderLauncherSettings.from_env(os.environ), aws_clients.client("s3"), aws_clients.client("batch")
    )


def _handle_message(launcher: RenderLauncher, message: Any) -> list[dict[str, Any]]:
    outcomes = []
    for ref in s3_objects_in(message):
        with log_context(key=ref.key):
            outcome = launcher.on_object_created(ref, datetime.now(UTC))
            log.info("event handled", extra=outcome.as_dict())
            outcomes.append(outcome.as_dict())
    return outcomes


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    launcher = _launcher()
    with log_context(**invocation_context(context)):
        records = sqs_records(event)
        if records is None:
            return {"outcomes": _handle_message(launcher, event)}
        failures: list[dict[str, str]] = []
        outcomes: list[dict[str, Any]] = []
        for record in records:
            with log_context(message_id=record.get("messageId")):
                try:
                    outcomes.extend(_handle_message(launcher, record))
                except RunBusy as busy:
                    # Expected under concurrent delivery: the owner finishes, the redelivery sees "submitted".
                    log.warning("run busy; SQS will redeliver the record", extra={"detail": str(busy)})
                    failures.append({"itemIdentifier": str(record.get("messageId"))})
                except Exception:
                    log.exception("record failed; SQS will redeliver it")
                    failures.append({"itemIdentifier": str(record.get("messageId"))})
        return {"batchItemFailures": failures, "outcomes": outcomes}
