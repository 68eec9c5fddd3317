"""EventBridge on one machine: pattern matching, the rules CDK declares, and events of the real shapes.

The matcher implements the parts of the EventBridge pattern language the contract's patterns use, with
EventBridge's semantics: every key of the pattern must be present in the event; a nested object recurses;
a list matches when ANY of its entries matches the event's value (or, for an array value, any element of
it); an entry is an exact value or one of the operators ``prefix``, ``suffix``, ``wildcard`` (``*`` is any
run of characters, ``/`` included; ``\\*`` a literal star) and ``exists``. Any other operator raises
:class:`UnsupportedPattern` naming it, so a contract pattern using more than the local runner understands
fails loudly instead of silently never matching.

The builders produce what AWS sends: S3 ``Object Created`` via EventBridge, an SQS-triggered Lambda
invocation whose bodies are such events (the render launcher's quiet-period queue), and the SageMaker
``Training Job State Change`` event whose detail mirrors DescribeTrainingJob.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from sim2cloud import contract

S3_SOURCE: Final = "aws.s3"
OBJECT_CREATED: Final = "Object Created"
SAGEMAKER_SOURCE: Final = "aws.sagemaker"
TRAINING_STATE_CHANGE: Final = "SageMaker Training Job State Change"
_OPERATORS: Final = ("prefix", "suffix", "wildcard", "exists")


class UnsupportedPattern(ValueError):
    """The pattern uses an EventBridge feature this matcher does not implement (or is malformed)."""


# --------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------
def _wildcard_regex(expression: str) -> re.Pattern[str]:
    parts = re.split(r"(\\\*|\*)", expression)
    regex = "".join(".*" if part == "*" else re.escape("*" if part == "\\*" else part) for part in parts)
    return re.compile(rf"\A{regex}\Z", re.DOTALL)


def _entry_matches(entry: Any, value: Any, present: bool) -> bool:
    """One entry of a pattern list against one value of the event (``present`` False: the key is absent)."""
    if isinstance(entry, Mapping):
        if len(entry) != 1:
            raise UnsupportedPattern(f"a matcher object has exactly one operator, not {sorted(entry)}")
        operator, argument = next(iter(entry.items()))
        if operator not in _OPERATORS:
            raise UnsupportedPattern(f"operator {operator!r} is not supported locally (supported: {_OPERATORS})")
        if operator == "exists":
            if not isinstance(argument, bool):
                raise UnsupportedPattern(f"'exists' takes true or false, not {argument!r}")
            return present is argument
        if not isinstance(argument, str):
            raise UnsupportedPattern(f"{operator!r} takes a string, not {argument!r}")
        if not present or not isinstance(value, str):
            return False
        if operator == "prefix":
            return value.startswith(argument)
        if operator == "suffix":
            return value.endswith(argument)
        return _wildcard_regex(argument).match(value) is not None
    if isinstance(entry, list):
        raise UnsupportedPattern(f"nested list {entry!r} in a pattern list")
    if not present:
        return False
    # EventBridge compares exact values by type: 5 matches 5, not "5"; true matches true, not 1.
    return type(entry) is type(value) and entry == value


def _field_matches(rule: Any, event: Mapping[str, Any], key: str) -> bool:
    present = key in event
    value = event.get(key)
    if isinstance(rule, Mapping):
        return present and isinstance(value, Mapping) and _object_matches(rule, value)
    if not isinstance(rule, list):
        raise UnsupportedPattern(f"pattern field {key!r}: expected a list or an object, not {rule!r}")
    if not rule:
        raise UnsupportedPattern(f"pattern field {key!r}: an empty list matches nothing")
    values = value if isinstance(value, list) and present else [value]
    return any(_entry_matches(entry, item, present) for entry in rule for item in values)


def _object_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    return all(_field_matches(rule, event, key) for key, rule in pattern.items())


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """True when ``event`` matches the EventBridge ``pattern`` (see the module doc for what is supported)."""
    if not pattern:
        raise UnsupportedPattern("an empty pattern")
    return _object_matches(pattern, event)


# --------------------------------------------------------------------------------------
# Rules and routing
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """An EventBridge rule: a name, its pattern (from the contract) and what receives matching events."""

    name: str
    pattern: Mapping[str, Any]
    target: Callable[[dict[str, Any]], Any]


def matching_rules(rules: Sequence[Rule], event: Mapping[str, Any]) -> list[Rule]:
    return [rule for rule in rules if matches(rule.pattern, event)]


# --------------------------------------------------------------------------------------
# Event builders (the real shapes)
# --------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_created_event(
    bucket: str, key: str, *, size: int, etag: str, region: str, account: str, reason: str = "PutObject"
) -> dict[str, Any]:
    """S3 -> EventBridge ``Object Created`` for one stored object: the key as stored (not URL-encoded),
    the ETag without quotes."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": OBJECT_CREATED,
        "source": S3_SOURCE,
        "account": account,
        "time": _now(),
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, "etag": etag.strip('"'), "sequencer": uuid.uuid4().hex[:18].upper()},
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": account,
            "source-ip-address": "127.0.0.1",
            "reason": reason,
        },
    }


def sqs_invocation(events: Sequence[Mapping[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS-triggered Lambda invocation whose record bodies are the given EventBridge events (as JSON)."""
    records = []
    for event in events:
        body = json.dumps(event)
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": uuid.uuid4().hex,
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(int(datetime.now(UTC).timestamp() * 1000)),
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def _json_ready(value: Any) -> Any:
    """DescribeTrainingJob as EventBridge carries it: timestamps as strings, everything JSON."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def training_state_change_event(
    description: Mapping[str, Any],
    *,
    status: str,
    region: str,
    account: str,
    model_artifact: str | None = None,
    failure_reason: str | None = None,
) -> dict[str, Any]:
    """``SageMaker Training Job State Change`` for a job reaching ``status`` (detail = DescribeTrainingJob)."""
    if status not in contract.TRAINING_TERMINAL_STATUSES:
        raise ValueError(f"status {status!r} is not terminal ({contract.TRAINING_TERMINAL_STATUSES})")
    detail = _json_ready(description)
    detail["TrainingJobStatus"] = status
    detail["SecondaryStatus"] = status
    detail.pop("FailureReason", None)
    detail.pop("ModelArtifacts", None)
    if model_artifact is not None:
        detail["ModelArtifacts"] = {"S3ModelArtifacts": model_artifact}
    if failure_reason is not None:
        detail["FailureReason"] = failure_reason
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": TRAINING_STATE_CHANGE,
        "source": SAGEMAKER_SOURCE,
        "account": account,
        "time": _now(),
        "region": region,
        "resources": [str(detail.get("TrainingJobArn", ""))],
        "detail": detail,
    }
