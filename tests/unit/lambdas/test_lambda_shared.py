"""lambda/shared: S3 object extraction from every delivery shape, structured logs, settings parsing."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from lambda_test_support import BUCKET, eventbridge_object_created, import_from_bundle, s3_notification, sqs_event


@pytest.fixture
def s3_events(bundles: dict[str, Path]) -> ModuleType:
    (module,) = import_from_bundle(bundles["model_gate"], "shared.s3_events")
    return module


@pytest.fixture
def structured_log(bundles: dict[str, Path]) -> ModuleType:
    (module,) = import_from_bundle(bundles["model_gate"], "shared.structured_log")
    return module


KEYS = ["meshes/b/c/plain.obj", "meshes/b/c/sp ace+plus:colon%pct ü日.glb", "meshes/b/c/a%2Bb.stl"]


@pytest.mark.parametrize("key", KEYS)
def test_every_shape_yields_the_stored_key(s3_events: ModuleType, key: str) -> None:
    s3_objects_in = s3_events.s3_objects_in
    eventbridge = eventbridge_object_created(BUCKET, key, size=3, etag="e")
    notification = s3_notification(BUCKET, key, size=3, etag="e")
    sns_record = {"EventSource": "aws:sns", "Sns": {"Message": json.dumps(notification)}}
    shapes: dict[str, Any] = {
        "eventbridge": eventbridge,
        "notification": notification,
        "notification record": notification["Records"][0],
        "sqs(eventbridge)": sqs_event(eventbridge)["Records"][0],
        "sqs(notification)": sqs_event(notification)["Records"][0],
        "sqs event": sqs_event(eventbridge, notification),
        "sns(notification)": {"Records": [sns_record]},
    }
    for shape, message in shapes.items():
        refs = s3_objects_in(message)
        assert {(ref.bucket, ref.key) for ref in refs} == {(BUCKET, key)}, shape


def test_test_events_and_unknown_shapes(s3_events: ModuleType) -> None:
    s3_objects_in, unrecognized = s3_events.s3_objects_in, s3_events.UnrecognizedEvent
    assert s3_objects_in({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}) == []
    with pytest.raises(unrecognized, match="not an S3 event"):
        s3_objects_in({"detail-type": "Something", "source": "aws.ec2"})
    with pytest.raises(unrecognized, match="SQS record body is not JSON"):
        s3_objects_in({"eventSource": "aws:sqs", "body": "{oops"})


def test_log_lines_are_json_with_the_bound_context(structured_log: ModuleType, capsys: Any) -> None:
    log_context, get_logger, bind = structured_log.log_context, structured_log.get_logger, structured_log.bind
    log = get_logger("sim2cloud.test")
    with log_context(request_id="r-1", batch="b1"):
        log.info("first")
        with log_context(key="meshes/b1/x.obj"):
            bind(run="b1-abc")
            log.warning("second", extra={"detail": 3})
        log.info("third")
    log.info("outside")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["message"] for line in lines] == ["first", "second", "third", "outside"]
    assert lines[0]["batch"] == "b1" and "run" not in lines[0]
    assert lines[1] | {"time": None} == {
        "time": None,
        "level": "WARNING",
        "logger": "sim2cloud.test",
        "message": "second",
        "request_id": "r-1",
        "batch": "b1",
        "key": "meshes/b1/x.obj",
        "run": "b1-abc",
        "detail": 3,
    }
    assert "key" not in lines[2] and "run" not in lines[2]  # the inner scope (and its binding) ended
    assert "batch" not in lines[3]
