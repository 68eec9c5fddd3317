"""Output that reads well where no terminal is: CloudWatch (the Batch and SageMaker jobs), pipes, log files.

On a terminal nothing changes: progress bars redraw in place and lines are for people. When a stream is not a
terminal, :class:`LogLines` stands in for it:

* progress bars (tqdm's and Ultralytics' own ``TQDM``, both redraw with ``\\r``) become one line every
  :data:`PROGRESS_LINE_SECONDS` plus the bar's final line, with no carriage returns or terminal escapes (a
  redrawn bar was half a job log's bytes);
* in a job (``json_lines=True``) every other line becomes one JSON object of the Lambdas' shape (``time``,
  ``level``, ``logger``, ``message``; see ``lambda/shared/structured_log.py``), which CloudWatch Logs Insights
  indexes field by field. Lines that already are JSON objects pass unchanged, and so do the metric lines
  (``sim2cloud-metrics ...``), which SageMaker's metric definitions and the local executor read as they are.

Standard library only.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, TextIO

from sim2cloud import contract

PROGRESS_LINE_SECONDS: Final = 10.0
"""At most one line per progress bar this often when output is not a terminal (plus each bar's last line)."""
_TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_LOG_FIELDS: Final = ("time", "level", "logger", "message")


def is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


def json_line(message: str, *, level: str, logger: str, **fields: Any) -> str:
    """One log line of the Lambdas' shape."""
    entry = {"time": _timestamp(time.time()), "level": level, "logger": logger, "message": message, **fields}
    return json.dumps(entry, default=str, ensure_ascii=False)


def _is_json_object(line: str) -> bool:
    if not (line.startswith("{") and line.endswith("}")):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


class LogLines(io.TextIOBase):
    """A text stream over ``target`` (not a terminal) that writes whole lines only: see the module docstring."""

    def __init__(
        self,
        target: TextIO,
        *,
        logger: str,
        level: str = "INFO",
        json_lines: bool = False,
        clock: Callable[[], float] = time.monotonic,
        interval: float = PROGRESS_LINE_SECONDS,
        scratch: re.Pattern[str] | None = None,
    ) -> None:
        super().__init__()
        self.scratch = scratch
        self.target = target
        self.logger = logger
        self.level = level
        self.json_lines = json_lines
        self._clock = clock
        self._interval = interval
        self._pending = ""
        self._bar_shown_at: float | None = None

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.target, "encoding", None) or "utf-8")

    def write(self, text: str) -> int:
        for piece in re.split(r"(\r|\n)", text):
            if piece == "\n":
                self._end_line()
            elif piece == "\r":
                self._end_frame()
            else:
                self._pending += piece
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def _take_pending(self) -> str:
        text, self._pending = _TERMINAL_ESCAPE.sub("", self._pending).rstrip(), ""
        return text

    def _end_frame(self) -> None:
        """A ``\\r`` ends a redrawn frame of a bar: shown only when the bar has been quiet for the interval."""
        frame = self._take_pending()
        if not frame.strip():
            return
        now = self._clock()
        if self._bar_shown_at is None:
            self._bar_shown_at = now  # a bar starts: its first line comes after one interval
        elif now - self._bar_shown_at >= self._interval:
            self._emit(frame.strip(), progress=True)
            self._bar_shown_at = now

    def _end_line(self) -> None:
        line = self._take_pending()
        self._bar_shown_at = None  # a finished line ends the bar it was (its last frame) or any before it
        if line.strip():
            self._emit(line)

    def _emit(self, text: str, *, progress: bool = False) -> None:
        if self.scratch is not None:
            hidden = hide_scratch(text, self.scratch)
            if hidden is None:
                return
            text = hidden
        if self.json_lines and not text.startswith(contract.METRIC_LINE_PREFIX) and not _is_json_object(text):
            text = json_line(text, level=self.level, logger=self.logger, **({"progress": True} if progress else {}))
        self.target.write(text + "\n")
        self.target.flush()


class JsonFormatter(logging.Formatter):
    """Log records as JSON lines of the Lambdas' shape, plus the record's ``extra`` fields."""

    _standard = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in self._standard and not k.startswith("_")}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json_line(record.getMessage(), level=record.levelname, logger=record.name, **fields)


@contextlib.contextmanager
def progress_lines() -> Iterator[None]:
    """For the block: stdout and stderr that are not terminals become plain :class:`LogLines` (progress a line
    every few seconds, no carriage returns; every other line unchanged). Terminals are left as they are."""
    stdout, stderr = sys.stdout, sys.stderr
    if not is_terminal(stdout):
        sys.stdout = LogLines(stdout, logger="sim2cloud")
    if not is_terminal(stderr):
        sys.stderr = LogLines(stderr, logger="sim2cloud")
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = stdout, stderr


@contextlib.contextmanager
def job_output(
    job: str, *, level: str = "INFO", json_lines: bool = True, scratch_prefix: str | None = None
) -> Iterator[bool]:
    """For the block: stdout and stderr that are not terminals become :class:`LogLines` (JSON lines when
    ``json_lines``: the Batch and SageMaker jobs), and logging goes to stdout (JSON when ``json_lines``, else
    ``LEVEL logger: message``); lines naming the job's scratch folders (``<tmp>/<scratch_prefix>...``, deleted
    when it ends) lose those hints. Yields whether stdout is a terminal. Terminals are left as they are."""
    stdout, stderr = sys.stdout, sys.stderr
    terminal = is_terminal(stdout)
    scratch = scratch_pattern(scratch_prefix) if scratch_prefix else None
    if not terminal:
        sys.stdout = LogLines(stdout, logger=job, level="INFO", json_lines=json_lines, scratch=scratch)
    if not is_terminal(stderr):
        sys.stderr = LogLines(stderr, logger=job, level="WARNING", json_lines=json_lines, scratch=scratch)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter() if json_lines and not terminal else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level.upper())
    try:
        yield terminal
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = stdout, stderr


SCRATCH_NAME: Final = "<job scratch, deleted>"


def scratch_pattern(prefix: str) -> re.Pattern[str]:
    """Paths of the temp folders named ``<tmp>/<prefix>...`` that a job deletes before it ends."""
    return re.compile(re.escape(tempfile.gettempdir().rstrip("/")) + "/" + re.escape(prefix) + r"[^/\s'\"\x1b]*")


def hide_scratch(text: str, scratch: re.Pattern[str]) -> str | None:
    """``text`` without hints at deleted scratch: a "... saved to <scratch>" line is dropped (None), other
    mentions say what the folder was."""
    if not scratch.search(text):
        return text
    if "saved to" in text.lower():
        return None
    return scratch.sub(SCRATCH_NAME, text)


class ScratchHints(logging.Filter):
    """Ultralytics names its save folders ("Results saved to /tmp/...", "yolo predict model=/tmp/..."), which in
    a job are scratch deleted at the end: :func:`hide_scratch` on every record of the logger it filters."""

    def __init__(self, scratch: re.Pattern[str]) -> None:
        super().__init__()
        self.scratch = scratch

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = hide_scratch(message, self.scratch)
        if hidden is None:
            return False
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


@contextlib.contextmanager
def scratch_hints_hidden(prefix: str, logger: str = "ultralytics") -> Iterator[None]:
    """:class:`ScratchHints` for the temp folders named ``prefix...`` on ``logger`` (Ultralytics' own) for the
    block; off a terminal :class:`LogLines` of a job hides them from bars and prints too."""
    hints = ScratchHints(scratch_pattern(prefix))
    logging.getLogger(logger).addFilter(hints)
    try:
        yield
    finally:
        logging.getLogger(logger).removeFilter(hints)
