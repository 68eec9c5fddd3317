"""Model gate Lambda entry point (EventBridge ``SageMaker Training Job State Change``).

A failure raises: Lambda's asynchronous retry, then the function's dead-letter queue, take over.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from model_gate_logic import ModelGate, ModelGateSettings
from shared import aws_clients
from shared.structured_log import get_logger, invocation_context, log_context

log = get_logger("sim2cloud.model_gate")


@cache
def _gate() -> ModelGate:
    return ModelGate(
        ModelGateSettings.from_env(os.environ),
        aws_clients.client("s3"),
        aws_clients.client("sagemaker"),
        aws_clients.client("sns"),
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    gate = _gate()
    detail = event.get("detail") or {}
    with log_context(**invocation_context(context), training_job=detail.get("TrainingJobName")):
        outcome = gate.on_state_change(event)
        log.info("event handled", extra=outcome.as_dict())
        return outcome.as_dict()
