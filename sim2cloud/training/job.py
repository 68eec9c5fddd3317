"""The training job: SageMaker's /opt/ml contract in, model.onnx + model.pt + model.json out.

Flow: hyperparameters and dataset are checked first (a bad input ends in ``output/failure``, no Ultralytics
traceback); Ultralytics trains in a scratch directory on a read-only view of the dataset channel; every epoch
rank 0 copies ``last.pt`` into ``checkpoints/`` (synced to S3 by SageMaker) and prints the metric line; a
job that starts with a checkpoint resumes from it, so the epoch count continues after a spot interruption.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sim2cloud import __version__, contract
from sim2cloud.hyperparameters import AUTO, HyperparameterError, Hyperparameters, load_hyperparameters
from sim2cloud.job_log import scratch_hints_hidden
from sim2cloud.training import callbacks, devices, instance_defaults, offline
from sim2cloud.training.curves import CURVES_NAME, write_training_curves
from sim2cloud.training.dataset_checks import DatasetError, DatasetSummary, check_dataset

SCRATCH_PREFIX = "sim2cloud-train-"

"""Scratch directory (Ultralytics run dir, dataset view, config dir) under the system temp dir."""


class TrainingFailure(Exception):
    """A reason the job cannot succeed that the user can act on (bad input, not a bug)."""


@dataclass(frozen=True)
class JobLocations:
    """Where this job reads and writes: SageMaker's variables win over the ``/opt/ml``-style base dir."""

    paths: contract.SageMakerPaths
    dataset: Path
    weights: Path
    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path

    @classmethod
    def from_environment(cls, paths: contract.SageMakerPaths, environ: Mapping[str, str]) -> JobLocations:
        env = contract.Env
        return cls(
            paths=paths,
            dataset=Path(environ.get(env.SM_CHANNEL_DATASET) or paths.channel(contract.DATASET_CHANNEL)),
            weights=Path(environ.get(env.SM_CHANNEL_WEIGHTS) or paths.channel(contract.WEIGHTS_CHANNEL)),
            model_dir=Path(environ.get(env.SM_MODEL_DIR) or paths.model_dir),
            output_data_dir=Path(environ.get(env.SM_OUTPUT_DATA_DIR) or f"{paths.output_dir}/data"),
            checkpoint_dir=Path(paths.checkpoint_dir),
        )


def paths_from_environment(environ: Mapping[str, str]) -> contract.SageMakerPaths:
    return contract.SageMakerPaths(base=environ.get(contract.Env.SM_BASE_DIR) or contract.SM_DEFAULT_BASE_DIR)


def _dataset_view(summary: DatasetSummary, view: Path) -> Path:
    """A scratch data.yaml over per-file symlinks to the channel's images and labels.

    Ultralytics resolves directory paths (following directory links) and writes ``labels/<split>.cache``
    beside the label dir; with real scratch dirs holding file links, the cache lands in scratch and the
    channel (user data) is never modified.
    """
    for split, split_dir in summary.split_dirs.items():
        label_dir = Path(*[contract.LABELS_DIR if p == contract.IMAGES_DIR else p for p in split_dir.parts])
        for kind, source_dir in ((contract.IMAGES_DIR, split_dir), (contract.LABELS_DIR, label_dir)):
            target_dir = view / kind / split
            target_dir.mkdir(parents=True, exist_ok=True)
            if not source_dir.is_dir():
                continue
            for source in source_dir.rglob("*"):
                if source.is_file():
                    link = target_dir / source.relative_to(source_dir)
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to(source.resolve())
    data_yaml = view / contract.DATA_YAML_NAME
    data_yaml.write_text(contract.data_yaml_text(summary.class_names, path=str(view)), encoding="utf-8")
    return data_yaml


def _model_source(hp: Hyperparameters, weights_dir: Path) -> tuple[str, bool]:
    """(what YOLO() loads, whether it is pretrained weights). Weights must already be in the weights channel."""
    if hp.model.endswith(".pt"):
        weights = weights_dir / hp.model
        if not weights.is_file():
            raise TrainingFailure(f"model={hp.model}: no such file in the weights channel {weights_dir}")
        return str(weights), True
    return hp.model, False


def _cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _instance_settings(hp: Hyperparameters, device: str, summary: DatasetSummary) -> tuple[Hyperparameters, Any]:
    """``hp`` with batch, workers and cache resolved for this instance (the user's values kept), and the
    Ultralytics ``amp`` argument; the choices and their reasons are logged once, here."""
    facts = instance_defaults.gather_facts(
        device,
        train_images=summary.image_counts.get(contract.TRAIN_SPLIT, 0),
        val_images=summary.image_counts.get(contract.VAL_SPLIT, 0),
        imgsz=hp.imgsz,
        model=hp.model,
    )
    chosen = instance_defaults.choose_settings(
        facts, {name: getattr(hp, name) for name in instance_defaults.AUTO_SETTINGS}
    )
    print(instance_defaults.describe(facts, chosen), flush=True)
    cache = chosen["cache"].value
    resolved = replace(
        hp,
        batch=int(chosen["batch"].value),
        workers=int(chosen["workers"].value),
        cache=cache if isinstance(cache, str) else "false",
        amp=str(chosen["amp"].value) if chosen["amp"].value else "false",
        threads=chosen["threads"].value if chosen["threads"].value is not None else AUTO,
        gpu_augment="true" if chosen["gpu_augment"].value else "false",
        channels_last="true" if chosen["channels_last"].value else "false",
        cuda_graphs="true" if chosen["cuda_graphs"].value else "false",
    )
    return resolved, chosen["amp"].value


def _lineage(summary: DatasetSummary) -> dict[str, Any]:
    manifest = summary.manifest or {}
    return {
        "dataset_run": manifest.get("run"),
        "manifest_sha256": summary.manifest_sha256,
        "dataset_contract_version": manifest.get("contract_version"),
        "renderer": manifest.get("renderer"),
        "seeds": manifest.get("seeds"),
        "source_meshes": manifest.get("source_meshes"),
        "image_counts": summary.image_counts,
        "label_counts": summary.label_counts,
    }


def _export(weights: Path, hp: Hyperparameters, summary: DatasetSummary, loc: JobLocations, device: str) -> None:
    """model.onnx (static imgsz, pinned opset, exported on CPU), model.pt, model.json into the model dir."""
    import onnx
    import torch
    import ultralytics
    from ultralytics import YOLO

    # Export from a scratch copy: Ultralytics writes the .onnx beside its source, which is the synced checkpoint dir.
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX) as export_dir:
        source = Path(export_dir) / weights.name
        callbacks.atomic_copy(weights, source)
        exported = Path(
            YOLO(str(source)).export(format="onnx", imgsz=hp.imgsz, opset=hp.opset, dynamic=False, simplify=True)
        )
        loc.model_dir.mkdir(parents=True, exist_ok=True)
        callbacks.atomic_copy(exported, loc.model_dir / contract.MODEL_ONNX_NAME)
    callbacks.atomic_copy(weights, loc.model_dir / contract.MODEL_PT_NAME)
    history = callbacks.read_history(loc.checkpoint_dir)
    best_metrics = callbacks.exported_epoch_metrics(history)
    card = {
        "schema_version": contract.MODEL_JSON_SCHEMA_VERSION,
        "contract_version": contract.CONTRACT_VERSION,
        "model_version": contract.file_sha256(loc.model_dir / contract.MODEL_ONNX_NAME)[:16],
        "task": "detect",
        "class_names": summary.class_names,
        "imgsz": hp.imgsz,
        "input": {"name": "images", "shape": [1, 3, hp.imgsz, hp.imgsz], "format": "RGB float 0-1, letterboxed"},
        "metrics": {k: v for k, v in best_metrics.items() if k != "epoch"},
        "metrics_epoch": int(best_metrics.get("epoch", 0)),
        "epochs_trained": int(history[-1]["epoch"]) if history else 0,
        "metrics_history": history,
        "lineage": _lineage(summary),
        "training_job": os.environ.get("TRAINING_JOB_NAME"),
        "hyperparameters": asdict(hp),
        "training_device": device,
        "versions": {
            "sim2cloud": __version__,
            "ultralytics": ultralytics.__version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnx_opset": hp.opset,
        },
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_card(loc.model_dir, card)


def _write_card(model_dir: Path, card: dict[str, Any]) -> None:
    temporary = model_dir / f".{contract.MODEL_JSON_NAME}.partial"
    temporary.write_text(json.dumps(card, indent=2))
    temporary.replace(model_dir / contract.MODEL_JSON_NAME)


def _measure_exported_model(summary: DatasetSummary, loc: JobLocations, progress: bool) -> None:
    """The project's one mAP (sim2cloud.evaluation) of the exported model.onnx on the val split, into
    model.json's ``metrics`` (what the quality gate reads); Ultralytics' numbers of the best epoch stay beside
    them as ``training_validation``. evaluation.json and a detections picture go to the output data."""
    from sim2cloud.evaluation.evaluate import model_predictor, run_evaluation

    val_dir = summary.split_dirs.get(contract.VAL_SPLIT)
    if val_dir is None or not summary.image_counts.get(contract.VAL_SPLIT):
        return
    document = run_evaluation(
        model_predictor(loc.model_dir),
        val_dir,
        summary.class_names,
        source=contract.MODEL_ONNX_NAME,
        out_dir=loc.output_data_dir / contract.TRAINING_EVALUATION_DIR,
        progress=progress,
    )
    card = json.loads((loc.model_dir / contract.MODEL_JSON_NAME).read_text())
    card["training_validation"] = dict(card.get("metrics", {}))
    card["metrics"] = {**card["training_validation"], "mAP50": document["mAP50"], "mAP50-95": document["mAP50-95"]}
    card["metrics_source"] = {
        "split": contract.VAL_SPLIT,
        "model_file": contract.MODEL_ONNX_NAME,
        "images": document["images"],
        "definition": document["definition"],
        "per_class": document["per_class"],
    }
    _write_card(loc.model_dir, card)
    print(f"mAP50 {document['mAP50']:.4f} mAP50-95 {document['mAP50-95']:.4f} ({contract.MODEL_ONNX_NAME}, val)")


def _keep_ultralytics_plots(run_dir: Path, destination: Path) -> None:
    """Ultralytics' own plots of the final validation (confusion matrix, PR/F1 curves, val batches) and
    results.png, out of the scratch run dir into the output data."""
    for picture in sorted(run_dir.glob("*.png")) + sorted(run_dir.glob("*.jpg")):
        destination.mkdir(parents=True, exist_ok=True)
        callbacks.atomic_copy(picture, destination / picture.name)


def train(loc: JobLocations, hp: Hyperparameters, environ: Mapping[str, str], progress: bool = True) -> Path:
    """Check, train (or resume), export. Returns the model dir. Raises TrainingFailure for bad input."""
    try:
        summary = check_dataset(loc.dataset, progress=progress)
    except DatasetError as error:
        raise TrainingFailure(str(error)) from error
    source, pretrained = _model_source(hp, loc.weights)
    loc.checkpoint_dir.mkdir(parents=True, exist_ok=True)

    # Ultralytics' "Results saved to <scratch>" would point at a folder deleted when the job ends.
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX) as scratch_name, scratch_hints_hidden(SCRATCH_PREFIX):
        scratch = Path(scratch_name)
        offline.prepare_offline_ultralytics(scratch / "config")
        from ultralytics import YOLO

        offline.disable_settings_sync()
        gpu_count = _cuda_device_count()
        try:
            device = devices.resolve_device(hp.device, environ.get(contract.Env.SM_NUM_GPUS), gpu_count)
        except ValueError as error:
            raise TrainingFailure(str(error)) from error
        hp, amp = _instance_settings(hp, device, summary)
        checkpoint = loc.checkpoint_dir / callbacks.CHECKPOINT_NAME
        finished = (loc.checkpoint_dir / callbacks.COMPLETE_MARKER_NAME).is_file()
        run_dir = scratch / "run"
        if finished:
            print(f"training already complete in {loc.checkpoint_dir}; exporting", flush=True)
        else:
            data_yaml = _dataset_view(summary, scratch / "dataset")
            resuming = checkpoint.is_file()
            model = YOLO(str(checkpoint) if resuming else source)
            timer = callbacks.EpochTimer()
            model.add_callback("on_train_epoch_start", timer.start)
            model.add_callback("on_train_epoch_end", timer.end)
            model.add_callback("on_model_save", callbacks.EpochReporter(loc.checkpoint_dir, timer))
            model.add_callback("on_train_end", callbacks.CompletionMarker(loc.checkpoint_dir))
            model.add_callback("on_fit_epoch_end", callbacks.final_plots)
            settings: dict[str, Any] = {
                "data": str(data_yaml),
                "epochs": hp.epochs,
                "imgsz": hp.imgsz,
                "batch": hp.batch,
                "patience": hp.patience,
                "seed": hp.seed,
                "workers": hp.workers,
                "cache": False if hp.cache == "false" else hp.cache,
                "lr0": hp.lr0,
                "optimizer": hp.optimizer,
                "close_mosaic": hp.close_mosaic,
                "nbs": hp.nbs,
                "warmup_epochs": hp.warmup_epochs,
                "device": device,
                "amp": amp,
                "pretrained": pretrained,
                "plots": False,  # per-epoch plots cost time; FinalPlots turns them on for the final validation
                "save_dir": str(run_dir),
                "exist_ok": True,
                "verbose": True,
            }
            if resuming:
                print(f"resuming from checkpoint {checkpoint}", flush=True)
                settings["resume"] = True
            if device == "cpu" and hp.threads != AUTO:
                model.add_callback("on_train_start", callbacks.CpuThreads(int(hp.threads)))
            from sim2cloud.training.trainers import trainer_class

            trainer = trainer_class(
                gpu_augment=hp.gpu_augment == "true",
                channels_last=hp.channels_last == "true",
                cuda_graphs=hp.cuda_graphs == "true",
            )
            if trainer is not None:
                settings["trainer"] = trainer
            model.train(**settings)
        best = loc.checkpoint_dir / callbacks.BEST_NAME
        if not best.is_file():
            raise TrainingFailure(f"training ended without a model: {best} was not written")
        _export(best, hp, summary, loc, device)
        _measure_exported_model(summary, loc, progress)
        _keep_ultralytics_plots(run_dir, loc.output_data_dir / contract.TRAINING_PLOTS_DIR)
        # SageMaker uploads output/data as output.tar.gz: the per-epoch history and Ultralytics' results table.
        loc.output_data_dir.mkdir(parents=True, exist_ok=True)
        for produced in (loc.checkpoint_dir / callbacks.METRICS_HISTORY_NAME, run_dir / "results.csv"):
            if produced.is_file():
                callbacks.atomic_copy(produced, loc.output_data_dir / produced.name)
        picture = write_training_curves(callbacks.read_history(loc.checkpoint_dir), loc.output_data_dir / CURVES_NAME)
        if picture is not None:
            print(f"training curves: {picture}", flush=True)
    return loc.model_dir


def _write_failure(loc_paths: contract.SageMakerPaths, reason: str) -> None:
    failure = Path(loc_paths.failure_file)
    failure.parent.mkdir(parents=True, exist_ok=True)
    failure.write_text(reason.rstrip() + "\n")


def run_job(paths: contract.SageMakerPaths, environ: Mapping[str, str], progress: bool = True) -> int:
    """The container's ``train``: 0 on success; 1 with ``output/failure`` for bad input, 2 for internal errors."""
    Path(paths.failure_file).unlink(missing_ok=True)  # a stale reason from an earlier run would mislead
    loc = JobLocations.from_environment(paths, environ)
    try:
        hp = load_hyperparameters(Path(paths.hyperparameters))
        train(loc, hp, environ, progress=progress)
    except (TrainingFailure, HyperparameterError) as error:
        _write_failure(paths, str(error))
        print(f"training failed: {error}", file=sys.stderr, flush=True)
        return 1
    except Exception as error:
        _write_failure(paths, f"internal error: {type(error).__name__}: {error}")
        traceback.print_exc()
        return 2
    print(f"model written to {loc.model_dir}", flush=True)
    return 0
