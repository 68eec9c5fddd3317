"""``sim2cloud train``: the SageMaker training entrypoint, runnable locally.

Without ``--dataset`` it is the container's ``train``: everything comes from the ``/opt/ml`` tree (or the
base dir in SIM2CLOUD_SM_BASE_DIR). With ``--dataset DIR --out DIR`` it lays out the same tree under
``--out`` (dataset channel linked, not copied; hyperparameters.json from ``--hp``) and runs the same job;
running the same command again resumes from ``--out/checkpoints``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from sim2cloud import contract


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, help="YOLO dataset dir (data.yaml + images/ + labels/)")
    parser.add_argument("--out", type=Path, help="base dir of the /opt/ml-style tree (model/, checkpoints/ ...)")
    parser.add_argument(
        "--hp", action="append", default=[], metavar="KEY=VALUE", help="hyperparameter (repeatable), e.g. epochs=5"
    )
    parser.add_argument(
        "--weights",
        type=Path,
        help="fine-tune from these weights (a .pt, e.g. COCO-pretrained yolov8n.pt you downloaded once): laid out "
        "as the weights channel, and model= names it; default: train from the model YAML",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def lay_out_local_tree(base: Path, dataset: Path, hyperparameters: dict[str, str]) -> contract.SageMakerPaths:
    """Create ``base`` as SageMaker would: the dataset channel (a link to ``dataset``) and hyperparameters.json."""
    paths = contract.SageMakerPaths(base=str(base.resolve()))
    channel = Path(paths.channel(contract.DATASET_CHANNEL))
    channel.parent.mkdir(parents=True, exist_ok=True)
    if channel.is_symlink():
        channel.unlink()
    elif channel.exists():
        raise SystemExit(f"{channel} exists and is not a link made by 'sim2cloud train'; use another --out")
    channel.symlink_to(dataset.resolve(), target_is_directory=True)
    config = Path(paths.hyperparameters)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(hyperparameters, indent=2))  # strings, as SageMaker writes them
    return paths


def lay_out_weights(paths: contract.SageMakerPaths, weights: Path, hyperparameters: dict[str, str]) -> None:
    """The weights channel as SageMaker fills it (one file, linked), and ``model=<its name>`` in
    hyperparameters.json so the job loads it; a different ``model=`` given with it is a contradiction, refused."""
    if not weights.is_file() or weights.suffix != ".pt":
        raise SystemExit(f"sim2cloud train: --weights {weights} is not a .pt file")
    chosen = hyperparameters.get("model")
    if chosen is not None and chosen != weights.name:
        raise SystemExit(f"sim2cloud train: --weights {weights.name} but --hp model={chosen}; give one of them")
    hyperparameters["model"] = weights.name
    channel = Path(paths.channel(contract.WEIGHTS_CHANNEL))
    channel.mkdir(parents=True, exist_ok=True)
    for stale in channel.iterdir():  # an earlier --weights of this --out
        if stale.is_symlink():
            stale.unlink()
    (channel / weights.name).symlink_to(weights.resolve())
    Path(paths.hyperparameters).write_text(json.dumps(hyperparameters, indent=2))


def run(args: argparse.Namespace) -> int:
    from sim2cloud.hyperparameters import HyperparameterError, parse_hyperparameters, parse_key_values
    from sim2cloud.job_log import job_output
    from sim2cloud.training.job import SCRATCH_PREFIX, paths_from_environment, run_job

    environ = dict(os.environ)
    if args.dataset is None and args.out is None:
        # The container's `train` (SageMaker, CloudWatch): JSON lines and progress lines off a terminal.
        level = environ.get(contract.Env.LOG_LEVEL, "INFO")
        with job_output("training-job", level=level, scratch_prefix=SCRATCH_PREFIX):
            return run_job(paths_from_environment(environ), environ, progress=not args.no_progress)
    elif args.dataset is None or args.out is None:
        raise SystemExit("sim2cloud train: --dataset and --out go together (or neither, inside the container)")
    elif not args.dataset.is_dir():
        raise SystemExit(
            f"sim2cloud train: --dataset {args.dataset}: no such folder (a YOLO dataset: data.yaml, images/)"
        )
    elif args.out.exists() and not args.out.is_dir():
        raise SystemExit(f"sim2cloud train: --out {args.out}: is a file, not a folder")
    else:
        try:
            hyperparameters = parse_key_values(args.hp)
            parse_hyperparameters(hyperparameters)  # fail before laying anything out
        except HyperparameterError as error:
            raise SystemExit(f"sim2cloud train: {error}") from error
        paths = lay_out_local_tree(args.out, args.dataset, hyperparameters)
        if args.weights is not None:
            lay_out_weights(paths, args.weights, hyperparameters)
        # A local tree has no SageMaker variables; stale ones from the shell must not redirect it.
        for name in (
            contract.Env.SM_CHANNEL_DATASET,
            contract.Env.SM_CHANNEL_WEIGHTS,
            contract.Env.SM_MODEL_DIR,
            contract.Env.SM_OUTPUT_DATA_DIR,
        ):
            environ.pop(name, None)
    return run_job(paths, environ, progress=not args.no_progress)
