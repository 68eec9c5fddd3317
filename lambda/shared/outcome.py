"""What one event led to: every handler returns (and logs) a list of these as dicts."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """The common part; each function's outcome adds the ids it produced. ``action`` names what happened
    (each function documents its actions), ``detail`` says why in words."""

    action: str
    run: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The fields that hold something, ``action`` first."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        return {key: value for key, value in values.items() if value not in (None, "")}
