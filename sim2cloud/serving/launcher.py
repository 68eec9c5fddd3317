"""The production server behind the container's ``serve``: nginx in front, gunicorn running the falcon app behind.

Why a buffering front: gunicorn's sync workers handle one connection at a time, and inference is CPU/GPU
bound, so concurrency comes from worker processes (each with its own ONNX Runtime session and a share of the
cores) that must never wait on a network peer. A client sending 1 byte/s would otherwise hold a worker for as
long as it likes, and two of them starve a two-worker server: ``/ping`` misses SageMaker's 2 s deadline and the
instance is taken out of service. gunicorn's own documentation asks for a buffering proxy in front of sync
workers for exactly this reason (gthread workers only move the limit from workers to threads: each slow
client still holds a thread while it drips). nginx reads every request in full (headers within the client
timeout in total, the body with at most the client timeout between two reads, chunked bodies included, up to
the body limit, else 413) on an event loop that holds thousands of idle or slow connections cheaply, and only
then hands the complete request to a free gunicorn worker over a private unix socket. Workers therefore only
ever see complete requests.

``/ping`` never waits for a worker either: the first worker to load the model writes the ping answer into a file
in the server's private directory, and nginx serves that file from then on (before it exists, /ping goes to a
worker, which answers 503 "loading" or "failed"). So /ping meets SageMaker's 2 s deadline however long the
requests in flight take (a worker that hangs is restarted by gunicorn after its timeout; the model files do not
change while the server runs, so a loaded model stays loadable).

nginx-generated errors (413 for a body over the limit, 400 for malformed HTTP, 408 for a client too slow)
answer ``{"error": ...}`` like the app's own. nginx runs as a child of the gunicorn master process: if either
dies, the other is stopped and ``serve`` exits non-zero so SageMaker replaces the container.
"""

from __future__ import annotations

import ctypes
import getpass
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from sim2cloud import contract
from sim2cloud.serving.requests import ServingLimits

WORKER_TIMEOUT_SECONDS = 120
"""A worker silent this long is restarted; the time budget (at most a quarter of it by default) ends every
request well before."""
GRACEFUL_TIMEOUT_SECONDS = 30
"""SageMaker stops a container with SIGTERM; in-flight requests get this long to finish."""
KEEPALIVE_SECONDS = 75
"""Longer than the SageMaker/ALB idle timeout (60 s), so the front end closes idle connections first."""
FRONT_CONNECTIONS = 4096
"""Connections nginx holds at once (idle, slow and active together); each costs a few KB until its body comes."""
FRONT_BODY_BUFFER_BYTES = 128 * 1024
"""A body up to this size stays in memory in nginx (a 640x640 JPEG is ~100 KB); larger ones go to a temp file."""
NGINX = "nginx"
"""The front's executable (Debian package ``nginx``: scripts/bootstrap.sh and the YOLO image install it)."""

# nginx-generated errors, answered as JSON like the app's own (status: message).
FRONT_ERRORS = {
    400: "malformed HTTP request",
    404: "no such path",
    408: "the client sent its request too slowly (limit: {client_timeout:g} s, {client_timeout_var})",
    411: "a body needs Content-Length or chunked Transfer-Encoding",
    413: "body exceeds the limit of {max_body} bytes ({max_body_var})",
    414: "request line too long",
    494: "request headers too large",
    502: "model server not running yet",
    504: "the model server did not answer within {worker_timeout} s",
}
FRONT_ERROR_STATUS = {494: 400, 502: 503}
"""Statuses nginx uses internally, mapped to what the client sees (503 for 'not ready', as /ping does)."""
FRONT_ERROR_PREFIX = "/.sim2cloud-error/"
"""Internal locations of those answers (``internal``: a client asking for them gets 404)."""
FRONT_READY_URI = "/.sim2cloud-ready"
"""Internal location serving the ready file as the /ping answer."""
READY_FILE_NAME = "ping.json"
"""In the server's private directory: written by the first worker whose model loaded (ModelHolder)."""
ACCESS_LOG_FORMAT = '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
"""gunicorn's default access line with the client's address (nginx forwards it) and the time taken."""


class ServingApplication(BaseApplication):
    def __init__(
        self, model_dir: Path, options: dict[str, Any], environ: Mapping[str, str], threads: int, ready_file: Path
    ) -> None:
        self.ready_file = ready_file
        self.model_dir = model_dir
        self.options = options
        self.environ = dict(environ)
        self.intra_op_threads = threads
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Called in each worker after fork (no preload): one ONNX Runtime session per worker.
        from sim2cloud.serving.app import create_app

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
        return create_app(self.model_dir, self.environ, self.intra_op_threads, self.ready_file)


def _listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def nginx_config(
    host: str, port: int, upstream_socket: Path, work_dir: Path, limits: ServingLimits, user: str | None
) -> str:
    """The front's whole configuration (no include of the system's): listen, limits, JSON errors, proxy."""
    client_timeout = f"{limits.client_timeout_seconds:g}s"
    values = {
        "client_timeout": limits.client_timeout_seconds,
        "client_timeout_var": contract.Env.SERVING_CLIENT_TIMEOUT_SECONDS,
        "max_body": limits.max_body_bytes,
        "max_body_var": contract.Env.SERVING_MAX_BODY_BYTES,
        "worker_timeout": WORKER_TIMEOUT_SECONDS,
    }
    error_pages = []
    error_locations = []
    for status, message in FRONT_ERRORS.items():
        body = json.dumps({"error": message.format(**values)}).replace("'", "\\'")
        # URI targets, not named locations: a malformed request line has no URI to carry into a named one.
        error_pages.append(f"        error_page {status} {FRONT_ERROR_PREFIX}{status};")
        error_locations.append(
            f"        location = {FRONT_ERROR_PREFIX}{status} {{ internal; "
            f"return {FRONT_ERROR_STATUS.get(status, status)} '{body}\\n'; }}"
        )
    user_line = f"user {user};" if user else ""
    ready_file = work_dir / READY_FILE_NAME
    return f"""# Generated by sim2cloud.serving.launcher for one server run.
{user_line}
worker_processes 1;
daemon off;
pid {work_dir}/nginx.pid;
error_log stderr error;
events {{ worker_connections {FRONT_CONNECTIONS}; }}
http {{
    access_log off;
    server_tokens off;
    default_type application/json;
    client_body_temp_path {work_dir}/temp-body;
    proxy_temp_path {work_dir}/temp-proxy;
    fastcgi_temp_path {work_dir}/temp-fastcgi;
    uwsgi_temp_path {work_dir}/temp-uwsgi;
    scgi_temp_path {work_dir}/temp-scgi;
    client_max_body_size {limits.max_body_bytes};
    client_body_buffer_size {FRONT_BODY_BUFFER_BYTES};
    client_header_timeout {client_timeout};
    client_body_timeout {client_timeout};
    send_timeout {client_timeout};
    keepalive_timeout {KEEPALIVE_SECONDS}s;
    server {{
        listen {_listen_address(host, port)} backlog=2048;
{chr(10).join(error_pages)}
        location = {contract.PING_PATH} {{
            if (-f {ready_file}) {{
                rewrite ^ {FRONT_READY_URI} last;
            }}
            proxy_pass http://unix:{upstream_socket}:;
        }}
        location = {FRONT_READY_URI} {{
            internal;
            alias {ready_file};
        }}
        location / {{
            proxy_pass http://unix:{upstream_socket}:;
            proxy_request_buffering on;
            proxy_buffering on;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_connect_timeout 5s;
            proxy_send_timeout {client_timeout};
            proxy_read_timeout {WORKER_TIMEOUT_SECONDS}s;
        }}
{chr(10).join(error_locations)}
    }}
}}
"""


def _stop_with_parent() -> None:
    """In the nginx child before exec: SIGTERM when the server process dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def start_front(config: str, work_dir: Path) -> subprocess.Popen[bytes]:
    executable = shutil.which(NGINX)
    if executable is None:
        raise SystemExit(
            "sim2cloud serve: nginx not found on PATH; it buffers slow clients in front of the model workers "
            "(install the Debian package 'nginx': scripts/bootstrap.sh does)"
        )
    config_path = work_dir / "nginx.conf"
    config_path.write_text(config)
    # -e: nginx writes to its compiled-in error log before it reads the config; keep even that on stderr.
    command = [executable, "-e", "stderr", "-p", str(work_dir), "-c", str(config_path)]
    checked = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        raise SystemExit(f"sim2cloud serve: nginx refused its configuration: {checked.stderr.strip()}")
    # Its own process group, so that stopping it reaches its workers even when its master is gone.
    return subprocess.Popen(command, preexec_fn=_stop_with_parent, start_new_session=True)


class FrontWatch:
    """Stops the gunicorn master (this process) when nginx exits on its own: a server with no front serves no one."""

    def __init__(self, front: subprocess.Popen[bytes]) -> None:
        self.front = front
        self.stopping = threading.Event()
        self.failed = threading.Event()
        threading.Thread(target=self._watch, name="front-watch", daemon=True).start()

    def _watch(self) -> None:
        self.front.wait()  # gunicorn may reap nginx first (waitpid(-1)); wait() then returns all the same
        if not self.stopping.is_set():
            self.failed.set()
            os.kill(os.getpid(), signal.SIGTERM)  # gunicorn's graceful stop

    def stop(self) -> None:
        """Stops nginx's whole process group: also workers orphaned by a master that was killed outright."""
        self.stopping.set()
        for stop_signal in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.front.pid, stop_signal)
            except ProcessLookupError:
                return
            try:
                self.front.wait(timeout=GRACEFUL_TIMEOUT_SECONDS)
                return
            except subprocess.TimeoutExpired:
                continue


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # until gunicorn installs its own handlers: clean up on the way out


def serve_forever(
    model_dir: Path, host: str, port: int, workers: int, threads: int, environ: Mapping[str, str]
) -> None:
    limits = ServingLimits.from_environ(environ)  # a bad limit stops the server here, before anything starts
    work_dir = Path(tempfile.mkdtemp(prefix="sim2cloud-serve-"))
    upstream_socket = work_dir / "model.sock"
    options = {
        "bind": f"unix:{upstream_socket}",
        "workers": workers,
        "worker_class": "sync",
        "timeout": WORKER_TIMEOUT_SECONDS,
        "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "sim2cloud-serve",
        # gunicorn's control socket is a shared path under $HOME: unneeded here, and it would collide
        # between servers on one machine (and fail for a non-root user without a writable home).
        "control_socket_disable": True,
    }
    front_user = None
    if os.geteuid() == 0:
        # The masters keep root (they only bind and supervise); nginx workers and gunicorn workers, which parse
        # what clients send, run as the serving user (gunicorn hands it the socket; the work dir is its own).
        run_as = environ.get(contract.Env.SERVING_USER)
        front_user = run_as or getpass.getuser()
        if run_as:
            options["user"] = run_as
            options["group"] = run_as
            shutil.chown(work_dir, run_as, run_as)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    master_pid = os.getpid()
    watch = None
    try:
        watch = FrontWatch(
            start_front(nginx_config(host, port, upstream_socket, work_dir, limits, front_user), work_dir)
        )
        ServingApplication(model_dir, options, environ, threads, work_dir / READY_FILE_NAME).run()
    finally:
        # gunicorn workers are forked inside run() and leave it through SystemExit too: only the master cleans up.
        if os.getpid() == master_pid:
            if watch is not None:
                watch.stop()
            shutil.rmtree(work_dir, ignore_errors=True)
            if watch is not None and watch.failed.is_set():
                raise SystemExit("sim2cloud serve: nginx (the front) exited; stopped the model server")
