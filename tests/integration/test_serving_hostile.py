"""The endpoint under hostile traffic: a real ``sim2cloud serve`` (nginx + gunicorn + ONNX Runtime) on loopback.

Each test reproduces one way a client used to hurt the server (a 500, a killed worker, a starved /ping, a broken
pipe, a decompression bomb decoded in full) and checks the answer is now the right 4xx with a JSON reason. A
pinger thread asks /ping every 0.2 s for the whole module with SageMaker's 2 s deadline; every test ends by
checking that each of those pings got 200 in time and that no worker was restarted.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from bench.tiny_data import yolo_test_helpers
from sim2cloud import contract
from sim2cloud.local.runner import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
WORKERS = 2
MAX_BODY = 2_000_000
MAX_IMAGES = 16
MAX_PIXELS = 4_000_000
CLIENT_TIMEOUT = 2.0


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **extra)
    env.pop(contract.Env.SM_BASE_DIR, None)
    return env


TINY = yolo_test_helpers()
"""build_tiny_dataset and png_declaring from the YOLO unit tests' conftest."""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model from the real training job: one tiny epoch (what it detects does not matter here)."""
    root = tmp_path_factory.mktemp("hostile")
    dataset = TINY.build_tiny_dataset(root / "dataset", train_images=8, val_images=4)
    command = [sys.executable, "-m", "sim2cloud.cli", "train", "--dataset", str(dataset), "--out", str(root / "job")]
    command += ["--hp", "epochs=1", "--hp", "imgsz=64", "--hp", "batch=4", "--hp", "workers=0", "--no-progress"]
    completed = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return Path(contract.SageMakerPaths(base=str(root / "job")).model_dir)


class Server:
    """``sim2cloud serve`` with its log in a file, and a pinger holding it to SageMaker's /ping deadline."""

    def __init__(self, model: Path, log: Path, **limits: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.failed_pings: list[str] = []
        self.pings = 0
        self._stop = threading.Event()
        command = [sys.executable, "-m", "sim2cloud.cli", "serve", "--model", str(model), "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", str(WORKERS), "--threads", "1"]
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                command, stdout=sink, stderr=subprocess.STDOUT, env=_env(**limits), cwd=REPO
            )
        deadline = time.monotonic() + 120
        while self._ping() != 200:
            assert self.process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.1)
        self._pinger = threading.Thread(target=self._ping_forever, daemon=True)
        self._pinger.start()

    def _ping(self) -> int | str:
        try:
            with urllib.request.urlopen(
                self.url + contract.PING_PATH, timeout=contract.SERVING_PING_DEADLINE_SECONDS
            ) as r:
                return int(r.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (OSError, urllib.error.URLError) as error:
            return f"{type(error).__name__}: {error}"

    def _ping_forever(self) -> None:
        while not self._stop.wait(0.2):
            answer = self._ping()
            self.pings += 1
            if answer != 200:
                self.failed_pings.append(f"{time.strftime('%H:%M:%S')} {answer}")

    def assert_healthy(self) -> None:
        """Every ping so far answered 200 within the deadline, and the first workers are still the only ones."""
        assert self._ping() == 200
        assert self.failed_pings == []
        log = self.log.read_text(errors="replace")
        assert len(re.findall(r"Booting worker with pid", log)) == WORKERS, log[-3000:]
        assert "WORKER TIMEOUT" not in log
        assert self.process.poll() is None

    def stop_pinger(self) -> None:
        self._stop.set()
        self._pinger.join(timeout=5)

    def stop(self) -> None:
        self.stop_pinger()
        self.process.terminate()
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(
        model_dir,
        tmp_path_factory.mktemp("server") / "serve.log",
        **{
            contract.Env.SERVING_MAX_BODY_BYTES: str(MAX_BODY),
            contract.Env.SERVING_MAX_IMAGES: str(MAX_IMAGES),
            contract.Env.SERVING_MAX_IMAGE_PIXELS: str(MAX_PIXELS),
            contract.Env.SERVING_CLIENT_TIMEOUT_SECONDS: str(CLIENT_TIMEOUT),
        },
    )
    try:
        yield running
    finally:
        running.stop()


def _post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_deeply_nested_json_is_400(server: Server) -> None:
    status, body = _post(server.url + contract.INVOCATIONS_PATH, b"[" * 5000, "application/json")
    assert status == 400
    assert "nested too deeply" in body["error"]
    status, body = _post(server.url + contract.INVOCATIONS_PATH, b'{"image": ' * 5000, "application/json")
    assert status == 400
    server.assert_healthy()


def test_too_many_images_is_413_before_any_is_decoded(server: Server) -> None:
    one_pixel = base64.b64encode(_png(1, 1)).decode()
    url = server.url + contract.INVOCATIONS_PATH
    status, body = _post(url, json.dumps({"images": [one_pixel] * 7000}).encode(), "application/json")
    assert status == 413
    assert f"7000 images in one request; the limit is {MAX_IMAGES}" in body["error"]
    assert contract.Env.SERVING_MAX_IMAGES in body["error"]
    # Anything over the limit is refused before decoding: the extra item is not even an image.
    status, body = _post(url, json.dumps({"images": [one_pixel] * MAX_IMAGES + [5]}).encode(), "application/json")
    assert status == 413
    status, body = _post(url, json.dumps({"images": [one_pixel] * MAX_IMAGES}).encode(), "application/json")
    assert status == 200
    assert len(body["predictions"]) == MAX_IMAGES
    server.assert_healthy()


def _drip(port: int, head: bytes, body: bytes, stop: threading.Event, answers: list[bytes]) -> None:
    """A client sending its request one byte at a time, 4 per second, until ``stop``; keeps what it is answered."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(CLIENT_TIMEOUT * 3)
        try:
            sock.sendall(head)
            for byte in body:
                if stop.wait(0.25):
                    break
                sock.sendall(bytes([byte]))
            stop.wait()
            answers.append(sock.recv(4096))
        except OSError as error:  # the server closed a connection that had stopped sending
            answers.append(f"{type(error).__name__}".encode())


def test_slow_and_stalled_clients_cannot_starve_ping(server: Server, model_dir: Path) -> None:
    """More slow clients than workers: headers dripping, bodies dripping, bodies stalled. /ping (the pinger) and a
    normal request are served throughout; the slow ones are cut off after the client timeout."""
    request_head = (
        b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n"
    )
    stop = threading.Event()
    answers: list[bytes] = []
    clients = []
    for index in range(3 * WORKERS):
        head, body = (
            (b"", request_head) if index % 3 == 0 else (request_head, b"\xff" * (5000 if index % 3 == 1 else 1))
        )
        clients.append(threading.Thread(target=_drip, args=(server.port, head, body, stop, answers), daemon=True))
    for client in clients:
        client.start()
    time.sleep(1.0)  # every slow client is connected and has sent something
    pings_before = server.pings
    image = (model_dir.parent.parent / "dataset/images/val").glob("*.jpg")
    status, body = _post(server.url + contract.INVOCATIONS_PATH, next(iter(image)).read_bytes(), "image/jpeg")
    assert status == 200
    assert body["predictions"][0]["width"] == 128
    time.sleep(CLIENT_TIMEOUT + 1.0)
    stop.set()
    for client in clients:
        client.join(timeout=CLIENT_TIMEOUT * 4)
    assert server.pings - pings_before >= 5  # the pinger kept going while the slow clients were connected
    # Every slow client was disconnected (with 408 or a bare close) instead of holding the server.
    assert len(answers) == len(clients)
    closed = (b"", b"ConnectionResetError", b"BrokenPipeError")
    assert all(answer in closed or answer.startswith(b"HTTP/1.1 408") for answer in answers), answers
    server.assert_healthy()


def test_chunked_upload_over_the_limit_is_413(server: Server) -> None:
    """No Content-Length to check up front: the front counts the chunks and answers 413, not a broken pipe."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    chunk = b"\xff" * 65536
    chunks = (chunk for _ in range(3 * MAX_BODY // len(chunk)))
    connection.request(
        "POST", contract.INVOCATIONS_PATH, body=chunks, headers={"Content-Type": "image/jpeg"}, encode_chunked=True
    )
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert response.status == 413
    assert f"limit of {MAX_BODY} bytes" in answer["error"]
    assert contract.Env.SERVING_MAX_BODY_BYTES in answer["error"]
    server.assert_healthy()


def test_decompression_bombs_are_refused_from_their_header(server: Server) -> None:
    url = server.url + contract.INVOCATIONS_PATH
    bomb = TINY.png_declaring(4000, 4000, with_pixels=True)  # 16 MP of black: 48 MB decoded from ~50 KB
    assert len(bomb) < MAX_BODY // 10
    status, body = _post(url, bomb, "image/png")
    assert status == 413
    assert f"4000x4000 = 16000000 pixels, above the limit of {MAX_PIXELS}" in body["error"]
    assert contract.Env.SERVING_MAX_IMAGE_PIXELS in body["error"]
    # The same header with no pixel data: refused for its declared size, not reported as truncated, so the
    # decision was made before decoding.
    status, body = _post(url, TINY.png_declaring(12000, 12000), "image/png")
    assert status == 413
    assert "12000x12000" in body["error"]
    status, body = _post(url, TINY.png_declaring(100, 100), "image/png")
    assert status == 400
    server.assert_healthy()


def test_front_answers_malformed_http_with_json(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")
        answer = sock.recv(4096)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["error"] == "malformed HTTP request"
    for path in ("/nothing", "/.sim2cloud-error/413"):
        request = urllib.request.Request(server.url + path)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 404
        assert json.loads(caught.value.read())["error"]
    server.assert_healthy()


def test_ping_answers_while_every_worker_is_busy(server: Server) -> None:
    """Workers held still (SIGSTOP: as if each ran a long batch) do not delay /ping: the front answers it."""
    workers = [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", server.log.read_text())]
    assert len(workers) == WORKERS
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(3):
            with urllib.request.urlopen(
                server.url + contract.PING_PATH, timeout=contract.SERVING_PING_DEADLINE_SECONDS
            ) as r:
                assert r.status == 200
                assert json.loads(r.read())["status"] == "ok"
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    server.assert_healthy()


def test_time_budget_ends_a_long_batch_with_413(model_dir: Path, tmp_path: Path) -> None:
    """A budget far below one image's inference time: a lone image is still served, a batch is cut off."""
    budget = Server(model_dir, tmp_path / "serve.log", **{contract.Env.SERVING_TIME_BUDGET_SECONDS: "0.000001"})
    try:
        image = base64.b64encode(_png(64, 48)).decode()
        url = budget.url + contract.INVOCATIONS_PATH
        status, body = _post(url, json.dumps({"image": image}).encode(), "application/json")
        assert status == 200
        status, body = _post(url, json.dumps({"images": [image] * 3}).encode(), "application/json")
        assert status == 413
        assert "time budget" in body["error"]
        assert contract.Env.SERVING_TIME_BUDGET_SECONDS in body["error"]
        budget.assert_healthy()
    finally:
        budget.stop()


def _processes(field: int, value: int, name: str) -> list[int]:
    """Live processes called ``name`` whose /proc stat field ``field`` (1: parent, 2: process group) is ``value``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            comm, _, rest = stat.read_text().partition(") ")
        except OSError:
            continue
        fields = rest.split()
        if comm.endswith(f"({name}") and int(fields[field]) == value and fields[0] != "Z":  # Z: exited, unreaped
            found.append(int(stat.parent.name))
    return found


def test_server_stops_when_its_front_dies(model_dir: Path, tmp_path: Path) -> None:
    """Without nginx nobody can reach the workers: serve stops them and exits non-zero, so the container is
    replaced instead of answering nothing."""
    running = Server(model_dir, tmp_path / "serve.log")
    running.stop_pinger()
    (front,) = _processes(1, running.process.pid, "nginx")
    os.kill(front, signal.SIGKILL)  # as the OOM killer would: its worker is orphaned, still holding the port
    assert running.process.wait(timeout=60) == 1
    assert "nginx (the front) exited" in running.log.read_text()
    assert _processes(2, front, "nginx") == []  # the orphaned worker was stopped too


def test_bad_limit_stops_serve_before_it_starts(model_dir: Path) -> None:
    command = [sys.executable, "-m", "sim2cloud.cli", "serve", "--model", str(model_dir), "--port", str(free_port())]
    env = _env(**{contract.Env.SERVING_MAX_IMAGES: "0"})
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert completed.returncode != 0
    assert f"{contract.Env.SERVING_MAX_IMAGES}='0' must be positive" in completed.stderr
