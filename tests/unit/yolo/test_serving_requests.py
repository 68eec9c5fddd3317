from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from sim2cloud import contract
from sim2cloud.serving.model import ImageDecodeError, Thresholds, decode_image, letterbox, nms, postprocess
from sim2cloud.serving.requests import (
    ClientError,
    default_workers,
    images_from_body,
    max_body_bytes,
    parse_thresholds,
)


def _png(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_thresholds_from_custom_attributes() -> None:
    assert parse_thresholds(None) == Thresholds()
    assert parse_thresholds("conf=0.4, iou=0.5") == Thresholds(conf=0.4, iou=0.5)
    assert parse_thresholds("max_det=10").max_det == 10


@pytest.mark.parametrize("header", ["conf=abc", "conf=1.5", "iou=0", "max_det=0", "max_det=2.5", "colour=red", "conf"])
def test_bad_thresholds_are_400(header: str) -> None:
    with pytest.raises(ClientError) as caught:
        parse_thresholds(header)
    assert caught.value.status == 400
    assert contract.CUSTOM_ATTRIBUTES_HEADER in caught.value.message


def test_raw_and_json_bodies() -> None:
    png = _png()
    encoded = base64.b64encode(png).decode()
    assert images_from_body("image/png", png) == [png]
    assert images_from_body("application/x-image", png) == [png]
    assert images_from_body("application/json; charset=utf-8", json.dumps({"image": encoded}).encode()) == [png]
    assert images_from_body("application/json", json.dumps({"images": [encoded, encoded]}).encode()) == [png, png]
    assert images_from_body("application/json", json.dumps([{"image": encoded}]).encode()) == [png]


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b"hello", 415),
        (None, b"hello", 415),
        ("image/jpeg", b"", 400),
        ("application/json", b"{not json", 400),
        ("application/json", b'{"image": "%%%"}', 400),
        ("application/json", b'{"image": 5}', 400),
        ("application/json", b'{"images": []}', 400),
        ("application/json", b'{"picture": "abc"}', 400),
        ("application/json", b"[1, 2]", 400),
    ],
)
def test_bad_bodies(content_type: str | None, body: bytes, status: int) -> None:
    with pytest.raises(ClientError) as caught:
        images_from_body(content_type, body)
    assert caught.value.status == status


def test_decode_rejects_truncated_and_garbage() -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    assert decode_image(data).shape == (64, 64, 3)
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match=r"17 bytes in no known image format"):
        decode_image(b"GIF89a-not-really")


def test_letterbox_keeps_aspect_and_centres() -> None:
    rgb = np.zeros((50, 100, 3), dtype=np.uint8)
    tensor, scale, pad = letterbox(rgb, 64)
    assert tensor.shape == (1, 3, 64, 64)
    assert scale == pytest.approx(0.64)
    assert pad == (0, 16)
    assert tensor[0, 0, 0, 0] == pytest.approx(114 / 255)  # padding grey
    assert tensor[0, 0, 32, 32] == 0.0  # the image


def test_nms_suppresses_overlaps_only() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], float)
    kept = nms(boxes, np.array([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert kept.tolist() == [0, 2]


def test_postprocess_rescales_to_original_pixels_and_is_class_aware() -> None:
    # Two classes, anchors as columns: (cx, cy, w, h, score0, score1).
    raw = np.array(
        [
            [32, 32, 16, 16, 0.9, 0.1],  # class 0
            [32, 32, 16, 16, 0.1, 0.8],  # same box, class 1: kept (class-aware)
            [33, 33, 16, 16, 0.85, 0.0],  # overlaps the first, same class: suppressed
            [10, 10, 4, 4, 0.1, 0.1],  # below conf
        ],
        dtype=np.float32,
    ).T[None]
    found = postprocess(raw, Thresholds(conf=0.25, iou=0.5), scale=0.5, pad=(0, 8), image_size=(128, 96))
    assert [(c, round(s, 2)) for c, s, _ in found] == [(0, 0.9), (1, 0.8)]
    assert found[0][2] == pytest.approx((48.0, 32.0, 80.0, 64.0))


def test_environment_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert max_body_bytes({}) == contract.SERVING_DEFAULT_MAX_BODY_BYTES
    assert max_body_bytes({contract.Env.SERVING_MAX_BODY_BYTES: "1000"}) == 1000
    assert default_workers({contract.Env.SERVING_WORKERS: "3"}) == 3
    assert default_workers({}) >= 1
    with pytest.raises(ValueError, match=contract.Env.SERVING_WORKERS):
        default_workers({contract.Env.SERVING_WORKERS: "0"})


@pytest.mark.parametrize(
    ("workers", "cores", "threads"),
    [
        (2, 2, 2),  # one worker per core: a lone request still gets both cores
        (1, 2, 2),
        (1, 1, 1),  # never more threads than cores
        (2, 8, 4),  # an even share when it is more than two
        (8, 8, 2),  # many workers: at most 2x oversubscribed
    ],
)
def test_default_intra_op_threads(workers: int, cores: int, threads: int) -> None:
    from sim2cloud.serving.model import default_intra_op_threads

    assert default_intra_op_threads(workers, cores=cores) == threads


def test_serving_limits_from_the_contract_variables() -> None:
    from sim2cloud.serving.requests import ServingLimits

    defaults = ServingLimits.from_environ({})
    assert defaults == ServingLimits()
    assert defaults.max_images == contract.SERVING_DEFAULT_MAX_IMAGES
    assert defaults.max_image_pixels == contract.SERVING_DEFAULT_MAX_IMAGE_PIXELS
    assert defaults.time_budget_seconds == contract.SERVING_DEFAULT_TIME_BUDGET_SECONDS
    assert defaults.client_timeout_seconds == contract.SERVING_DEFAULT_CLIENT_TIMEOUT_SECONDS
    env = contract.Env
    custom = ServingLimits.from_environ(
        {
            env.SERVING_MAX_BODY_BYTES: "1000",
            env.SERVING_MAX_IMAGES: "3",
            env.SERVING_MAX_IMAGE_PIXELS: "4096",
            env.SERVING_TIME_BUDGET_SECONDS: "2.5",
            env.SERVING_CLIENT_TIMEOUT_SECONDS: "4",
        }
    )
    assert custom == ServingLimits(1000, 3, 4096, 2.5, 4.0)
    for name, raw in (
        (env.SERVING_MAX_IMAGES, "0"),
        (env.SERVING_MAX_IMAGE_PIXELS, "2.5"),
        (env.SERVING_TIME_BUDGET_SECONDS, "-1"),
    ):
        with pytest.raises(ValueError, match=name):
            ServingLimits.from_environ({name: raw})


def test_hostile_json_bodies_are_client_errors() -> None:
    one = base64.b64encode(_png()).decode()
    with pytest.raises(ClientError, match="nested too deeply") as nested:
        images_from_body("application/json", b"[" * 100_000)
    assert nested.value.status == 400
    with pytest.raises(ClientError) as huge_number:
        images_from_body("application/json", b'{"image": ' + b"9" * 5000 + b"}")
    assert huge_number.value.status == 400
    # Over the image limit: 413 before any item is decoded (the last one is not even base64).
    with pytest.raises(ClientError, match=contract.Env.SERVING_MAX_IMAGES) as too_many:
        images_from_body("application/json", json.dumps({"images": [one, one, "***"]}).encode(), max_images=2)
    assert too_many.value.status == 413
    assert images_from_body("application/json", json.dumps({"images": [one, one]}).encode(), max_images=2) == [
        _png(),
        _png(),
    ]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL's own, at open, above 89 MP
def test_decode_refuses_a_declared_size_over_the_pixel_limit_before_decoding() -> None:
    from sim2cloud.serving.model import ImageTooLargeError

    from .conftest import png_declaring

    with pytest.raises(ImageTooLargeError, match="12000x12000"):
        decode_image(png_declaring(12000, 12000), max_pixels=40_000_000)
    with pytest.raises(ImageDecodeError) as truncated:  # within the limit, so decoding starts and fails
        decode_image(png_declaring(100, 100), max_pixels=40_000_000)
    assert not isinstance(truncated.value, ImageTooLargeError)
    assert decode_image(_png(40, 30), max_pixels=40 * 30).shape == (30, 40, 3)
    with pytest.raises(ImageTooLargeError):
        decode_image(_png(40, 30), max_pixels=40 * 30 - 1)


def test_front_error_answers_are_json() -> None:
    import re
    from pathlib import Path

    from sim2cloud.serving.launcher import FRONT_ERRORS, nginx_config
    from sim2cloud.serving.requests import ServingLimits

    config = nginx_config(
        "127.0.0.1", 8080, Path("/run/x.sock"), Path("/run/x"), ServingLimits(max_body_bytes=1234), None
    )
    answers = re.findall(r"return (\d+) '(.*)\\n';", config)
    assert len(answers) == len(FRONT_ERRORS)
    for _status, body in answers:
        assert json.loads(body)["error"]
    assert "client_max_body_size 1234;" in config
    assert "(SIM2CLOUD_MAX_BODY_BYTES)" in dict(answers)["413"]
