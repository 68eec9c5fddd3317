"""``sim2cloud evaluate``: mAP50 / mAP50-95 (overall and per class) of a model file or a running endpoint.

Writes ``evaluation.json`` and ``detections.png`` (sample images with ground truth and detections) into
``--out`` and prints the JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sim2cloud import contract


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="model dir, its model.onnx, a `sim2cloud train --out` folder or a model.tar.gz (its class names; the "
        "predictor unless --endpoint)",
    )
    parser.add_argument("--data", type=Path, required=True, help="YOLO dataset dir (data.yaml + images/ + labels/)")
    parser.add_argument("--endpoint", help="evaluate through a running server at this URL (POST <URL>/invocations)")
    parser.add_argument("--split", default=contract.VAL_SPLIT, choices=contract.SPLITS, help="dataset split")
    parser.add_argument("--out", type=Path, default=Path("out/evaluation"), help="where the JSON and PNG go")
    parser.add_argument("--no-progress", action="store_true")


def endpoint_problem(url: str, timeout_s: float = 5.0) -> str | None:
    """Why ``url`` cannot be evaluated through (None: its ``GET /ping`` answers 200), checked before any work."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be an http(s) URL with a host, e.g. http://127.0.0.1:8080"
    try:
        with urllib.request.urlopen(url.rstrip("/") + contract.PING_PATH, timeout=timeout_s) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as error:
        return f"GET {contract.PING_PATH} answered {error.code} (the server is not ready)"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"unreachable ({reason}); is the server running (sim2cloud serve)?"
    return None if status == 200 else f"GET {contract.PING_PATH} answered {status}"


def run(args: argparse.Namespace) -> int:
    from sim2cloud.evaluation.evaluate import endpoint_predictor, model_predictor, run_evaluation
    from sim2cloud.serving.model import opened_model
    from sim2cloud.training.dataset_checks import DatasetError, check_dataset

    if args.endpoint:
        problem = endpoint_problem(args.endpoint)
        if problem is not None:
            raise SystemExit(f"sim2cloud evaluate: --endpoint {args.endpoint}: {problem}")
    try:
        summary = check_dataset(args.data, progress=not args.no_progress)
    except DatasetError as error:
        raise SystemExit(f"sim2cloud evaluate: {error}") from error
    try:
        with opened_model(args.model) as model_dir:
            model_classes = json.loads((model_dir / contract.MODEL_JSON_NAME).read_text())["class_names"]
            missing = [name for name in summary.class_names if name not in model_classes]
            if missing:
                raise SystemExit(f"sim2cloud evaluate: the model does not know the dataset's classes {missing}")
            if args.endpoint:
                predictor, source = endpoint_predictor(args.endpoint), f"endpoint {args.endpoint}"
            else:
                predictor, source = model_predictor(model_dir), f"model {args.model}"
            document = run_evaluation(
                predictor, summary.split_dirs[args.split], summary.class_names, source, args.out, not args.no_progress
            )
    except FileNotFoundError as error:
        raise SystemExit(f"sim2cloud evaluate: {error}") from error
    print(json.dumps(document, indent=2))
    return 0
