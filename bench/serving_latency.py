"""Serving latency and throughput, side by side with bare ONNX Runtime and an Ultralytics baseline server.

One run, the same 640x640 JPEG images for every measurement:
  1. bare ONNX Runtime in process (decode + letterbox + infer + NMS), time per image;
  2. the product server (``sim2cloud serve``: gunicorn + falcon + ONNX Runtime) at concurrency 1 and 8,
     p50/p99 latency and throughput;
  3. bench/baseline_ultralytics_server.py at concurrency 8: Ultralytics as a user would deploy it, gunicorn
     with as many sync workers as the product server, each holding ``YOLO(model.pt)`` and calling ``predict``,
     PyTorch given the same threads per worker as ONNX Runtime gets in ours.
It prints the ratios against the targets (server p50 at c=1 <= 1.25x bare; server throughput at c=8 >= 2x
the baseline's), all measured in this one run, interleaved round by round. The first line is the source
line (bench/provenance.py): machine, date, load, command. The model is trained by the real training job for
2 quick epochs at imgsz 640 on a tiny generated dataset (timing does not depend on the weights); that run also
gives training images/s.

    .venv/bin/python bench/serving_latency.py [--requests 80] [--workers N] [--threads N]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.provenance import print_source_line  # noqa: E402
from bench.tiny_data import yolo_test_helpers  # noqa: E402
from sim2cloud import contract  # noqa: E402
from sim2cloud.local.runner import free_port  # noqa: E402

IMGSZ = 640
TRAIN_IMAGES = 16


def make_images(directory: Path, count: int) -> list[bytes]:
    rng = np.random.default_rng(7)
    images = []
    for index in range(count):
        image = Image.fromarray(rng.integers(60, 200, (IMGSZ, IMGSZ, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = (int(v) for v in rng.integers(0, IMGSZ - 200, 2))
            side = int(rng.integers(40, 200))
            draw.rectangle((x, y, x + side, y + side), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        (directory / f"bench_{index:03d}.jpg").write_bytes(buffer.getvalue())
        images.append(buffer.getvalue())
    return images


def train_model(work: Path) -> tuple[Path, float]:
    """Model dir from the real training job, and training images/s measured over epoch 2."""
    dataset = yolo_test_helpers().build_tiny_dataset(
        work / "dataset", train_images=TRAIN_IMAGES, val_images=4, size=160
    )
    command = [sys.executable, "-m", "sim2cloud.cli", "train", "--dataset", str(dataset), "--out", str(work / "job")]
    for hp in ("epochs=2", f"imgsz={IMGSZ}", "batch=8", "workers=2", "close_mosaic=0"):
        command += ["--hp", hp]
    command.append("--no-progress")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    assert process.stdout is not None
    stamps = []
    for line in process.stdout:
        if line.startswith(contract.METRIC_LINE_PREFIX):
            stamps.append(time.perf_counter())
    if process.wait() != 0 or len(stamps) != 2:
        raise SystemExit("training failed; run the command by hand to see why: " + " ".join(command))
    return Path(contract.SageMakerPaths(base=str(work / "job")).model_dir), TRAIN_IMAGES / (stamps[1] - stamps[0])


def bare_onnxruntime(model_dir: Path, threads: int | None) -> Callable[[list[bytes]], list[float]]:
    """A function timing one pass over the images; ``threads`` None = ONNX Runtime's default (all cores)."""
    from sim2cloud.serving.model import OnnxDetector, decode_image

    detector = OnnxDetector(model_dir, intra_op_threads=threads)

    def one_pass(images: list[bytes]) -> list[float]:
        times = []
        for data in images:
            start = time.perf_counter()
            detector.detect(decode_image(data))
            times.append(time.perf_counter() - start)
        return times

    return one_pass


def _post(url: str, data: bytes) -> float:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "image/jpeg"}, method="POST")
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
    return time.perf_counter() - start


def load(url: str, images: list[bytes], requests: int, concurrency: int) -> tuple[list[float], float]:
    """(latencies, requests/s) for ``requests`` POSTs with ``concurrency`` clients."""
    for data in images[:concurrency]:
        _post(url, data)  # warm every worker
    payloads = [images[i % len(images)] for i in range(requests)]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(lambda d: _post(url, d), payloads))
    return latencies, requests / (time.perf_counter() - start)


def start(command: list[str], ping_url: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(ping_url, timeout=5) as response:
                if response.status == 200:
                    return process
        except OSError:  # refused, reset or timed out: workers still loading
            pass
        if process.poll() is not None:
            raise SystemExit(f"server exited: {' '.join(command)}")
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server never became ready: {' '.join(command)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def ms(values: list[float], q: float) -> float:
    return float(np.quantile(values, q)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=96, help="requests per server measurement, over all rounds")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds of every measurement")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--workers", type=int, help="server workers (default: the server's own default)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads per worker (default: the server's)")
    args = parser.parse_args()
    print_source_line()

    with tempfile.TemporaryDirectory(prefix="sim2cloud-bench-") as work_name:
        work = Path(work_name)
        (work / "images").mkdir()
        images = make_images(work / "images", args.images)
        print("training the benchmark model (2 epochs at imgsz 640) ...", flush=True)
        model_dir, train_rate = train_model(work)

        from sim2cloud.serving.model import default_intra_op_threads
        from sim2cloud.serving.requests import default_workers

        workers = args.workers or default_workers(os.environ)
        worker_threads = args.threads or default_intra_op_threads(workers)
        bare_default_pass = bare_onnxruntime(model_dir, None)
        bare_matched_pass = bare_onnxruntime(model_dir, worker_threads)
        bare_default_pass(images[:3])  # warm-up: first runs allocate and pick kernels
        bare_matched_pass(images[:3])

        port, base_port = free_port(), free_port()
        serve = [sys.executable, "-m", "sim2cloud.cli", "serve", "--model", str(model_dir), "--host", "127.0.0.1"]
        serve += ["--port", str(port), "--workers", str(workers), "--threads", str(worker_threads)]
        baseline_command = [sys.executable, str(REPO / "bench/baseline_ultralytics_server.py")]
        baseline_command += ["--model", str(model_dir / contract.MODEL_PT_NAME), "--port", str(base_port)]
        baseline_command += ["--workers", str(workers), "--torch-threads", str(worker_threads)]
        server = start(serve, f"http://127.0.0.1:{port}{contract.PING_PATH}")
        try:
            baseline = start(
                baseline_command, f"http://127.0.0.1:{base_port}/ping", env=dict(os.environ, YOLO_OFFLINE="1")
            )
        except BaseException:
            stop(server)
            raise
        invocations = f"http://127.0.0.1:{port}{contract.INVOCATIONS_PATH}"
        baseline_invocations = f"http://127.0.0.1:{base_port}/invocations"
        # Rounds interleave every measurement, so load from other processes on the machine hits all alike.
        bare_default: list[float] = []
        bare_matched: list[float] = []
        c1: list[float] = []
        c8: list[float] = []
        b8: list[float] = []
        c8_rates: list[float] = []
        b8_rates: list[float] = []
        per_round = max(8, args.requests // args.rounds)
        try:
            for _ in range(args.rounds):
                bare_default += bare_default_pass(images)
                bare_matched += bare_matched_pass(images)
                c1 += load(invocations, images, per_round, 1)[0]
                latencies, rate = load(invocations, images, per_round, 8)
                c8 += latencies
                c8_rates.append(rate)
                latencies, rate = load(baseline_invocations, images, per_round, 8)
                b8 += latencies
                b8_rates.append(rate)
        finally:
            stop(server)
            stop(baseline)
        c8_rate, b8_rate = statistics.median(c8_rates), statistics.median(b8_rates)

    # The stricter comparison: whichever bare configuration is faster on this machine right now.
    bare_ms = min(statistics.median(bare_default), statistics.median(bare_matched)) * 1000
    print(f"\ncores: {len(os.sched_getaffinity(0))}, images: {args.images} x {IMGSZ}x{IMGSZ} JPEG")
    print(f"training (CPU, imgsz {IMGSZ}, batch 8):            {train_rate:8.2f} images/s")
    print(f"bare ONNX Runtime per image, default threads (decode+pre+infer+NMS): p50 {ms(bare_default, 0.5):7.1f} ms")
    print(
        f"bare ONNX Runtime per image, {worker_threads} thread(s) as in a worker: p50 {ms(bare_matched, 0.5):7.1f} ms"
    )
    print(f"server c=1:  p50 {ms(c1, 0.5):7.1f} ms  p99 {ms(c1, 0.99):7.1f} ms")
    print(f"server c=8:  p50 {ms(c8, 0.5):7.1f} ms  p99 {ms(c8, 0.99):7.1f} ms  {c8_rate:6.1f} req/s")
    baseline_name = f"Ultralytics predict, gunicorn {workers} workers x {worker_threads} torch threads"
    print(
        f"baseline c=8 ({baseline_name}): p50 {ms(b8, 0.5):7.1f} ms  p99 {ms(b8, 0.99):7.1f} ms  {b8_rate:6.1f} req/s"
    )
    latency_ratio = ms(c1, 0.5) / bare_ms
    throughput_ratio = c8_rate / b8_rate
    latency_verdict = "met" if latency_ratio <= 1.25 else "MISSED"
    throughput_verdict = "met" if throughput_ratio >= 2 else "MISSED"
    print(f"\nserver p50 c=1 / best bare ONNX Runtime = {latency_ratio:.2f}x  (target <= 1.25x: {latency_verdict})")
    print(
        f"server / baseline throughput at c=8     = {throughput_ratio:.2f}x  (target >= 2x: {throughput_verdict}; "
        f"both {workers} workers x {worker_threads} threads)"
    )


if __name__ == "__main__":
    main()
