"""Output off a terminal (sim2cloud.job_log): progress bars become a line every few seconds, jobs log JSON
lines of the Lambdas' shape, metric lines stay as SageMaker reads them."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

from sim2cloud import contract
from sim2cloud.job_log import PROGRESS_LINE_SECONDS, LogLines, ScratchHints, scratch_pattern

REPO_ROOT = Path(__file__).resolve().parents[3]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def redraw(stream: LogLines, clock: Clock, frames: list[tuple[float, str]], *, ultralytics: bool = False) -> None:
    """Write frames the way tqdm (``\\r`` + frame) or Ultralytics' TQDM (``\\r\\x1b[K`` + frame) redraws a bar."""
    for at, frame in frames:
        clock.now = at
        stream.write(("\r\x1b[K" if ultralytics else "\r") + frame)
    stream.write("\n")


def test_a_redrawn_bar_becomes_a_line_every_interval_and_its_last_line() -> None:
    target, clock = io.StringIO(), Clock()
    stream = LogLines(target, logger="t", clock=clock)
    step = PROGRESS_LINE_SECONDS / 4
    redraw(stream, clock, [(i * step, f"render: {i * 10}%") for i in range(11)])
    stream.write("done\n")
    text = target.getvalue()
    assert "\r" not in text and "\x1b" not in text
    # Frames every quarter interval (a frame is complete when the next redraw starts): at most one line per
    # interval, then the bar's last frame.
    assert text.splitlines() == ["render: 40%", "render: 80%", "render: 100%", "done"]


def test_ultralytics_bars_lose_their_escapes_too() -> None:
    target, clock = io.StringIO(), Clock()
    stream = LogLines(target, logger="t", clock=clock)
    redraw(stream, clock, [(0.0, "1/3 0%"), (1.0, "1/3 50%"), (2.0, "1/3 100%")], ultralytics=True)
    stream.write("\r\x1b[K")  # a bar closed with leave=False clears its line
    assert target.getvalue() == "1/3 100%\n"


def test_json_lines_have_the_lambdas_shape_and_metric_lines_stay_as_they_are() -> None:
    target = io.StringIO()
    stream = LogLines(target, logger="training-job", level="INFO", json_lines=True)
    metric = contract.format_metric_line({"epoch": 1, "mAP50": 0.5})
    already = json.dumps({"time": "t", "level": "WARNING", "logger": "x", "message": "m"})
    stream.write(f"model written to /opt/ml/model\n{metric}\n{already}\n")
    first, second, third = target.getvalue().splitlines()
    entry = json.loads(first)
    assert set(entry) == {"time", "level", "logger", "message"}
    assert entry["message"] == "model written to /opt/ml/model"
    assert (entry["level"], entry["logger"]) == ("INFO", "training-job")
    assert second == metric and contract.parse_metric_line(second) == {"epoch": 1.0, "mAP50": 0.5}
    assert third == already


def test_same_fields_as_the_lambda_log_lines() -> None:
    """The jobs' JSON and the Lambdas' JSON (lambda/shared/structured_log.py) carry the same four fields."""
    sys.path.insert(0, str(REPO_ROOT / "lambda"))
    try:
        from shared.structured_log import JsonFormatter as LambdaFormatter
    finally:
        sys.path.remove(str(REPO_ROOT / "lambda"))
    from sim2cloud.job_log import JsonFormatter

    record = logging.makeLogRecord({"name": "x", "levelname": "INFO", "msg": "hello"})
    assert set(json.loads(JsonFormatter().format(record))) == set(json.loads(LambdaFormatter().format(record)))


def test_scratch_hints_are_dropped_and_other_mentions_named() -> None:
    import tempfile

    scratch = f"{tempfile.gettempdir()}/sim2cloud-train-abc1"
    hints = ScratchHints(scratch_pattern("sim2cloud-train-"))
    saved = logging.makeLogRecord({"msg": f"Results saved to \x1b[1m{scratch}/run\x1b[0m"})
    scanning = logging.makeLogRecord({"msg": "Scanning %s/labels", "args": (scratch,)})
    other = logging.makeLogRecord({"msg": "epoch 1"})
    assert not hints.filter(saved)
    assert hints.filter(scanning) and scanning.getMessage() == "Scanning <job scratch, deleted>/labels"
    assert hints.filter(other) and other.getMessage() == "epoch 1"
    # Off a terminal the job's lines (bars and prints too, not only log records) lose them the same way.
    target = io.StringIO()
    stream = LogLines(target, logger="training-job", scratch=scratch_pattern("sim2cloud-train-"))
    stream.write(f"Export complete\nResults saved to {scratch}/best.onnx\nPredict: yolo predict model={scratch}/x\n")
    assert target.getvalue().splitlines() == ["Export complete", "Predict: yolo predict model=<job scratch, deleted>/x"]


def test_a_cli_run_off_a_terminal_has_no_carriage_return(tmp_path: Path) -> None:
    """tqdm really redrawing (mininterval 0) through the console script's own output handling."""
    script = (
        "import sys, time\n"
        "from sim2cloud.job_log import progress_lines\n"
        "from tqdm import tqdm\n"
        "with progress_lines():\n"
        "    for _ in tqdm(range(50), desc='work', mininterval=0):\n"
        "        time.sleep(0.001)\n"
        "    print('finished')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert "\r" not in result.stderr + result.stdout
    (last,) = result.stderr.splitlines()  # the run is shorter than the interval: only the bar's last line
    assert last.startswith("work: 100%") and "50/50" in last
    assert result.stdout == "finished\n"
