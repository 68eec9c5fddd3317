"""Baseline for bench/serving_latency.py: Ultralytics served the way a user would deploy it.

gunicorn (sync workers, as many as the product server runs) in front of a small WSGI app; each worker loads
``YOLO(model.pt)`` once after the fork and answers ``POST /invocations`` with ``model.predict`` on the request's
image, JSON boxes out. Each worker's PyTorch gets its share of the cores (``--torch-threads``, by default the
same per-worker thread count the product server gives ONNX Runtime), so N workers do not oversubscribe N
cores: the strongest plain-Ultralytics configuration on a CPU host, not a strawman. Not part of the product.

    python bench/baseline_ultralytics_server.py --model out/model/model.pt --port 8090 --workers 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gunicorn.app.base import BaseApplication  # noqa: E402

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def ultralytics_app(
    model_path: Path, imgsz: int, torch_threads: int
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app of one worker: the model is loaded here, in the worker, never shared across a fork."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import numpy as np
    import torch
    from PIL import Image
    from ultralytics import YOLO

    torch.set_num_threads(torch_threads)
    model = YOLO(str(model_path))

    def answer(start_response: StartResponse, status: str, document: dict[str, Any]) -> list[bytes]:
        payload = json.dumps(document).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if environ["REQUEST_METHOD"] == "GET":
            return answer(start_response, "200 OK", {"status": "ok"})
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        rgb = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
        results: Any = model.predict(rgb[..., ::-1], imgsz=imgsz, verbose=False)  # Ultralytics takes BGR arrays
        boxes = results[0].boxes
        detections = [
            {"class_id": int(c), "confidence": float(s), "box": [float(v) for v in b]}
            for c, s, b in zip(boxes.cls.tolist(), boxes.conf.tolist(), boxes.xyxy.tolist(), strict=True)
        ]
        return answer(start_response, "200 OK", {"predictions": [{"detections": detections}]})

    return app


class BaselineServer(BaseApplication):
    def __init__(self, options: dict[str, Any], make_app: Callable[[], Any]) -> None:
        self.options = options
        self.make_app = make_app
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.make_app()  # in each worker after the fork (no preload)


def main() -> None:
    from sim2cloud.serving.model import default_intra_op_threads
    from sim2cloud.serving.requests import default_workers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model.pt")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: the product server's default)")
    parser.add_argument("--torch-threads", type=int, help="PyTorch threads per worker (default: the product's share)")
    args = parser.parse_args()
    workers = args.workers or default_workers(os.environ)
    threads = args.torch_threads or default_intra_op_threads(workers)
    options = {
        "bind": f"127.0.0.1:{args.port}",
        "workers": workers,
        "worker_class": "sync",
        "timeout": 120,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "ultralytics-baseline",
        "control_socket_disable": True,
    }
    print(f"baseline: gunicorn, {workers} sync workers x YOLO(model.pt), {threads} torch thread(s) each", flush=True)
    BaselineServer(options, lambda: ultralytics_app(args.model, args.imgsz, threads)).run()


if __name__ == "__main__":
    main()
