"""What only a GPU can show: the CUDA-graph training step and the Triton draw kernel on CUDA.

Skipped where there is no NVIDIA GPU (CI); run on the lent GPU host with ``pytest tests/gpu``. The work runs in
a child process (gpu_child.py) because torch must not share a test process with an EGL renderer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="needs an NVIDIA GPU")


@pytest.fixture(scope="module")
def child() -> dict[str, Any]:
    script = Path(__file__).with_name("gpu_child.py")
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "YOLO_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=REPO, timeout=600, check=False
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    if not result["cuda"]:
        pytest.skip("PyTorch sees no CUDA device here")
    return result


def test_a_graphed_model_trains_as_the_eager_model(child: dict[str, Any]) -> None:
    graphs = child["graphs"]
    assert graphs["unavailable"] is None and graphs["captured_shape"] == [32, 3, 320, 320]
    assert graphs["step_graphed"]  # forward, the fixed-shape loss and backward in one graph
    # Four steps through the graph and a smaller last batch through the model's own forward and Ultralytics' loss:
    # the same losses and weights as eager training (batch-norm statistics included: the capture's warm-up passes
    # are undone).
    assert graphs["graphed_losses"] == pytest.approx(graphs["eager_losses"], rel=1e-3)
    assert graphs["parameter_difference"] < 1e-3 and graphs["buffer_difference"] < 1e-3
    # Batches without padded targets graph the forward and backward alone, with Ultralytics' loss eager.
    assert not graphs["forward_graph_step_graphed"] and graphs["forward_graph_captured_shape"] == [32, 3, 320, 320]
    assert graphs["forward_graphed_losses"] == pytest.approx(graphs["eager_losses"], rel=1e-3)
    assert graphs["forward_graph_parameter_difference"] < 1e-3
    assert graphs["parameter_difference_to_other_data"] > 10 * max(graphs["parameter_difference"], 1e-5)
    assert graphs["removed"]  # after training the model (and any copy of it) has its own forward again


def test_the_draw_kernel_on_the_gpu_draws_what_the_pytorch_draw_draws(child: dict[str, Any]) -> None:
    draw = child["draw"]
    assert draw["kernel_available"] and draw["shape"] == [16, 3, 320, 320] and draw["tiles_per_image"] == [1, 4]
    # The same arithmetic, but grid_sample normalises coordinates and back and the GPU may contract multiply-adds:
    # a pixel at a rounding boundary lands on the next grey level, or its hue in the next bin (measured on an H200:
    # mean 0.004 grey levels, 0.05% of values more than one level apart).
    assert draw["mean_difference"] < 0.01 and draw["share_above_one"] < 1e-3
    assert draw["mean_difference_to_another_image"] > 10
