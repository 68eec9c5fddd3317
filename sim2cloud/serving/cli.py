"""``sim2cloud serve``: the container's ``serve`` (SageMaker runs ``docker run <image> serve``).

The model is a dir holding model.onnx + model.json, a model.tar.gz (extracted to a temp dir), or by
default SageMaker's ``/opt/ml/model`` (under SIM2CLOUD_SM_BASE_DIR when set).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sim2cloud import contract


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        help="model dir, its model.onnx, a `sim2cloud train --out` folder or a model.tar.gz (default: <base>/model)",
    )
    parser.add_argument("--host", default="0.0.0.0", help="bind address (0.0.0.0 in the container)")  # noqa: S104
    parser.add_argument("--port", type=int, help=f"port (default ${contract.Env.SERVING_PORT} or 8080)")
    parser.add_argument(
        "--workers", type=int, help=f"worker processes (default ${contract.Env.SERVING_WORKERS} or cores)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help=(
            f"ONNX Runtime intra-op threads per worker "
            f"(default ${contract.Env.SERVING_THREADS} or cores / workers, at least 2)"
        ),
    )


def run(args: argparse.Namespace) -> int:
    from sim2cloud.serving.launcher import serve_forever
    from sim2cloud.serving.model import default_intra_op_threads, opened_model
    from sim2cloud.serving.requests import ServingLimits, default_workers

    environ = dict(os.environ)
    base = environ.get(contract.Env.SM_BASE_DIR) or contract.SM_DEFAULT_BASE_DIR
    model_path = args.model or Path(contract.SageMakerPaths(base=base).model_dir)
    try:  # every setting is checked before the model is unpacked or anything starts
        port = args.port or int(environ.get(contract.Env.SERVING_PORT) or contract.SERVING_DEFAULT_PORT)
        workers = args.workers or default_workers(environ)
        threads = args.threads or int(environ.get(contract.Env.SERVING_THREADS) or default_intra_op_threads(workers))
        ServingLimits.from_environ(environ)
    except ValueError as error:
        raise SystemExit(f"sim2cloud serve: {error}") from None
    try:
        with opened_model(model_path) as model_dir:  # gunicorn exits through SystemExit: the cleanup runs
            serve_forever(model_dir, args.host, port, workers, threads, environ)
    except FileNotFoundError as error:
        raise SystemExit(f"sim2cloud serve: {error}") from error
    return 0
