"""EventBridge patterns come from the contract as plain dicts; this turns one into the L2 type unchanged."""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_events as events

_KNOWN_FIELDS = {"source", "detail-type", "detail"}


def event_pattern(pattern: dict[str, Any]) -> events.EventPattern:
    unknown = set(pattern) - _KNOWN_FIELDS
    if unknown:
        raise ValueError(f"contract pattern has fields this helper does not map: {sorted(unknown)}")
    return events.EventPattern(
        source=pattern.get("source"), detail_type=pattern.get("detail-type"), detail=pattern.get("detail")
    )
