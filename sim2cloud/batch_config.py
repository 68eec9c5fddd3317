"""batch.yaml's rules, defined once: the render launcher (before any job is submitted), ``sim2cloud submit``
(before anything is uploaded) and the render job (:func:`isaac_jobs.batch.read_batch_config`) all check a
batch's settings with :func:`parse_batch_config`.

Imports only the standard library, PyYAML and the training job's hyperparameter table (itself standard
library only), because the render launcher's Lambda bundle carries this module (see
``sim2cloud/lambda_bundle.py``). The checks that need the render job's own libraries stay there:
``looks`` (texture files, colour ranges) and the scene-spec keys under ``render``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sim2cloud import contract
from sim2cloud.hyperparameters import HyperparameterError, parse_hyperparameters

BATCH_KEYS: Final = (
    "classes",
    "triangle_budget",
    "max_triangles",
    "up_axis",
    "scale",
    "usd_labels",
    "frames",
    "render",
    "looks",
    contract.MANIFEST_TRAINING_FIELD,
)
"""Every key batch.yaml may hold (isaac_jobs/batch.py documents each)."""
UP_AXIS_CHOICES: Final = ("auto", "y", "z")
MAX_BATCH_CONFIG_BYTES: Final = 1024 * 1024
"""A larger batch.yaml is refused unread (settings fit in a few KiB; the launcher parses it in pure Python)."""


class BatchConfigProblem(ValueError):
    """batch.yaml cannot be used; the message lists every reason (joined by ``; ``)."""


def parse_batch_config(text: str) -> dict[str, Any]:
    """batch.yaml's text checked key by key: the settings ({} for an empty file), or BatchConfigProblem."""
    import yaml

    if len(text) > MAX_BATCH_CONFIG_BYTES:
        raise BatchConfigProblem(f"is {len(text)} characters long, over the limit of {MAX_BATCH_CONFIG_BYTES}")

    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BatchConfigProblem(f"not valid YAML: {exc}") from exc
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise BatchConfigProblem(f"must be a mapping of settings, not {type(config).__name__}")
    problems = batch_config_problems(config)
    if problems:
        raise BatchConfigProblem("; ".join(problems))
    return config


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def batch_config_problems(config: Mapping[Any, Any]) -> list[str]:
    """Every reason the parsed batch.yaml ``config`` cannot be used ([] when it can)."""
    problems = [f"unknown key {key!r}; allowed: {', '.join(BATCH_KEYS)}" for key in config if key not in BATCH_KEYS]
    classes = config.get("classes", {}) or {}
    if not isinstance(classes, dict):
        problems.append("classes must map folder or file paths to class names")
    else:
        for target, name in classes.items():
            problem = contract.name_problem(str(name))
            if problem is not None:
                problems.append(f"classes[{target!r}]: invalid class name {str(name)!r}: it {problem}")
    for key in ("triangle_budget", "max_triangles"):
        value = config.get(key)
        if value is not None and (not _is_int(value) or value < 4):
            problems.append(f"{key} must be an integer of at least 4, not {value!r}")
    if config.get("up_axis", "auto") not in UP_AXIS_CHOICES:
        problems.append(f"up_axis must be one of {', '.join(UP_AXIS_CHOICES)}, not {config['up_axis']!r}")
    scale = config.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        problems.append(f"scale must be a positive number, not {scale!r}")
    render = config.get("render", {}) or {}
    if not isinstance(render, Mapping):
        problems.append("render must be a mapping of scene-spec settings")
    elif "frames" in render:
        problems.append("set frames at the top level of batch.yaml, not under render")
    if not isinstance(config.get("usd_labels", False), bool):
        problems.append(f"usd_labels must be true or false, not {config['usd_labels']!r}")
    frames = config.get("frames")
    if frames is not None and (not _is_int(frames) or frames < 1):
        problems.append(f"frames must be a positive integer, not {frames!r}")
    training = config.get(contract.MANIFEST_TRAINING_FIELD, {}) or {}
    if not isinstance(training, Mapping) or not all(isinstance(key, str) for key in training):
        problems.append(f"{contract.MANIFEST_TRAINING_FIELD} must map hyperparameter names to values")
    else:
        # The training container's own table, so a typo (epoch: 3) fails before hours of GPU rendering.
        try:
            parse_hyperparameters({key: contract.hyperparameter_string(value) for key, value in training.items()})
        except HyperparameterError as exc:
            problems.append(f"{contract.MANIFEST_TRAINING_FIELD}: {exc}")
    return problems
