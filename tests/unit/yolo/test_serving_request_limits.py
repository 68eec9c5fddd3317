"""Edges of request parsing that mutation testing (make mutation) found unguarded: the smallest accepted
settings, attribute names checked before values, and bodies that are JSON but not an image document."""

from __future__ import annotations

import pytest

from sim2cloud import contract
from sim2cloud.serving.requests import ClientError, default_workers, images_from_body, max_body_bytes, parse_thresholds


def test_the_smallest_settings_are_accepted_and_below_them_refused() -> None:
    assert max_body_bytes({contract.Env.SERVING_MAX_BODY_BYTES: "1"}) == 1
    assert default_workers({contract.Env.SERVING_WORKERS: "1"}) == 1
    for raw in ("0", "-5"):
        with pytest.raises(ValueError, match=contract.Env.SERVING_MAX_BODY_BYTES):
            max_body_bytes({contract.Env.SERVING_MAX_BODY_BYTES: raw})
        with pytest.raises(ValueError, match=contract.Env.SERVING_WORKERS):
            default_workers({contract.Env.SERVING_WORKERS: raw})


@pytest.mark.parametrize("header", ["colour=1", "conf=0.5,nms=1", "=0.5"])
def test_an_unknown_attribute_with_a_numeric_value_is_a_400(header: str) -> None:
    with pytest.raises(ClientError) as caught:
        parse_thresholds(header)
    assert caught.value.status == 400
    assert contract.CUSTOM_ATTRIBUTES_HEADER in caught.value.message


@pytest.mark.parametrize("body", [b'"image"', b'"images"', b"null", b"42", b'{"images": null}'])
def test_json_that_is_not_an_image_document_is_a_400(body: bytes) -> None:
    with pytest.raises(ClientError) as caught:
        images_from_body("application/json", body)
    assert caught.value.status == 400


def test_a_missing_content_type_is_named_in_the_415() -> None:
    with pytest.raises(ClientError) as caught:
        images_from_body(None, b"\xff\xd8")
    assert caught.value.status == 415
    assert "'(none)'" in caught.value.message
