"""JSON structured logging on the standard library, with per-invocation context on every line.

``log_context(batch=..., run=...)`` binds fields (a contextvar, so nested scopes stack and unwind) that
the formatter adds to every record logged inside it; ``extra={...}`` adds fields to one line. One JSON
object per line on stdout, which CloudWatch Logs Insights indexes field by field.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, Final

from sim2cloud.contract import Env

_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("sim2cloud_log_context", default={})  # noqa: B039
# The default is never mutated: log_context always installs a new dict.

_HANDLER_MARK: Final = "_sim2cloud_json_handler"
_STANDARD_ATTRIBUTES: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, bound context, ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_CONTEXT.get())
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _StdoutHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` as it is at emit time, so a replaced stdout (a capture) still gets lines."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        """StreamHandler's constructor assigns a stream; the live sys.stdout is used instead."""


def get_logger(name: str) -> logging.Logger:
    """A logger writing JSON lines to stdout at ``SIM2CLOUD_LOG_LEVEL`` (default INFO).

    It does not propagate, so the Lambda runtime's own root handler does not print each line twice.
    """
    logger = logging.getLogger(name)
    # One handler per logger, found by a marker attribute rather than its class: if a second copy of this
    # module is loaded (another bundle in the same process), the handler is reused and given this copy's
    # formatter, so the context this copy binds is the one printed.
    handler = next((h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)), None)
    if handler is None:
        handler = _StdoutHandler()
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
        logger.propagate = False
    handler.setFormatter(JsonFormatter())
    level = os.environ.get(Env.LOG_LEVEL, "INFO").strip().upper() or "INFO"
    logger.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    return logger


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (None values dropped) to every line logged inside the block."""
    merged = {**_CONTEXT.get(), **{key: value for key, value in fields.items() if value is not None}}
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind(**fields: Any) -> None:
    """Add fields to the current context (for ids learnt mid-scope, such as a run id once derived)."""
    _CONTEXT.set({**_CONTEXT.get(), **{key: value for key, value in fields.items() if value is not None}})


def invocation_context(context: Any) -> dict[str, Any]:
    """Fields identifying one Lambda invocation (the context object may be None when called locally)."""
    return {
        "request_id": getattr(context, "aws_request_id", None),
        "function": getattr(context, "function_name", None),
    }
