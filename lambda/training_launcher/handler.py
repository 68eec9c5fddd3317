"""Training launcher Lambda entry point (EventBridge ``Object Created`` for ``datasets/<run>/manifest.json``).

A failure raises: Lambda's asynchronous retry, then the function's dead-letter queue, take over.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from shared import aws_clients
from shared.s3_events import s3_objects_in
from shared.structured_log import get_logger, invocation_context, log_context
from training_launcher_logic import TrainingLauncher, TrainingLauncherSettings

log = get_logger("sim2cloud.training_launcher")


@cache
def _launcher() -> TrainingLauncher:
    return TrainingLauncher(
        TrainingLauncherSettings.from_env(os.environ), aws_clients.client("s3"), aws_clients.client("sagemaker")
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    launcher = _launcher()
    outcomes = []
    with log_context(**invocation_context(context)):
        for ref in s3_objects_in(event):
            with log_context(key=ref.key):
                outcome = launcher.on_object_created(ref)
                log.info("event handled", extra=outcome.as_dict())
                outcomes.append(outcome.as_dict())
    return {"outcomes": outcomes}
