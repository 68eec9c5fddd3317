"""Baseline for bench/serving_latency.py: the simplest server one would write around Ultralytics.

A standard-library HTTP server whose POST /invocations runs ``YOLO(model.pt).predict`` on the request's
image bytes and answers JSON boxes; one request at a time (Ultralytics models are not thread-safe), PyTorch
using every core for each request. Not part of the product.

    python bench/baseline_ultralytics_server.py --model out/model/model.pt --port 8090
"""

from __future__ import annotations

import argparse
import io
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model.pt")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args()

    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    model = YOLO(str(args.model))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *values: object) -> None:  # quiet: the benchmark floods requests
            return

        def do_GET(self) -> None:
            self._answer(200, {"status": "ok"})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rgb = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
            (result,) = model.predict(rgb[..., ::-1], imgsz=args.imgsz, verbose=False)
            boxes = result.boxes
            detections = [
                {"class_id": int(c), "confidence": float(s), "box": [float(v) for v in b]}
                for c, s, b in zip(boxes.cls.tolist(), boxes.conf.tolist(), boxes.xyxy.tolist(), strict=True)
            ]
            self._answer(200, {"predictions": [{"detections": detections}]})

        def _answer(self, status: int, document: dict) -> None:
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
