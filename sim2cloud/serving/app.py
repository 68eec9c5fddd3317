"""The WSGI app (falcon): ``GET /ping`` and ``POST /invocations`` with the SageMaker container contract.

The model loads in a background thread when the app is created in a worker, so ``/ping`` answers 503 until
the session is ready and 200 after; an invocation that reaches a worker still loading (another worker answered
the ping) waits for the load instead of failing, and gets 503 only if the model cannot be loaded.
Client errors answer 400/413/415 with ``{"error": ...}``; nothing a
client sends reaches the 500 path, and a request never takes the worker down: the limits of ServingLimits
(images per request, pixels per image, body size, time budget) bound the work one request can cause.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import falcon

from sim2cloud import contract
from sim2cloud.serving.model import ImageDecodeError, ImageTooLargeError, OnnxDetector, decode_image
from sim2cloud.serving.requests import ClientError, ServingLimits, images_from_body, parse_thresholds

LOG = logging.getLogger("sim2cloud.serve")
DRAIN_CHUNK_BYTES = 1 << 20
LIMIT_VAR = contract.Env.SERVING_MAX_BODY_BYTES
LOAD_WAIT_SECONDS = 60.0
"""An invocation reaching a worker whose model is still loading waits this long for it (then 503)."""


class ModelHolder:
    """Loads the detector once (in a thread) and tells whether it is ready."""

    def __init__(self, model_dir: Path, intra_op_threads: int | None, ready_file: Path | None = None) -> None:
        self.model_dir = model_dir
        self.intra_op_threads = intra_op_threads
        self.ready_file = ready_file
        self.detector: OnnxDetector | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._load, name="model-loader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _load(self) -> None:
        try:
            self.detector = OnnxDetector(self.model_dir, intra_op_threads=self.intra_op_threads)
            LOG.info("model %s loaded (%s)", self.detector.version, ", ".join(self.detector.providers))
            if self.ready_file is not None:
                self._announce_ready(self.ready_file, self.detector.version)
        except Exception as error:  # reported by /ping and /invocations as 503
            self.error = f"{type(error).__name__}: {error}"
            LOG.exception("model load failed")

    @staticmethod
    def _announce_ready(ready_file: Path, version: str) -> None:
        """The /ping answer the front serves from now on (written whole, then renamed into place)."""
        partial = ready_file.with_name(f".{ready_file.name}.{os.getpid()}")
        partial.write_text(json.dumps(ping_ok(version)))
        partial.replace(ready_file)


def ping_ok(version: str) -> dict[str, str]:
    return {"status": "ok", "model_version": version}


def _json(resp: falcon.Response, status: int, document: dict[str, Any]) -> None:
    resp.status = falcon.code_to_http_status(status)
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(document)


class PingResource:
    def __init__(self, holder: ModelHolder) -> None:
        self.holder = holder

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.holder.detector is None:
            _json(resp, 503, {"status": "failed" if self.holder.error else "loading", "error": self.holder.error})
        else:
            _json(resp, 200, ping_ok(self.holder.detector.version))


class InvocationsResource:
    def __init__(self, holder: ModelHolder, limits: ServingLimits) -> None:
        self.holder = holder
        self.limits = limits
        self.body_limit = limits.max_body_bytes

    def _read_body(self, req: falcon.Request) -> bytes:
        if req.content_length is not None and req.content_length > self.body_limit:
            # Drain what the client sends so it reads the 413 instead of a reset connection mid-upload.
            while req.bounded_stream.read(DRAIN_CHUNK_BYTES):
                pass
            raise ClientError(
                413, f"body of {req.content_length} bytes exceeds the limit of {self.body_limit} ({LIMIT_VAR})"
            )
        body = req.bounded_stream.read(self.body_limit + 1)
        if len(body) > self.body_limit:
            raise ClientError(413, f"body exceeds the limit of {self.body_limit} bytes ({LIMIT_VAR})")
        return body

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.holder.detector is None and self.holder.error is None:
            # /ping answered 200 from another worker; this one is still loading: wait rather than fail.
            self.holder.wait(LOAD_WAIT_SECONDS)
        detector = self.holder.detector
        if detector is None:
            _json(resp, 503, {"error": f"model not loaded: {self.holder.error or 'loading'}"})
            return
        try:
            thresholds = parse_thresholds(req.get_header(contract.CUSTOM_ATTRIBUTES_HEADER))
            encoded = images_from_body(req.content_type, self._read_body(req), self.limits.max_images)
            deadline = time.monotonic() + self.limits.time_budget_seconds
            predictions = []
            for index, data in enumerate(encoded):
                if index and time.monotonic() > deadline:
                    raise ClientError(
                        413,
                        f"{len(encoded)} images need more than the time budget of {self.limits.time_budget_seconds:g} "
                        f"s ({contract.Env.SERVING_TIME_BUDGET_SECONDS}); {index} were done: send fewer per request",
                    )
                try:
                    rgb = decode_image(data, self.limits.max_image_pixels)
                except ImageTooLargeError as error:
                    raise ClientError(
                        413, f"image[{index}]: {error} ({contract.Env.SERVING_MAX_IMAGE_PIXELS})"
                    ) from None
                except ImageDecodeError as error:
                    raise ClientError(400, f"image[{index}]: {error}") from None
                detections = detector.detect(rgb, thresholds)
                predictions.append(
                    {
                        "width": int(rgb.shape[1]),
                        "height": int(rgb.shape[0]),
                        "detections": [d.to_json() for d in detections],
                    }
                )
        except ClientError as error:
            _json(resp, error.status, {"error": error.message})
            return
        _json(resp, 200, {"model_version": detector.version, "predictions": predictions})


def _unexpected(req: falcon.Request, resp: falcon.Response, error: Exception, params: Mapping[str, Any]) -> None:
    if isinstance(error, falcon.HTTPError):  # routing errors (404/405) keep their status
        _serialize_error(req, resp, error)
        return
    LOG.exception("internal error on %s %s", req.method, req.path)
    _json(resp, 500, {"error": f"internal error: {type(error).__name__}"})


def _serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Falcon's own errors (no route: 404, wrong method: 405) in the same ``{"error": ...}`` shape as ours."""
    _json(resp, int(error.status_code), {"error": error.title or str(error.status)})


def create_app(
    model_dir: Path, environ: Mapping[str, str], intra_op_threads: int | None = None, ready_file: Path | None = None
) -> falcon.App:
    """One app per worker process: starts loading the model and returns at once. ``ready_file`` (from the
    launcher) receives the /ping answer once the model is loaded, for the front to serve without a worker."""
    holder = ModelHolder(model_dir, intra_op_threads, ready_file)
    holder.start()
    app = falcon.App()
    app.add_route(contract.PING_PATH, PingResource(holder))
    app.add_route(contract.INVOCATIONS_PATH, InvocationsResource(holder, ServingLimits.from_environ(environ)))
    app.add_error_handler(Exception, _unexpected)
    app.set_error_serializer(_serialize_error)

    return app
