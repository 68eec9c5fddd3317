"""Soak test of the serving endpoint: sustained mixed traffic on loopback for a bounded time.

``sim2cloud serve`` (nginx + gunicorn + ONNX Runtime, the container's server) on 127.0.0.1 receives at once:
  * good clients: 640x640 JPEGs, one request after another (latency and throughput measured on these);
  * bad clients: every kind of hostile body (deeply nested JSON, thousands of images in one request, a
    decompression bomb, a chunked upload over the body limit, truncated and garbage images, bad base64, bad
    thresholds, an unsupported content type, malformed HTTP), each of which must get its 4xx;
  * slow clients: connections that drip their request at 1 byte/s or stall, reconnecting when cut off;
  * a pinger asking /ping every 0.5 s with SageMaker's 2 s deadline.
It prints the source line, then throughput, p50/p99 latency of good requests, the count of 5xx (must be 0),
worker restarts (must be 0: "Booting worker" lines beyond the first workers and "WORKER TIMEOUT" lines in the
gunicorn log), /ping misses (must be 0) and the memory slope of the server's processes (RSS of nginx, the
gunicorn master and workers, sampled every 2 s; a least-squares slope over the run after a warm-up). Exits
non-zero when a must-be-zero count is not.

    .venv/bin/python bench/serving_soak.py --seconds 300 [--model DIR] [--workers N] [--slow-clients 8]

Without --model it trains one with the real training job (1 epoch at imgsz 640 on a tiny generated dataset;
latency does not depend on the weights).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.provenance import source_line  # noqa: E402
from bench.tiny_data import yolo_test_helpers  # noqa: E402
from sim2cloud import contract  # noqa: E402
from sim2cloud.local.runner import free_port  # noqa: E402

IMGSZ = 640
MAX_BODY = 2_000_000
"""The soak server's body limit (SIM2CLOUD_MAX_BODY_BYTES): a small one keeps the chunked overflows cheap."""
WARM_UP_FRACTION = 0.2
"""Memory samples from the first part of the run (sessions allocating, caches filling) are left out of the slope."""


def train_quick_model(work: Path) -> Path:
    dataset = yolo_test_helpers().build_tiny_dataset(work / "dataset", train_images=8, val_images=4)
    command = [sys.executable, "-m", "sim2cloud.cli", "train", "--dataset", str(dataset), "--out", str(work / "job")]
    command += ["--hp", "epochs=1", "--hp", f"imgsz={IMGSZ}", "--hp", "batch=4", "--hp", "workers=0", "--no-progress"]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if completed.returncode != 0:
        raise SystemExit("training failed: " + completed.stderr[-2000:])
    return Path(contract.SageMakerPaths(base=str(work / "job")).model_dir)


def good_images(count: int) -> list[bytes]:
    rng = np.random.default_rng(3)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(40, 220, (IMGSZ, IMGSZ, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


class Tally:
    """Thread-safe counts and good-request latencies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.ping_misses: list[str] = []
        self.pings = 0
        self.slow_connections = 0

    def record(self, kind: str, status: int | str, expected: int, seconds: float | None = None) -> None:
        with self.lock:
            self.statuses[f"{kind} {status}"] += 1
            if status != expected:
                self.unexpected[f"{kind}: {status} (expected {expected})"] += 1
            if seconds is not None and status == expected:
                self.latencies.append(seconds)


def request(port: int, body: bytes, headers: dict[str, str], timeout: float = 60) -> int | str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", contract.INVOCATIONS_PATH, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status >= 400 and "error" not in json.loads(payload):
            return f"{response.status} without a JSON reason"
        return response.status
    except (OSError, http.client.HTTPException, ValueError) as error:
        return type(error).__name__
    finally:
        connection.close()


def chunked_overflow(port: int) -> int | str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    chunk = b"\xff" * 65536
    try:
        connection.request(
            "POST",
            contract.INVOCATIONS_PATH,
            body=(chunk for _ in range(2 * MAX_BODY // len(chunk))),
            headers={"Content-Type": "image/jpeg"},
            encode_chunked=True,
        )
        return connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__
    finally:
        connection.close()


def malformed_http(port: int) -> int | str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        head = sock.recv(64)
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(match.group(1)) if match else repr(head[:20])


def bad_requests(good: bytes) -> list[tuple[str, int, Callable[[int], int | str]]]:
    """(name, expected status, request) for every kind of hostile body."""
    one_pixel = io.BytesIO()
    Image.new("RGB", (1, 1)).save(one_pixel, "PNG")
    tiny = base64.b64encode(one_pixel.getvalue()).decode()
    bomb = yolo_test_helpers().png_declaring(12000, 12000, with_pixels=False)
    json_type = {"Content-Type": "application/json"}
    cases: list[tuple[str, int, bytes, dict[str, str]]] = [
        ("nested JSON", 400, b"[" * 5000, json_type),
        ("7000 images", 413, json.dumps({"images": [tiny] * 7000}).encode(), json_type),
        ("bomb header", 413, bomb, {"Content-Type": "image/png"}),
        ("truncated JPEG", 400, good[: len(good) // 2], {"Content-Type": "image/jpeg"}),
        ("garbage", 400, os.urandom(2048), {"Content-Type": "application/x-image"}),
        ("bad base64", 400, b'{"image": "***"}', json_type),
        ("bad thresholds", 400, good, {"Content-Type": "image/jpeg", contract.CUSTOM_ATTRIBUTES_HEADER: "conf=x"}),
        ("content type", 415, good, {"Content-Type": "text/csv"}),
        ("body over limit", 413, b"\xff" * (MAX_BODY + 1), {"Content-Type": "image/jpeg"}),
    ]
    plain = [
        (name, status, (lambda port, b=body, h=headers: request(port, b, h))) for name, status, body, headers in cases
    ]
    return [*plain, ("chunked overflow", 413, chunked_overflow), ("malformed HTTP", 400, malformed_http)]


def good_client(port: int, images: list[bytes], tally: Tally, stop: threading.Event, offset: int) -> None:
    index = offset
    while not stop.is_set():
        start = time.perf_counter()
        status = request(port, images[index % len(images)], {"Content-Type": "image/jpeg"})
        tally.record("good", status, 200, time.perf_counter() - start)
        index += 1


def bad_client(
    port: int,
    cases: list[tuple[str, int, Callable[[int], int | str]]],
    tally: Tally,
    stop: threading.Event,
    offset: int,
) -> None:
    index = offset
    while not stop.wait(0.05):
        name, expected, send = cases[index % len(cases)]
        tally.record(name, send(port), expected)
        index += 1


def slow_client(port: int, tally: Tally, stop: threading.Event, stall: bool) -> None:
    """Drips a request at 1 byte/s (or sends its head and stalls); reconnects whenever the server cuts it off."""
    head = b"POST /invocations HTTP/1.1\r\nHost: soak\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
                with tally.lock:
                    tally.slow_connections += 1
                if stall:
                    sock.sendall(head + b"\xff")
                    while not stop.is_set() and sock.recv(4096):  # until the server answers 408 and closes
                        pass
                else:
                    for byte in head:
                        if stop.wait(1.0):
                            break
                        sock.sendall(bytes([byte]))
        except OSError:
            pass  # cut off by the client timeout: the point; connect again
        stop.wait(0.2)


def pinger(port: int, tally: Tally, stop: threading.Event) -> None:
    url = f"http://127.0.0.1:{port}{contract.PING_PATH}"
    while not stop.wait(0.5):
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=contract.SERVING_PING_DEADLINE_SECONDS) as response:
                status: int | str = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (OSError, urllib.error.URLError) as error:
            status = type(error).__name__
        with tally.lock:
            tally.pings += 1
            if status != 200:
                tally.ping_misses.append(f"{status} after {time.perf_counter() - start:.2f} s")


def process_tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants (Linux /proc), in MB."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def start_server(model: Path, workers: int | None, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "sim2cloud.cli", "serve", "--model", str(model), "--host", "127.0.0.1"]
    command += ["--port", str(port)] + (["--workers", str(workers)] if workers else [])
    env = dict(os.environ, **{contract.Env.SERVING_MAX_BODY_BYTES: str(MAX_BODY)})
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{contract.PING_PATH}", timeout=2) as response:
                if response.status == 200:
                    return process, port
        except (OSError, urllib.error.URLError):
            pass
        if process.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    process.kill()
    raise SystemExit("server never became ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300, help="how long the mixed traffic runs")
    parser.add_argument("--model", type=Path, help="model dir or model.tar.gz (default: train a quick one)")
    parser.add_argument("--workers", type=int, help="server workers (default: the server's own default)")
    parser.add_argument("--good-clients", type=int, default=4)
    parser.add_argument("--bad-clients", type=int, default=2)
    parser.add_argument("--slow-clients", type=int, default=8, help="half drip 1 byte/s, half stall")
    args = parser.parse_args()
    print(source_line(), flush=True)

    with tempfile.TemporaryDirectory(prefix="sim2cloud-soak-") as work_name:
        work = Path(work_name)
        model = args.model
        if model is None:
            print(f"training a quick model (1 epoch at imgsz {IMGSZ}) ...", flush=True)
            model = train_quick_model(work)
        images = good_images(8)
        log = work / "serve.log"
        server, port = start_server(model, args.workers, log)
        initial_workers = len(re.findall("Booting worker with pid", log.read_text(errors="replace")))
        tally, stop = Tally(), threading.Event()
        threads = [threading.Thread(target=pinger, args=(port, tally, stop))]
        threads += [
            threading.Thread(target=good_client, args=(port, images, tally, stop, i)) for i in range(args.good_clients)
        ]
        cases = bad_requests(images[0])
        threads += [
            threading.Thread(target=bad_client, args=(port, cases, tally, stop, i * 5)) for i in range(args.bad_clients)
        ]
        threads += [
            threading.Thread(target=slow_client, args=(port, tally, stop, i % 2 == 1)) for i in range(args.slow_clients)
        ]
        samples: list[tuple[float, float]] = []
        print(f"soaking for {args.seconds:g} s on 127.0.0.1:{port} ...", flush=True)
        start = time.monotonic()
        try:
            for thread in threads:
                thread.start()
            next_report = start + 30
            while (now := time.monotonic()) < start + args.seconds:
                samples.append((now - start, process_tree_rss_mb(server.pid)))
                if now >= next_report:
                    with tally.lock:
                        done = len(tally.latencies)
                    print(f"  {now - start:5.0f} s: {done} good requests, RSS {samples[-1][1]:.0f} MB", flush=True)
                    next_report += 30
                time.sleep(min(2.0, max(0.0, start + args.seconds - now)))
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=90)
            elapsed = time.monotonic() - start
            server.terminate()
            server.wait(timeout=60)
        text = log.read_text(errors="replace")

    booted = len(re.findall("Booting worker with pid", text))
    restarts = booted - initial_workers + len(re.findall("WORKER TIMEOUT", text))
    server_errors = sum(n for key, n in tally.statuses.items() if re.search(r" 5\d\d$", key))
    latencies = np.array(tally.latencies) * 1000
    total = sum(tally.statuses.values())
    kept = [(t, rss) for t, rss in samples if t >= WARM_UP_FRACTION * args.seconds]
    slope = float(np.polyfit([t for t, _ in kept], [rss for _, rss in kept], 1)[0]) * 60 if len(kept) >= 3 else 0.0

    print(f"\nran {elapsed:.0f} s; workers {initial_workers}; slow connections opened {tally.slow_connections}")
    print(f"throughput: {len(latencies) / elapsed:.1f} good requests/s, {total / elapsed:.1f} requests/s in all")
    if len(latencies):
        p50, p99 = np.percentile(latencies, 50), np.percentile(latencies, 99)
        print(f"good requests: {len(latencies)}, latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"5xx answers: {server_errors} (must be 0)")
    print(f"worker restarts: {restarts} (must be 0)")
    deadline = contract.SERVING_PING_DEADLINE_SECONDS
    print(f"/ping misses (non-200 or over {deadline:g} s): {len(tally.ping_misses)} of {tally.pings} (must be 0)")
    if kept:
        print(
            f"memory (server processes, RSS): {samples[0][1]:.0f} MB at start, {kept[0][1]:.0f} MB after the "
            f"{kept[0][0]:.0f} s warm-up, {samples[-1][1]:.0f} MB at the end; slope after warm-up {slope:+.2f} MB/min"
        )
    print("answers by kind: " + ", ".join(f"{key}: {n}" for key, n in sorted(tally.statuses.items())))
    if tally.unexpected:
        print("UNEXPECTED: " + ", ".join(f"{key} x{n}" for key, n in tally.unexpected.most_common()))
    if tally.ping_misses:
        print("ping misses: " + "; ".join(tally.ping_misses[:10]))
    failed = server_errors or restarts or tally.ping_misses or tally.unexpected
    print("verdict: " + ("FAILED" if failed else "met (0 5xx, 0 restarts, 0 ping misses, every answer as expected)"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
