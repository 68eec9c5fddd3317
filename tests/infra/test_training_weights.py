"""The per-environment weights setting: the launcher gets the URI, the training role may read exactly that
object and nothing else new."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_CONTEXT

from stacks.config import load_settings
from stacks.pipeline import build_app

WEIGHTS = "s3://my-model-zoo/coco/yolov8n.pt"


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


def _weights_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _statements(template) if "my-model-zoo" in json.dumps(s.get("Resource"))]


def test_weights_uri_reaches_the_launcher_and_only_that_object_is_readable(tmp_path: Path) -> None:
    app, built = build_app("dev", outdir=str(tmp_path), context={**TEST_CONTEXT, "training_weights_s3_uri": WEIGHTS})
    app.synth()
    template = json.loads((tmp_path / f"{built['Training'].stack_name}.template.json").read_text())
    [statement] = _weights_statements(template)
    assert statement["Action"] == "s3:GetObject" and statement["Effect"] == "Allow"
    resource = json.dumps(statement["Resource"])
    assert ":s3:::my-model-zoo/coco/yolov8n.pt" in resource and "*" not in resource
    environments = [
        r["Properties"].get("Environment", {}).get("Variables", {})
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
    ]
    assert [
        e["SIM2CLOUD_TRAINING_WEIGHTS_S3_URI"] for e in environments if "SIM2CLOUD_TRAINING_WEIGHTS_S3_URI" in e
    ] == [WEIGHTS]


@pytest.mark.parametrize("uri", ["s3://bucket/prefix/", "s3://bucket/*.pt", "https://x/y.pt", "s3://bucket/w.onnx"])
def test_a_weights_setting_that_is_not_one_pt_object_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match=r"s3://<bucket>/<key>\.pt"):
        load_settings("dev", {**TEST_CONTEXT, "training_weights_s3_uri": uri})
