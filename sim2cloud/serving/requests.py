"""Turning an /invocations request into images and thresholds: plain functions, no HTTP framework.

Each problem is a ``ClientError`` carrying the HTTP status the handler answers with (400, 413, 415).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim2cloud import contract
from sim2cloud.serving.model import Thresholds

RAW_IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")
JSON_TYPE = "application/json"


class ClientError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _positive_setting(environ: Mapping[str, str], name: str, default: float, kind: type[int] | type[float]) -> Any:
    """``environ[name]`` as a positive ``kind``, else ``default``; anything else stops the server at start."""
    raw = environ.get(name)
    if not raw:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}") from None
    if not value > 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


@dataclass(frozen=True)
class ServingLimits:
    """What one request may ask of the server; each is set by the contract variable named beside it."""

    max_body_bytes: int = contract.SERVING_DEFAULT_MAX_BODY_BYTES  # Env.SERVING_MAX_BODY_BYTES
    max_images: int = contract.SERVING_DEFAULT_MAX_IMAGES  # Env.SERVING_MAX_IMAGES
    max_image_pixels: int = contract.SERVING_DEFAULT_MAX_IMAGE_PIXELS  # Env.SERVING_MAX_IMAGE_PIXELS
    time_budget_seconds: float = contract.SERVING_DEFAULT_TIME_BUDGET_SECONDS  # Env.SERVING_TIME_BUDGET_SECONDS
    client_timeout_seconds: float = contract.SERVING_DEFAULT_CLIENT_TIMEOUT_SECONDS  # Env.SERVING_CLIENT_TIMEOUT_...

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServingLimits:
        return cls(
            max_body_bytes=max_body_bytes(environ),
            max_images=_positive_setting(environ, contract.Env.SERVING_MAX_IMAGES, cls.max_images, int),
            max_image_pixels=_positive_setting(
                environ, contract.Env.SERVING_MAX_IMAGE_PIXELS, cls.max_image_pixels, int
            ),
            time_budget_seconds=_positive_setting(
                environ, contract.Env.SERVING_TIME_BUDGET_SECONDS, cls.time_budget_seconds, float
            ),
            client_timeout_seconds=_positive_setting(
                environ, contract.Env.SERVING_CLIENT_TIMEOUT_SECONDS, cls.client_timeout_seconds, float
            ),
        )


def max_body_bytes(environ: Mapping[str, str]) -> int:
    """Body limit from SIM2CLOUD_MAX_BODY_BYTES, else contract.SERVING_DEFAULT_MAX_BODY_BYTES."""
    value: int = _positive_setting(
        environ, contract.Env.SERVING_MAX_BODY_BYTES, contract.SERVING_DEFAULT_MAX_BODY_BYTES, int
    )
    return value


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_thresholds(header: str | None) -> Thresholds:
    """``conf=0.4,iou=0.5,max_det=50,multi_label=1`` (any subset) -> Thresholds; anything else is a 400."""
    if not header or not header.strip():
        return Thresholds()
    values: dict[str, Any] = {}
    for item in header.split(","):
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or key not in contract.SERVING_THRESHOLD_ATTRIBUTES:
            raise ClientError(
                400,
                f"{contract.CUSTOM_ATTRIBUTES_HEADER}: {item.strip()!r} is not KEY=VALUE with KEY one of "
                f"{', '.join(contract.SERVING_THRESHOLD_ATTRIBUTES)}",
            )
        if key == "multi_label":
            if raw not in ("0", "1"):
                raise ClientError(400, f"{contract.CUSTOM_ATTRIBUTES_HEADER}: multi_label={raw!r} is not 0 or 1")
            values[key] = raw == "1"
            continue
        try:
            values[key] = int(raw) if key == "max_det" else float(raw)
        except ValueError:
            raise ClientError(400, f"{contract.CUSTOM_ATTRIBUTES_HEADER}: {key}={raw!r} is not a number") from None
    try:
        return Thresholds(**values)
    except ValueError as error:
        raise ClientError(400, f"{contract.CUSTOM_ATTRIBUTES_HEADER}: {error}") from None


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ClientError(400, f"{where}: expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(400, f"{where}: not valid base64") from None


def images_from_json(body: bytes, max_images: int = contract.SERVING_DEFAULT_MAX_IMAGES) -> list[bytes]:
    """Encoded images from ``{"image": b64}``, ``{"image": [b64, ...]}``, ``{"images": [...]}`` or a list of
    ``{"image": b64}`` objects; more than ``max_images`` is a 413 before anything is decoded."""
    try:
        document = json.loads(body)
    except RecursionError:  # thousands of nested brackets: the parser recurses once per level
        raise ClientError(400, "body is not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError, and e.g. integers over 4300 digits
        raise ClientError(400, f"body is not valid JSON: {error}") from None
    items: list[Any]
    if isinstance(document, dict) and ("image" in document or "images" in document):
        value = document.get("image", document.get("images"))
        items = value if isinstance(value, list) else [value]
    elif isinstance(document, list):
        items = []
        for index, entry in enumerate(document):
            if not isinstance(entry, dict) or "image" not in entry:
                raise ClientError(400, f'body[{index}]: expected an object {{"image": "<base64>"}}')
            items.append(entry["image"])
    else:
        raise ClientError(400, 'JSON body must be {"image": "<base64>"}, {"images": [...]} or a list of them')
    if not items:
        raise ClientError(400, "JSON body holds no images")
    if len(items) > max_images:
        raise ClientError(
            413,
            f"{len(items)} images in one request; the limit is {max_images} ({contract.Env.SERVING_MAX_IMAGES}): "
            "split them over several requests",
        )
    return [_b64(item, f"image[{index}]") for index, item in enumerate(items)]


def images_from_body(
    content_type: str | None, body: bytes, max_images: int = contract.SERVING_DEFAULT_MAX_IMAGES
) -> list[bytes]:
    kind = media_type(content_type)
    if kind in RAW_IMAGE_TYPES:
        if not body:
            raise ClientError(400, "empty body: expected image bytes")
        return [body]
    if kind == JSON_TYPE:
        return images_from_json(body, max_images)
    raise ClientError(
        415, f"unsupported content type {kind or '(none)'!r}; use one of {', '.join(contract.SERVING_CONTENT_TYPES)}"
    )


def default_workers(environ: Mapping[str, str]) -> int:
    """SAGEMAKER_MODEL_SERVER_WORKERS, else one worker per core: CPU inference is compute-bound, and with
    one intra-op thread each, N workers use N cores without contention."""
    raw = environ.get(contract.Env.SERVING_WORKERS)
    if raw:
        value = int(raw)
        if value < 1:
            raise ValueError(f"{contract.Env.SERVING_WORKERS}={raw!r} must be >= 1")
        return value
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
