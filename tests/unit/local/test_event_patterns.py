"""The local EventBridge matcher: the pattern features the contract uses, and each contract rule seeing only
the events it is meant for."""

from __future__ import annotations

from typing import Any

import pytest

from sim2cloud import contract
from sim2cloud.local import events

BUCKET = "data-bucket"
REGION = "us-east-1"
ACCOUNT = "123456789012"


def created(key: str, bucket: str = BUCKET) -> dict[str, Any]:
    return events.object_created_event(bucket, key, size=10, etag='"abc"', region=REGION, account=ACCOUNT)


def state_change(name: str, status: str) -> dict[str, Any]:
    description = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}",
        "TrainingJobStatus": "InProgress",
    }
    return events.training_state_change_event(description, status=status, region=REGION, account=ACCOUNT)


# ---- the features --------------------------------------------------------------------------------
def test_exact_values_match_any_entry_of_the_list_and_compare_types() -> None:
    pattern = {"source": ["aws.s3", "aws.sagemaker"], "detail": {"size": [5]}}
    assert events.matches(pattern, {"source": "aws.s3", "detail": {"size": 5}})
    assert events.matches(pattern, {"source": "aws.sagemaker", "detail": {"size": 5}})
    assert not events.matches(pattern, {"source": "aws.batch", "detail": {"size": 5}})
    assert not events.matches(pattern, {"source": "aws.s3", "detail": {"size": "5"}})


def test_an_array_value_matches_when_any_element_matches() -> None:
    assert events.matches({"resources": ["arn:a"]}, {"resources": ["arn:b", "arn:a"]})
    assert not events.matches({"resources": ["arn:a"]}, {"resources": ["arn:b"]})


def test_prefix_and_suffix() -> None:
    assert events.matches({"key": [{"prefix": "meshes/"}]}, {"key": "meshes/a/b/c.obj"})
    assert not events.matches({"key": [{"prefix": "meshes/"}]}, {"key": "assets/meshes/x"})
    assert events.matches({"key": [{"suffix": ".json"}]}, {"key": "datasets/r/manifest.json"})
    assert not events.matches({"key": [{"suffix": ".json"}]}, {"key": "datasets/r/manifest.json.tmp"})
    assert not events.matches({"key": [{"prefix": "5"}]}, {"key": 55})


def test_wildcard_spans_slashes_and_is_anchored() -> None:
    pattern = {"key": [{"wildcard": "datasets/*/manifest.json"}]}
    assert events.matches(pattern, {"key": "datasets/run-1/manifest.json"})
    assert events.matches(pattern, {"key": "datasets/a/b/manifest.json"})  # EventBridge's * crosses '/'
    assert not events.matches(pattern, {"key": "datasets/run-1/manifest.json.bak"})
    assert not events.matches(pattern, {"key": "x/datasets/run-1/manifest.json"})
    assert events.matches({"key": [{"wildcard": r"a\*b"}]}, {"key": "a*b"})
    assert not events.matches({"key": [{"wildcard": r"a\*b"}]}, {"key": "axxb"})
    assert events.matches({"key": [{"wildcard": "a.c"}]}, {"key": "a.c"})
    assert not events.matches({"key": [{"wildcard": "a.c"}]}, {"key": "abc"})  # '.' is literal


def test_nested_objects_and_missing_keys() -> None:
    pattern = {"detail": {"object": {"key": [{"prefix": "meshes/"}]}}}
    assert events.matches(pattern, {"detail": {"object": {"key": "meshes/x"}}})
    assert not events.matches(pattern, {"detail": {"object": {}}})
    assert not events.matches(pattern, {"detail": {"object": "meshes/x"}})  # an object pattern needs an object
    assert not events.matches(pattern, {})


def test_exists() -> None:
    assert events.matches({"detail": {"FailureReason": [{"exists": True}]}}, {"detail": {"FailureReason": "x"}})
    assert not events.matches({"detail": {"FailureReason": [{"exists": True}]}}, {"detail": {}})
    assert events.matches({"detail": {"FailureReason": [{"exists": False}]}}, {"detail": {}})


@pytest.mark.parametrize(
    "pattern",
    [
        {"key": [{"anything-but": "x"}]},
        {"key": [{"numeric": [">", 1]}]},
        {"key": [{"prefix": "a", "suffix": "b"}]},
        {"key": []},
        {"key": "not-a-list"},
        {},
    ],
)
def test_unsupported_or_malformed_patterns_fail_loudly(pattern: dict[str, Any]) -> None:
    with pytest.raises(events.UnsupportedPattern):
        events.matches(pattern, {"key": "x"})


# ---- the contract's rules ------------------------------------------------------------------------
RULES = {
    "mesh": contract.mesh_created_pattern(BUCKET),
    "batch_config": contract.batch_config_created_pattern(BUCKET),
    "manifest": contract.dataset_manifest_created_pattern(BUCKET),
    "training": contract.training_state_change_pattern(),
}


def rules_for(event: dict[str, Any]) -> set[str]:
    return {name for name, pattern in RULES.items() if events.matches(pattern, event)}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (created(contract.mesh_key("b1", "mug", "mug.glb")), {"mesh"}),
        (created(contract.mesh_key("b1", "bottle", "bottle.mtl")), {"mesh"}),
        # The batch file is a mesh-prefix object too: it reaches the quiet-period queue AND the launcher directly.
        (created(contract.batch_config_key("b1")), {"mesh", "batch_config"}),
        # EventBridge's '*' crosses '/': a batch.yaml inside a class folder reaches the launcher directly too;
        # the launcher treats only meshes/<batch>/batch.yaml as "complete" (the quiet period still applies).
        (created(contract.mesh_key("b1", "mug", "batch.yaml")), {"mesh", "batch_config"}),
        (created(contract.dataset_manifest_key("run-1")), {"manifest"}),
        # Likewise a nested manifest reaches the training launcher, which ignores it (parse_dataset_manifest_key).
        (created(contract.DATASETS_PREFIX + "run-1/extra/manifest.json"), {"manifest"}),
        (created(contract.dataset_prefix("run-1") + contract.DATA_YAML_NAME), set()),
        (created(contract.dataset_prefix("run-1") + "images/train/000001.jpg"), set()),
        (created(contract.shard_marker_key("run-1", 0)), set()),
        (created(contract.render_shard_prefix("run-1", 0) + "manifest.json"), set()),
        (created(contract.run_status_key("run-1")), set()),
        (created(contract.quarantine_reason_key(contract.mesh_key("b1", "x", "y.exe"))), set()),
        (created(contract.mesh_key("b1", "mug", "mug.glb"), bucket="someone-elses-bucket"), set()),
        (created(contract.dataset_manifest_key("run-1"), bucket="someone-elses-bucket"), set()),
        (state_change("sim2cloud-run-1-0123abcd", "Completed"), {"training"}),
        (state_change("sim2cloud-run-1-0123abcd", "Failed"), {"training"}),
        (state_change("sim2cloud-run-1-0123abcd", "Stopped"), {"training"}),
        (state_change("other-team-job", "Completed"), set()),
    ],
)
def test_each_contract_pattern_matches_its_event_and_no_other(event: dict[str, Any], expected: set[str]) -> None:
    assert rules_for(event) == expected


def test_a_training_job_still_running_reaches_no_rule() -> None:
    event = state_change("sim2cloud-run-1-0123abcd", "Completed")
    event["detail"]["TrainingJobStatus"] = "InProgress"
    assert rules_for(event) == set()


def test_object_created_has_the_s3_eventbridge_shape() -> None:
    event = created("meshes/b1/mug/a b+c.glb")
    assert event["source"] == "aws.s3" and event["detail-type"] == "Object Created"
    assert event["detail"]["object"] == {**event["detail"]["object"], "key": "meshes/b1/mug/a b+c.glb", "etag": "abc"}
    assert event["detail"]["bucket"] == {"name": BUCKET}


def test_state_change_detail_mirrors_describe_training_job() -> None:
    from datetime import UTC, datetime

    description = {
        "TrainingJobName": "sim2cloud-x-1",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/sim2cloud-x-1",
        "TrainingJobStatus": "Completed",
        "CreationTime": datetime(2026, 1, 2, tzinfo=UTC),
        "ModelArtifacts": {"S3ModelArtifacts": "s3://moto/made/up"},
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }
    ok = events.training_state_change_event(
        description, status="Completed", region=REGION, account=ACCOUNT, model_artifact="s3://b/k/model.tar.gz"
    )
    assert ok["detail"]["ModelArtifacts"] == {"S3ModelArtifacts": "s3://b/k/model.tar.gz"}
    assert ok["detail"]["CreationTime"] == "2026-01-02T00:00:00+00:00"
    assert "ResponseMetadata" not in ok["detail"]
    assert ok["resources"] == [description["TrainingJobArn"]]
    failed = events.training_state_change_event(
        description, status="Failed", region=REGION, account=ACCOUNT, failure_reason="bad dataset"
    )
    assert failed["detail"]["TrainingJobStatus"] == "Failed"
    assert failed["detail"]["FailureReason"] == "bad dataset"
    assert "ModelArtifacts" not in failed["detail"]
    with pytest.raises(ValueError, match="not terminal"):
        events.training_state_change_event(description, status="InProgress", region=REGION, account=ACCOUNT)


def test_sqs_invocation_wraps_events_as_the_launcher_receives_them() -> None:
    import json

    bodies = [created("meshes/b1/mug/mug.glb"), created("meshes/b1/can/can.ply")]
    invocation = events.sqs_invocation(bodies, queue_arn="arn:aws:sqs:us-east-1:1:q", region=REGION)
    assert [json.loads(r["body"]) for r in invocation["Records"]] == bodies
    assert {r["eventSource"] for r in invocation["Records"]} == {"aws:sqs"}
    assert len({r["messageId"] for r in invocation["Records"]}) == 2
