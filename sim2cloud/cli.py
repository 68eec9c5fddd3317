"""The ``sim2cloud`` console script.

Each subcommand lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``;
modules are imported only when their command runs (or for ``--help``), so ``sim2cloud render``
never pays for importing torch and ``sim2cloud serve`` never imports the renderer.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sim2cloud import __version__
from sim2cloud.job_log import progress_lines

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "render": ("isaac_jobs.commands.render", "Render meshes into a YOLO dataset (or one shard of it)"),
    "convert": ("isaac_jobs.commands.convert", "Convert meshes into validated USD assets with a per-file report"),
    "finalize": ("isaac_jobs.commands.finalize", "Merge rendered shards into one dataset; manifest.json last"),
    "train": ("sim2cloud.training.cli", "Train a YOLOv8 detector on a dataset (the SageMaker train entrypoint)"),
    "serve": ("sim2cloud.serving.cli", "Serve a model over HTTP with the SageMaker container contract"),
    "evaluate": ("sim2cloud.evaluation.cli", "mAP of a model file or a running endpoint on a dataset"),
    "report": ("sim2cloud.report.cli", "The run report (one self-contained report.html) from a run's artefacts"),
    "demo": ("sim2cloud.local.cli", "The whole pipeline on one machine: moto as AWS, the real Lambdas and jobs"),
    "submit": ("sim2cloud.deployed.submit", "Validate a local mesh batch with the launcher's rules, then upload it"),
    "status": ("sim2cloud.deployed.status", "Each run's stage (render .. package), timings, failures, report"),
}


DESCRIPTION = """\
Sim-to-Cloud: 3D meshes in, a deployed object detector out, without a real labelled image.

Meshes become labelled synthetic renders (a YOLO dataset), a YOLOv8 detector is trained on them and served
with the SageMaker container contract. Each step is a subcommand below and runs the same code the cloud
runs; `sim2cloud demo` runs the whole pipeline on this machine with no AWS account, and `submit`/`status`
work with a deployed environment. `sim2cloud COMMAND --help` lists a command's options and defaults."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help line (unless the line already says it, or there is none: None, off,
    an empty list); descriptions keep their own line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, [], argparse.SUPPRESS) or action.required:
            return text
        return super()._get_help_string(action)


REDRAWS_NOTHING = frozenset({"serve", "submit", "status"})
"""Commands with no progress bar; the server's request path stays untouched."""


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sim2cloud", description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"sim2cloud {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        # Only the chosen command's module is imported; the others just list their help line.
        if name == wanted:
            module = importlib.import_module(module_name)
            module.configure(command_parser)
            command_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    if args.command in REDRAWS_NOTHING:
        return int(args._module.run(args) or 0)
    with progress_lines():  # off a terminal (CI, a pipe, a log file): progress lines, never a redrawn bar
        return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
