"""gunicorn running the falcon app: the production server behind the container's ``serve``.

Sync workers (one request at a time each, the rest queue in the listen backlog): inference is CPU/GPU bound,
so concurrency comes from worker processes, each with its own ONNX Runtime session and a share of the cores.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from sim2cloud import contract

WORKER_TIMEOUT_SECONDS = 120
"""A worker silent this long is restarted (a large JSON batch on CPU stays well below it)."""
GRACEFUL_TIMEOUT_SECONDS = 30
"""SageMaker stops a container with SIGTERM; in-flight requests get this long to finish."""
KEEPALIVE_SECONDS = 75
"""Longer than the SageMaker/ALB idle timeout (60 s), so the front end closes idle connections first."""


class ServingApplication(BaseApplication):
    def __init__(self, model_dir: Path, options: dict[str, Any], environ: Mapping[str, str], threads: int) -> None:
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
        return create_app(self.model_dir, self.environ, intra_op_threads=self.intra_op_threads)


def serve_forever(
    model_dir: Path, host: str, port: int, workers: int, threads: int, environ: Mapping[str, str]
) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "sync",
        "timeout": WORKER_TIMEOUT_SECONDS,
        "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
        "keepalive": KEEPALIVE_SECONDS,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "sim2cloud-serve",
        # gunicorn's control socket is a shared path under $HOME: unneeded here, and it would collide
        # between servers on one machine (and fail for a non-root user without a writable home).
        "control_socket_disable": True,
    }
    run_as = environ.get(contract.Env.SERVING_USER)
    if run_as and os.geteuid() == 0:
        # The master keeps root (it only binds and supervises); workers parse requests as an unprivileged user.
        options["user"] = run_as
        options["group"] = run_as
    ServingApplication(model_dir, options, environ, threads).run()
