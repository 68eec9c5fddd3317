from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim2cloud.hyperparameters import (
    HyperparameterError,
    Hyperparameters,
    load_hyperparameters,
    parse_hyperparameters,
    parse_key_values,
)


def test_sagemaker_string_values_are_parsed_to_typed_fields() -> None:
    hp = parse_hyperparameters(
        {
            "epochs": "3",
            "imgsz": "96",
            "batch": "4",
            "lr0": "0.002",
            "cache": "RAM",
            "optimizer": "sgd",
            "device": "0,1",
        }
    )
    assert (hp.epochs, hp.imgsz, hp.batch, hp.lr0) == (3, 96, 4, 0.002)
    assert (hp.cache, hp.optimizer, hp.device) == ("ram", "SGD", "0,1")
    assert hp.model == "yolov8n.yaml"


def test_typed_json_values_are_accepted_too() -> None:
    assert parse_hyperparameters({"epochs": 7, "seed": 1}).epochs == 7


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert load_hyperparameters(tmp_path / "hyperparameters.json") == Hyperparameters()


def test_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "hyperparameters.json"
    path.write_text(json.dumps({"epochs": "2", "patience": "0"}))
    assert load_hyperparameters(path).patience == 0


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"epoch": "5"}, "unknown hyperparameter 'epoch'"),
        ({"epochs": "0"}, "epochs"),
        ({"epochs": "two"}, "epochs"),
        ({"imgsz": "100"}, "multiple of 32"),
        ({"lr0": "-1"}, "lr0"),
        ({"cache": "yes"}, "cache"),
        ({"model": "../weights.pt"}, "model"),
        ({"model": "yolov8n"}, "model"),
        ({"device": "0,0"}, "device"),
        ({"amp": "fp16"}, "amp"),
    ],
)
def test_bad_values_name_the_key(raw: dict[str, str], named: str) -> None:
    with pytest.raises(HyperparameterError, match=named):
        parse_hyperparameters(raw)


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(HyperparameterError) as caught:
        parse_hyperparameters({"epochs": "0", "colour": "red"})
    assert "epochs" in str(caught.value)
    assert "colour" in str(caught.value)


def test_invalid_json_file(tmp_path: Path) -> None:
    path = tmp_path / "hyperparameters.json"
    path.write_text("{not json")
    with pytest.raises(HyperparameterError, match="not valid JSON"):
        load_hyperparameters(path)


def test_cli_key_values() -> None:
    assert parse_key_values(["epochs=2", " imgsz = 64"]) == {"epochs": "2", "imgsz": "64"}
    with pytest.raises(HyperparameterError, match="KEY=VALUE"):
        parse_key_values(["epochs"])
