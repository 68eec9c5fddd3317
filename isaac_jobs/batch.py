"""A batch of meshes: ``<batch>/<class>/<file>`` plus an optional ``<batch>/batch.yaml``.

batch.yaml (every key optional; unknown keys are an error naming the key)::

    classes:            # folder name or file path relative to the batch -> class name (a file entry wins)
      cups: mug
      misc/thermos.glb: bottle
    triangle_budget: 50000   # triangles kept per mesh after decimation (mesh.DEFAULT_TRIANGLE_BUDGET)
    max_triangles: 1000000   # refuse files above this (default: 20 x triangle_budget)
    up_axis: auto            # auto (per-format default; a USD file's own upAxis) | y | z, for every file
    scale: 1.0               # multiplies every position (0.001 for millimetre CAD files; USD: x metersPerUnit)
    usd_labels: false        # true: a USD file's own class label (UsdSemantics) names its class, not its folder
    frames: 400              # total frames of the run; the render launcher sizes the Batch array job from it
    render: {width: 800}     # other scene-spec overrides, passed through to isaac_jobs.spec
    looks:                   # per-class look of meshes with no colour of their own (isaac_jobs.appearance)
      mug: {hue: [340, 20], saturation: [0.5, 0.9], value: [0.35, 0.9], roughness: [0.2, 0.5]}
    training: {epochs: 30}   # this dataset's hyperparameters: copied into manifest.json, they win in the training job

``frames`` is top-level (not under ``render``) because the render launcher Lambda reads it without a YAML
library to size the job before any renderer runs; every reader must agree on one place.

Class ids: ``class_names`` is the sorted list of classes of every discovered mesh file, so the id of a
class does not depend on which files later fail to load (every shard agrees on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from isaac_jobs.mesh import DEFAULT_TRIANGLE_BUDGET, Mesh, MeshError, UpAxis, load_mesh
from sim2cloud import contract

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
UP_AXIS_CHOICES: Final = ("auto", "y", "z")


class BatchConfigError(MeshError):
    """batch.yaml itself is wrong: it affects every file, so the batch stops here."""


@dataclass(frozen=True)
class MeshSource:
    path: Path
    class_name: str


@dataclass
class BatchPlan:
    root: Path
    sources: list[MeshSource]
    errors: list[MeshError]
    class_names: list[str]
    """Sorted, stable: the YOLO class ids are the indices."""
    render_overrides: dict[str, Any]
    triangle_budget: int
    up_axis: str
    max_triangles: int | None = None
    scale: float = 1.0
    config: dict[str, Any] = field(default_factory=dict)
    """batch.yaml as read ({} without one), for the manifest."""
    usd_labels: bool = False
    """Whether USD files are classed by their own semantic label (batch.yaml ``usd_labels``)."""
    looks: dict[str, Any] = field(default_factory=dict)
    """batch.yaml ``looks`` (class name -> isaac_jobs.appearance.Look), checked against the classes found."""


def read_batch_config(batch_dir: Path) -> dict[str, Any]:
    """batch.yaml checked key by key; {} when the batch has none."""
    import yaml

    path = Path(batch_dir) / contract.BATCH_CONFIG_NAME
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BatchConfigError(path, f"not valid YAML: {exc}") from exc
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise BatchConfigError(path, f"must be a mapping of settings, not {type(config).__name__}")
    for key in config:
        if key not in BATCH_KEYS:
            raise BatchConfigError(path, f"unknown key {key!r}; allowed: {', '.join(BATCH_KEYS)}")
    classes = config.get("classes", {}) or {}
    if not isinstance(classes, dict):
        raise BatchConfigError(path, "classes must map folder or file paths to class names")
    for target, name in classes.items():
        try:
            contract.check_id(str(name), "class name")
        except ValueError as exc:
            raise BatchConfigError(path, f"classes[{target!r}]: {exc}") from exc
    for key in ("triangle_budget", "max_triangles"):
        value = config.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 4):
            raise BatchConfigError(path, f"{key} must be an integer of at least 4, not {value!r}")
    if config.get("up_axis", "auto") not in UP_AXIS_CHOICES:
        raise BatchConfigError(path, f"up_axis must be one of {', '.join(UP_AXIS_CHOICES)}, not {config['up_axis']!r}")
    scale = config.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        raise BatchConfigError(path, f"scale must be a positive number, not {scale!r}")
    if not isinstance(config.get("render", {}) or {}, Mapping):
        raise BatchConfigError(path, "render must be a mapping of scene-spec settings")
    if not isinstance(config.get("usd_labels", False), bool):
        raise BatchConfigError(path, f"usd_labels must be true or false, not {config['usd_labels']!r}")
    frames = config.get("frames")
    if frames is not None and (not isinstance(frames, int) or isinstance(frames, bool) or frames < 1):
        raise BatchConfigError(path, f"frames must be a positive integer, not {frames!r}")
    training = config.get(contract.MANIFEST_TRAINING_FIELD, {}) or {}
    if not isinstance(training, Mapping) or not all(isinstance(key, str) for key in training):
        raise BatchConfigError(path, f"{contract.MANIFEST_TRAINING_FIELD} must map hyperparameter names to values")
    # Checked now with the training container's own table, so a typo fails before hours of GPU rendering.
    from sim2cloud.hyperparameters import HyperparameterError, parse_hyperparameters

    try:
        parse_hyperparameters({key: contract.hyperparameter_string(value) for key, value in training.items()})
    except HyperparameterError as exc:
        raise BatchConfigError(path, f"{contract.MANIFEST_TRAINING_FIELD}: {exc}") from exc
    if "frames" in (config.get("render") or {}):
        raise BatchConfigError(path, "set frames at the top level of batch.yaml, not under render")
    from isaac_jobs.appearance import LookError, parse_looks

    try:
        parse_looks(config.get("looks"), None, Path(batch_dir), "looks")
    except LookError as exc:
        raise BatchConfigError(path, str(exc)) from exc
    return config


def discover_batch(batch_dir: Path) -> BatchPlan:
    """List the mesh files of a batch with their classes; per-file problems go to ``errors``.

    Raises BatchConfigError for a broken batch.yaml and MeshError when ``batch_dir`` is not a folder.
    """
    root = Path(batch_dir)
    if not root.is_dir():
        raise MeshError(root, "batch folder does not exist")
    config = read_batch_config(root)
    classes: dict[str, str] = {str(k).strip("/"): str(v) for k, v in (config.get("classes") or {}).items()}
    sources: list[MeshSource] = []
    errors: list[MeshError] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue  # hidden files (.DS_Store, editor swap files) and folders
        suffix = path.suffix.lower()
        if len(relative.parts) == 1:
            if path.name != contract.BATCH_CONFIG_NAME and suffix not in contract.MESH_COMPANION_EXTENSIONS:
                errors.append(MeshError(path, "not inside a class folder: put it in <batch>/<class>/"))
            continue
        if suffix in contract.MESH_COMPANION_EXTENSIONS:
            continue  # materials, glTF buffers and textures travel with their mesh
        if suffix not in contract.SUPPORTED_MESH_EXTENSIONS:
            supported = ", ".join(contract.SUPPORTED_MESH_EXTENSIONS)
            errors.append(MeshError(path, f"unsupported extension {suffix or '(none)'!r}; supported: {supported}"))
            continue
        if len(relative.parts) > 2:
            errors.append(MeshError(path, "nested too deep: meshes go directly in <batch>/<class>/"))
            continue
        folder = relative.parts[0]
        class_name = classes.get(relative.as_posix(), classes.get(folder, folder))
        if config.get("usd_labels") and suffix in contract.USD_MESH_EXTENSIONS and relative.as_posix() not in classes:
            try:
                class_name = _usd_class_label(path) or class_name
            except MeshError as exc:
                errors.append(exc)
                continue
        try:
            contract.check_id(class_name, "class name")
        except ValueError as exc:
            errors.append(MeshError(path, f"{exc} (rename the folder or map it under classes in batch.yaml)"))
            continue
        sources.append(MeshSource(path, class_name))
    looks: dict[str, Any] = {}
    if config.get("looks"):
        from isaac_jobs.appearance import LookError, parse_looks

        found = sorted({source.class_name for source in sources})
        try:
            looks = dict(parse_looks(config["looks"], found, root, "looks"))
        except LookError as exc:
            raise BatchConfigError(root / contract.BATCH_CONFIG_NAME, str(exc)) from exc
    return BatchPlan(
        root=root,
        sources=sources,
        errors=errors,
        class_names=sorted({source.class_name for source in sources}),
        render_overrides={
            **dict(config.get("render") or {}),
            **({"frames": config["frames"]} if config.get("frames") is not None else {}),
        },
        triangle_budget=int(config.get("triangle_budget") or DEFAULT_TRIANGLE_BUDGET),
        up_axis=str(config.get("up_axis", "auto")),
        max_triangles=config.get("max_triangles"),
        scale=float(config.get("scale", 1.0)),
        config=config,
        usd_labels=bool(config.get("usd_labels", False)),
        looks=looks,
    )


def _usd_class_label(path: Path) -> str | None:
    """The file's own class label (the first, when it carries several); None when it has none."""
    from isaac_jobs.usd_import import UsdReadError, read_class_labels

    try:
        labels = read_class_labels(path)
    except UsdReadError as exc:
        raise MeshError(path, str(exc)) from exc
    return labels[0] if labels else None


def load_batch(plan: BatchPlan, *, progress: bool = True) -> tuple[list[Mesh], list[MeshError]]:
    """Load every source of the plan; each bad file becomes one MeshError (after the plan's own) and the rest load.

    Mesh names are made unique within a class (``mug.obj`` and ``mug.glb`` become ``mug_obj`` and ``mug_glb``).
    """
    from tqdm import tqdm

    up_axis: UpAxis = "y" if plan.up_axis == "y" else "z" if plan.up_axis == "z" else "auto"
    meshes: list[Mesh] = []
    errors: list[MeshError] = list(plan.errors)
    for source in tqdm(plan.sources, desc="loading meshes", unit="mesh", disable=not progress):
        try:
            mesh = load_mesh(
                source.path,
                class_name=source.class_name,
                triangle_budget=plan.triangle_budget,
                max_triangles=plan.max_triangles,
                up_axis=up_axis,
                scale=plan.scale,
            )
        except MeshError as exc:
            errors.append(exc)
            continue
        except Exception as exc:  # a loader bug must not take the batch down with it
            errors.append(MeshError(source.path, f"unexpected error while loading: {type(exc).__name__}: {exc}"))
            continue
        meshes.append(mesh)
    _unique_names(meshes)
    return meshes, errors


def _unique_names(meshes: list[Mesh]) -> None:
    """Stems clash within a class when formats or mapped folders share a file name: add the format, then a count."""
    counts: dict[tuple[str, str], int] = {}
    for mesh in meshes:
        counts[(mesh.class_name, mesh.name)] = counts.get((mesh.class_name, mesh.name), 0) + 1
    for mesh in meshes:
        if counts[(mesh.class_name, mesh.name)] > 1:
            mesh.name = f"{mesh.name}_{mesh.source.suffix.lstrip('.').lower()}"
    taken: set[tuple[str, str]] = set()
    for mesh in meshes:
        name, number = mesh.name, 1
        while (mesh.class_name, name) in taken:
            number += 1
            name = f"{mesh.name}_{number}"
        mesh.name = name
        taken.add((mesh.class_name, name))
