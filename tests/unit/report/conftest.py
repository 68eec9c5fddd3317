"""Small run artefacts, made here, in the layout a run leaves them (dataset, training job tree, evaluation,
gate record), for building reports quickly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from sim2cloud import contract, pricing
from sim2cloud.report.collect import RunArtefacts

CLASS_NAMES = ["coffee <mug>", "book & co"]
"""Names with HTML's special characters: the page must show them escaped, never as markup."""
GATE_THRESHOLD = 0.5


def _picture(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).rectangle((10, 10, 40, 40), outline=(255, 255, 255))
    image.save(path)
    return path


@dataclass
class Artefacts:
    root: Path
    run_artefacts: RunArtefacts


def per_class(ap50: float) -> dict[str, dict[str, float]]:
    return {name: {"AP50": ap50, "AP50-95": ap50 / 2} for name in CLASS_NAMES}


def build_artefacts(root: Path) -> RunArtefacts:
    dataset = root / "dataset"
    _picture(dataset / "preview.png", (40, 90, 160))
    manifest = {
        "run": "run-<1>",
        "class_names": CLASS_NAMES,
        "counts": {
            "train": {"images": 10, "per_class": {CLASS_NAMES[0]: 7, CLASS_NAMES[1]: 5}},
            "val": {"images": 4, "per_class": {CLASS_NAMES[0]: 3, CLASS_NAMES[1]: 2}},
        },
        "preview": "preview.png",
        "source_meshes": [{"path": "mug/mug.glb", "sha256": "ab" * 32}, {"path": "book/book.stl", "sha256": "cd" * 32}],
        "spec": {"frames": 14, "width": 96},
        "training": {"epochs": 3},
    }
    (dataset / contract.DATASET_MANIFEST_NAME).write_text(json.dumps(manifest))
    training = root / "training"
    paths = contract.SageMakerPaths(base=str(training))
    model_dir = Path(paths.model_dir)
    model_dir.mkdir(parents=True)
    history = [{"epoch": float(e), "mAP50": 0.2 * e, "mAP50-95": 0.1 * e, "box_loss": 2.0 / e} for e in (1, 2, 3)]
    card = {
        "class_names": CLASS_NAMES,
        "model_version": "0123456789abcdef",
        "training_job": "job-1",
        "metrics": {"mAP50": 0.61, "mAP50-95": 0.3},
        "metrics_history": history,
        "lineage": {"dataset_run": "run-<1>", "manifest_sha256": "ef" * 32, "source_meshes": manifest["source_meshes"]},
        "hyperparameters": {"epochs": 3, "imgsz": 96},
        "versions": {"ultralytics": "8.4"},
    }
    (model_dir / contract.MODEL_JSON_NAME).write_text(json.dumps(card))
    data_dir = Path(paths.output_dir) / "data"
    job_evaluation = data_dir / contract.TRAINING_EVALUATION_DIR
    _picture(job_evaluation / contract.DETECTIONS_PICTURE_NAME, (20, 120, 20))
    document = {"mAP50": 0.61, "mAP50-95": 0.3, "images": 4, "per_class": per_class(0.61), "definition": "test AP"}
    (job_evaluation / contract.EVALUATION_JSON_NAME).write_text(json.dumps(document))
    _picture(data_dir / contract.TRAINING_PLOTS_DIR / "confusion_matrix_normalized.png", (200, 200, 200))
    _picture(data_dir / contract.TRAINING_PLOTS_DIR / "BoxPR_curve.png", (220, 220, 220))
    evaluation = root / "evaluation"
    _picture(evaluation / contract.DETECTIONS_PICTURE_NAME, (120, 20, 20))
    served = {**document, "per_class": per_class(0.6), "mAP50": 0.6, "source": "endpoint http://127.0.0.1:1"}
    (evaluation / contract.EVALUATION_JSON_NAME).write_text(json.dumps(served))
    gate = {
        "training_job": "job-1",
        "metrics": {"mAP50": 0.61},
        "gate": {"metric": "mAP50", "threshold": GATE_THRESHOLD, "status": "Approved", "result": "pass",
                 "reason": "mAP50 0.6100 meets the quality gate 0.5000"},
        "model_package_arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1",
        "approval_status": "Approved",
    }  # fmt: skip
    cost = pricing.run_cost([pricing.training_job_cost("ml.g5.xlarge", 3600, spot=True)])
    return RunArtefacts(
        dataset=dataset,
        training=training,
        evaluation=evaluation,
        evaluation_via="endpoint http://127.0.0.1:1",
        gate=gate,
        timeline=[{"stage": "render", "seconds": 12.5}, {"stage": "training", "seconds": 40.0}],
        cost={**cost, "basis": "test"},
    )


@pytest.fixture
def artefacts(tmp_path: Path) -> RunArtefacts:
    return build_artefacts(tmp_path / "run")
