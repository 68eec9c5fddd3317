"""Where a benchmark figure came from: one line every bench script prints first, for the README to quote.

A figure in the README is only worth its source: the machine (cores this process may use, CPU model, memory,
GPU), the date, the exact command, and how busy the machine was while it ran (the 1-minute load average
divided by the usable cores; figures measured with the machine busy with other work are not published).
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names() -> list[str]:
    """GPU names from nvidia-smi when it exists (no torch import: a bench may render with GL in this process)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [name.strip() for name in out.stdout.splitlines() if name.strip()]


def memory_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    return pages * page_size / 2**30


def machine_description() -> str:
    """e.g. '2 cores (Intel(R) Xeon(R) Processor), 23 GiB, no GPU'."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = memory_gib()
    gpus = gpu_names()
    gpu_text = ", ".join(f"{gpus.count(n)}x {n}" for n in dict.fromkeys(gpus)) if gpus else "no GPU"
    memory_text = f", {memory:.0f} GiB" if memory else ""
    return f"{cores} cores ({cpu_model()}){memory_text}, {gpu_text}"


def load_per_core() -> float | None:
    """1-minute load average per usable core: about 0 on a quiet machine, 1 when every core is busy."""
    try:
        cores = len(os.sched_getaffinity(0))
        return os.getloadavg()[0] / max(cores, 1)
    except (AttributeError, OSError):
        return None


def source_line(argv: list[str] | None = None) -> str:
    """The line a bench prints first: machine, date (UTC), load before the run and the command."""
    args = sys.argv if argv is None else argv
    command = shlex.join([Path(sys.executable).name, *args])
    load = load_per_core()
    load_text = f", load {load:.2f}/core before the run" if load is not None else ""
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    return f"source: {machine_description()}; {today}{load_text}; `{command}`"


def print_source_line() -> None:
    print(source_line(), flush=True)


if __name__ == "__main__":
    print_source_line()
