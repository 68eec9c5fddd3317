"""The run report's document, gathered from the artefacts a run leaves (stdlib only).

Inputs, each optional but the dataset: the dataset (``manifest.json``, ``preview.png``), the training job's
``/opt/ml``-style tree (``model/model.json``; ``output/data``: ``metrics.jsonl``, ``evaluation/`` with the
exported model's evaluation, ``plots/`` with Ultralytics' plots), an evaluation folder from ``sim2cloud
evaluate`` (``evaluation.json`` + ``detections.png``), the model gate's record
(``runs/<run>/metrics/<job>.json``) with the package's approval, the stage timeline and the cost estimate.
A missing piece becomes a section saying so, never an error: a report of a failed run is still a report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim2cloud import contract
from sim2cloud.report.render import data_uri

PLOT_AND_EVALUATION_SUFFIXES = (".png", ".jpg", ".json")
"""What of the training job's output data a report may use."""
ULTRALYTICS_PLOTS: tuple[tuple[str, str], ...] = (
    ("confusion_matrix_normalized.png", "confusion matrix (normalized)"),
    ("confusion_matrix.png", "confusion matrix (counts)"),
    ("BoxPR_curve.png", "precision-recall curve"),
    ("BoxF1_curve.png", "F1 against confidence"),
    ("val_batch0_labels.jpg", "val batch: ground truth"),
    ("val_batch0_pred.jpg", "val batch: predictions"),
    ("results.png", "Ultralytics' results per epoch"),
)
PREDICTION_PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 56, 56),
    (72, 249, 10),
    (0, 194, 255),
    (255, 178, 29),
    (207, 210, 49),
    (146, 204, 23),
)
"""Prediction colour per class id (cycled) in the evaluation's detections picture, and the report's legend."""
GROUND_TRUTH_COLOUR = (255, 255, 255)
"""Ground truth in the detections picture: thin white boxes, so predictions (thick, coloured) stand apart."""


@dataclass
class RunArtefacts:
    """Where one run's pieces lie on disk (local run, or pieces downloaded from S3)."""

    dataset: Path
    training: Path | None = None
    """The training job's /opt/ml-style base (model/, output/data/, input/config/)."""
    evaluation: Path | None = None
    """A ``sim2cloud evaluate --out`` folder (e.g. through the endpoint)."""
    evaluation_via: str = ""
    gate: Mapping[str, Any] | None = None
    """The gate's record plus ``model_package_arn`` and ``approval_status`` when known."""
    timeline: Sequence[Mapping[str, Any]] = field(default_factory=list)
    cost: Mapping[str, Any] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    generated_by: str = "sim2cloud report"


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _measurement(label: str, document: Mapping[str, Any], model_file: str, split: str, via: str) -> dict[str, Any]:
    return {
        "label": label,
        "mAP50": document.get("mAP50"),
        "mAP50-95": document.get("mAP50-95"),
        "per_class": document.get("per_class", {}),
        "model_file": model_file,
        "split": split,
        "images": document.get("images"),
        "via": via,
        "definition": document.get("definition", ""),
    }


def _detections(folder: Path, class_names: Sequence[str], caption: str) -> dict[str, Any] | None:
    picture = folder / contract.DETECTIONS_PICTURE_NAME
    if not picture.is_file():
        return None
    legend = {name: PREDICTION_PALETTE[i % len(PREDICTION_PALETTE)] for i, name in enumerate(class_names)}
    return {"image": data_uri(picture), "legend": legend, "caption": caption}


def build_report(artefacts: RunArtefacts) -> dict[str, Any]:
    """The report document (sim2cloud.report.render.render_html draws it)."""
    manifest = _read_json(artefacts.dataset / contract.DATASET_MANIFEST_NAME) or {}
    class_names = list(manifest.get("class_names", []))
    counts = manifest.get("counts", {})
    report: dict[str, Any] = {
        "run": manifest.get("run", artefacts.dataset.name),
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "generated_by": artefacts.generated_by,
        "timeline": list(artefacts.timeline),
        "dataset": {
            "class_names": class_names,
            "boxes": {split: dict(c.get("per_class", {})) for split, c in counts.items()},
            "images": {split: c.get("images", 0) for split, c in counts.items()},
        },
    }
    preview = artefacts.dataset / str(manifest.get("preview") or "preview.png")
    if preview.is_file():
        report["samples"] = {
            "image": data_uri(preview),
            "caption": "The first frames of the dataset with their ground-truth boxes and class names, as rendered.",
        }
    card: dict[str, Any] = {}
    measurements: list[dict[str, Any]] = []
    settings: dict[str, Any] = {"render (scene spec)": manifest.get("spec"), "batch training": manifest.get("training")}
    if artefacts.training is not None:
        paths = contract.SageMakerPaths(base=str(artefacts.training))
        card = _read_json(Path(paths.model_dir) / contract.MODEL_JSON_NAME) or {}
        data_dir = Path(paths.output_dir) / "data"
        history = list(card.get("metrics_history", []))
        gate_threshold = (artefacts.gate or {}).get("gate", {}).get("threshold")
        gated = card.get("metrics", {}).get("mAP50")
        report["curves"] = {
            "history": history,
            "gate": gate_threshold,
            "gate_value": gated,
            "caption": "Per-epoch numbers are Ultralytics' validation during training (EMA weights, val split). "
            "The circled point is what the gate judged: the exported model.onnx measured on the val split after "
            "training; the dashed line is the gate's threshold.",
        }
        plots_dir = data_dir / contract.TRAINING_PLOTS_DIR
        report["plots"] = [
            {"title": title, "image": data_uri(plots_dir / name)}
            for name, title in ULTRALYTICS_PLOTS
            if (plots_dir / name).is_file()
        ]
        job_evaluation = _read_json(data_dir / contract.TRAINING_EVALUATION_DIR / contract.EVALUATION_JSON_NAME)
        if job_evaluation:
            measurements.append(
                _measurement(
                    "training job (gate)",
                    job_evaluation,
                    contract.MODEL_ONNX_NAME,
                    contract.VAL_SPLIT,
                    "ONNX Runtime in the training job",
                )
            )
            report["detections"] = _detections(
                data_dir / contract.TRAINING_EVALUATION_DIR,
                class_names,
                f"The first val images with the exported model's detections (confidence >= 0.25). Measured in the "
                f"training job on {contract.MODEL_ONNX_NAME}.",
            )
        settings["training hyperparameters (resolved)"] = card.get("hyperparameters")
        settings["versions"] = card.get("versions")
        settings["training device"] = card.get("training_device")
    if artefacts.evaluation is not None:
        evaluation = _read_json(artefacts.evaluation / contract.EVALUATION_JSON_NAME)
        if evaluation:
            via = artefacts.evaluation_via or str(evaluation.get("source", ""))
            measurements.append(
                _measurement(
                    "sim2cloud evaluate",
                    evaluation,
                    contract.MODEL_ONNX_NAME + " (model.tar.gz)",
                    contract.VAL_SPLIT,
                    via,
                )
            )
            report["detections"] = _detections(
                artefacts.evaluation,
                class_names,
                f"The first val images: ground truth and the served model's detections (confidence >= 0.25), "
                f"through {via}.",
            ) or report.get("detections")
    report["ap"] = measurements
    gate = dict(artefacts.gate or {})
    if gate:
        verdict = gate.get("gate", {})
        report["gate"] = {
            "decision": verdict.get("result", "unknown"),
            "approval_status": gate.get("approval_status") or verdict.get("status", ""),
            "reason": verdict.get("reason", ""),
            "metric": verdict.get("metric", "mAP50"),
            "threshold": verdict.get("threshold"),
            "value": gate.get("metrics", {}).get(verdict.get("metric", "mAP50")),
            "measured_on": f"{contract.MODEL_ONNX_NAME}, {contract.VAL_SPLIT} split, in the training job",
            "model_package_arn": gate.get("model_package_arn", ""),
        }
    lineage = dict(card.get("lineage", {}))
    lineage.setdefault("dataset_run", manifest.get("run"))
    lineage.setdefault("source_meshes", manifest.get("source_meshes", []))
    lineage["model_version"] = card.get("model_version")
    lineage["training_job"] = card.get("training_job") or gate.get("training_job")
    lineage["model_package_arn"] = gate.get("model_package_arn", "")
    report["lineage"] = lineage
    report["settings"] = {**settings, **artefacts.settings}
    if artefacts.cost:
        report["cost"] = dict(artefacts.cost)
    return report


def write_report(artefacts: RunArtefacts, destination: Path) -> Path:
    """Build and write the page (atomically: a reader never sees half a report)."""
    from sim2cloud.report.render import render_html

    page = render_html(build_report(artefacts))
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(destination)
    return destination
