"""The scene spec: one backend-neutral description of how frames are randomized.

Defaults and the documentation of every setting live in ``default_spec.yaml`` beside this module (the
format an override file follows). ``load_spec`` layers defaults < YAML file < overrides (CLI flags), rejects
unknown keys by name and validates every value with a message naming the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SPEC_PATH = Path(__file__).with_name("default_spec.yaml")

PROCEDURAL_BACKGROUNDS = ("gradient", "noise", "checker", "stripes", "solid")
DISTRACTOR_SHAPES = ("box", "sphere", "cylinder", "cone", "torus", "capsule")
IMAGE_FORMATS = ("jpg", "png")
APPEARANCE_PATTERNS = ("noise", "grain", "stripes")
GROUND_PATTERNS = ("solid", "noise", "checker", "stripes", "grain")
MAX_LIGHTS = 4
MAX_OBJECTS_PER_FRAME = 190
MAX_DISTRACTORS_PER_FRAME = 64
AUTO_WORKERS = "auto"
"""``render_workers: auto``: the GL render job picks its process count from the host (isaac_jobs.render_workers)."""
"""The GL backend writes object ids to an 8-bit integer target: 0 background, then objects, then distractors."""


class SpecError(ValueError):
    """A bad scene-spec key or value; the message names the key and its source."""


FloatRange = tuple[float, float]
IntRange = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class SceneSpec:
    """Validated scene settings; each field is documented in ``default_spec.yaml`` under the same name."""

    frames: int
    width: int
    height: int
    seed: int
    image_format: str
    jpeg_quality: IntRange
    val_fraction: float
    render_workers: int | str
    objects_per_frame: IntRange
    object_size: FloatRange | None
    position_x: FloatRange
    position_y: FloatRange
    position_z: FloatRange
    rotation_roll_deg: FloatRange
    rotation_pitch_deg: FloatRange
    rotation_yaw_deg: FloatRange
    distractors_per_frame: IntRange
    distractor_shapes: tuple[str, ...]
    distractor_size: FloatRange
    camera_distance: FloatRange
    camera_elevation_deg: FloatRange
    camera_azimuth_deg: FloatRange
    camera_fov_deg: FloatRange
    camera_roll_deg: FloatRange
    camera_target_jitter: float
    light_count: IntRange
    light_intensity: FloatRange
    light_elevation_deg: FloatRange
    light_azimuth_deg: FloatRange
    light_color_jitter: float
    ambient_intensity: FloatRange
    backgrounds: tuple[str, ...]
    background_images_dir: str | None
    background_image_probability: float
    object_brightness: FloatRange
    object_saturation: FloatRange
    object_hue_shift_deg: FloatRange
    image_brightness: FloatRange
    image_contrast: FloatRange
    image_saturation: FloatRange
    image_noise: FloatRange
    random_appearance: bool
    appearance_saturation: FloatRange
    appearance_value: FloatRange
    appearance_roughness: FloatRange
    appearance_metallic_probability: float
    appearance_pattern_probability: float
    appearance_patterns: tuple[str, ...]
    ground_plane_probability: float
    ground_height: float
    ground_patterns: tuple[str, ...]
    resting_probability: float
    float_gap: FloatRange
    pbr_shading: bool
    shadows: bool
    shadow_map_size: int
    shadow_softness: FloatRange
    environment_light: bool
    light_temperature: bool
    light_temperature_k: FloatRange
    exposure_ev: FloatRange
    defocus_probability: float
    defocus_px: FloatRange
    motion_blur_probability: float
    motion_blur_px: FloatRange
    min_box_side_px: float
    min_visible_fraction: float
    explicit_keys: frozenset[str] = dataclasses.field(default=frozenset(), compare=False, repr=False)
    """Keys set by a config file or CLI flag (not defaults); batch.yaml render settings never override these."""


def spec_keys() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(SceneSpec) if f.name != "explicit_keys")


# --------------------------------------------------------------------------------------------------------
# Value checkers: each takes (value, where) and returns the normalized value or raises SpecError.
# --------------------------------------------------------------------------------------------------------
Checker = Callable[[Any, str], Any]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int(lo: int, hi: int | None = None) -> Checker:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: expected an integer, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            raise SpecError(f"{where}: {value} is outside [{lo}, {hi if hi is not None else 'inf'}]")
        return value

    return check


def _float(lo: float, hi: float) -> Checker:
    def check(value: Any, where: str) -> float:
        if not _is_number(value):
            raise SpecError(f"{where}: expected a number, got {value!r}")
        if not lo <= value <= hi:
            raise SpecError(f"{where}: {value} is outside [{lo}, {hi}]")
        return float(value)

    return check


def _range(lo: float, hi: float, *, integer: bool = False) -> Checker:
    def check(value: Any, where: str) -> tuple[Any, Any]:
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise SpecError(f"{where}: expected a range [min, max], got {value!r}")
        item = _int(int(lo), int(hi)) if integer else _float(lo, hi)
        low, high = item(value[0], f"{where}[0]"), item(value[1], f"{where}[1]")
        if low > high:
            raise SpecError(f"{where}: min {low} is greater than max {high}")
        return (low, high)

    return check


def _optional(inner: Checker) -> Checker:
    def check(value: Any, where: str) -> Any:
        return None if value is None else inner(value, where)

    return check


def _choice(options: tuple[str, ...]) -> Checker:
    def check(value: Any, where: str) -> str:
        if value not in options:
            raise SpecError(f"{where}: {value!r} is not one of {', '.join(options)}")
        return str(value)

    return check


def _choices(options: tuple[str, ...], *, allow_empty: bool) -> Checker:
    def check(value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list | tuple) or (not value and not allow_empty):
            raise SpecError(f"{where}: expected a {'' if allow_empty else 'non-empty '}list from {', '.join(options)}")
        for index, item in enumerate(value):
            _choice(options)(item, f"{where}[{index}]")
        return tuple(str(v) for v in value)

    return check


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{where}: expected true or false, got {value!r}")
    return value


def _int_or_range(lo: int, hi: int) -> Checker:
    """One integer (a fixed value) or an integer range; normalized to a range."""

    def check(value: Any, where: str) -> tuple[int, int]:
        if isinstance(value, int) and not isinstance(value, bool):
            fixed = _int(lo, hi)(value, where)
            return (fixed, fixed)
        low, high = _range(lo, hi, integer=True)(value, where)
        return (int(low), int(high))

    return check


def _directory(value: Any, where: str) -> str:
    if not isinstance(value, str | Path) or not str(value):
        raise SpecError(f"{where}: expected a folder path, got {value!r}")
    if not Path(value).expanduser().is_dir():
        raise SpecError(f"{where}: folder {value} does not exist")
    return str(Path(value).expanduser())


def _workers(value: Any, where: str) -> int | str:
    if value == AUTO_WORKERS:
        return AUTO_WORKERS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{where}: expected {AUTO_WORKERS!r} or a whole number of processes >= 1, got {value!r}")
    return value


_INF = float("inf")
CHECKS: dict[str, Checker] = {
    "frames": _int(1),
    "width": _int(16, 8192),
    "height": _int(16, 8192),
    "seed": _int(0, 2**63 - 1),
    "image_format": _choice(IMAGE_FORMATS),
    "jpeg_quality": _int_or_range(1, 95),
    "val_fraction": _float(0.0, 0.9),
    "render_workers": _workers,
    "objects_per_frame": _range(1, MAX_OBJECTS_PER_FRAME, integer=True),
    "object_size": _optional(_range(1e-4, 1e4)),
    "position_x": _range(-1e3, 1e3),
    "position_y": _range(-1e3, 1e3),
    "position_z": _range(-1e3, 1e3),
    "rotation_roll_deg": _range(-360, 360),
    "rotation_pitch_deg": _range(-360, 360),
    "rotation_yaw_deg": _range(-360, 360),
    "distractors_per_frame": _range(0, MAX_DISTRACTORS_PER_FRAME, integer=True),
    "distractor_shapes": _choices(DISTRACTOR_SHAPES, allow_empty=False),
    "distractor_size": _range(1e-4, 1e4),
    "camera_distance": _range(1e-3, 1e4),
    "camera_elevation_deg": _range(-89.9, 89.9),
    "camera_azimuth_deg": _range(-360, 360),
    "camera_fov_deg": _range(1, 170),
    "camera_roll_deg": _range(-180, 180),
    "camera_target_jitter": _float(0.0, 1e3),
    "light_count": _range(0, MAX_LIGHTS, integer=True),
    "light_intensity": _range(0, 100),
    "light_elevation_deg": _range(-90, 90),
    "light_azimuth_deg": _range(-360, 360),
    "light_color_jitter": _float(0.0, 1.0),
    "ambient_intensity": _range(0, 10),
    "backgrounds": _choices(PROCEDURAL_BACKGROUNDS, allow_empty=True),
    "background_images_dir": _optional(_directory),
    "background_image_probability": _float(0.0, 1.0),
    "object_brightness": _range(0, 10),
    "object_saturation": _range(0, 10),
    "object_hue_shift_deg": _range(-180, 180),
    "image_brightness": _range(0, 10),
    "image_contrast": _range(0, 10),
    "image_saturation": _range(0, 10),
    "image_noise": _range(0, 1),
    "min_box_side_px": _float(0.0, _INF),
    "min_visible_fraction": _float(0.0, 1.0),
    "random_appearance": _bool,
    "appearance_saturation": _range(0, 1),
    "appearance_value": _range(0, 1),
    "appearance_roughness": _range(0, 1),
    "appearance_metallic_probability": _float(0.0, 1.0),
    "appearance_pattern_probability": _float(0.0, 1.0),
    "appearance_patterns": _choices(APPEARANCE_PATTERNS, allow_empty=False),
    "ground_plane_probability": _float(0.0, 1.0),
    "ground_height": _float(-1e3, 1e3),
    "ground_patterns": _choices(GROUND_PATTERNS, allow_empty=False),
    "resting_probability": _float(0.0, 1.0),
    "float_gap": _range(0, 1e3),
    "pbr_shading": _bool,
    "shadows": _bool,
    "shadow_map_size": _int(64, 8192),
    "shadow_softness": _range(0, 16),
    "environment_light": _bool,
    "light_temperature": _bool,
    "light_temperature_k": _range(1000, 40000),
    "exposure_ev": _range(-10, 10),
    "defocus_probability": _float(0.0, 1.0),
    "defocus_px": _range(0, 50),
    "motion_blur_probability": _float(0.0, 1.0),
    "motion_blur_px": _range(0, 100),
}

REALISM_OFF: dict[str, Any] = {
    "random_appearance": False,
    "ground_plane_probability": 0.0,
    "pbr_shading": False,
    "shadows": False,
    "environment_light": False,
    "light_temperature": False,
    "exposure_ev": [0.0, 0.0],
    "defocus_probability": 0.0,
    "motion_blur_probability": 0.0,
    "jpeg_quality": 92,
}
"""Overrides that turn every realism setting of issue 10 off: frames drawn and shaded as before them (the render
bench's baseline; also a quick way to see what the realism adds)."""


def _read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SpecError(f"{what} {path}: cannot read ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        raise SpecError(f"{what} {path}: not valid YAML ({err})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{what} {path}: expected a mapping of setting: value, got {type(data).__name__}")
    return data


def _check_known(mapping: Mapping[str, Any], source: str) -> None:
    known = set(spec_keys())
    for key in mapping:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(f"{source}: unknown scene setting {key!r}{hint}; the settings are in {DEFAULT_SPEC_PATH}")


def _build(values: Mapping[str, Any], sources: Mapping[str, str], explicit: frozenset[str]) -> SceneSpec:
    checked = {key: CHECKS[key](values[key], f"{sources.get(key, 'defaults')}: {key}") for key in spec_keys()}
    spec = SceneSpec(**checked, explicit_keys=explicit)
    if not spec.backgrounds and spec.background_images_dir is None:
        raise SpecError("backgrounds: empty list needs background_images_dir (there would be nothing to draw)")
    return spec


def load_spec(config: Path | None = None, overrides: Mapping[str, Any] | None = None) -> SceneSpec:
    """Defaults (default_spec.yaml) < ``config`` YAML < ``overrides``; raises SpecError naming the bad key."""
    values = _read_yaml_mapping(DEFAULT_SPEC_PATH, "default spec")
    sources: dict[str, str] = {}
    explicit: set[str] = set()
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config is not None:
        layers.append((f"config {config}", _read_yaml_mapping(Path(config), "config")))
    if overrides:
        layers.append(("command-line overrides", {k: v for k, v in overrides.items() if v is not None}))
    for source, layer in layers:
        _check_known(layer, source)
        values.update(layer)
        sources.update(dict.fromkeys(layer, source))
        explicit.update(layer)
    return _build(values, sources, frozenset(explicit))


def apply_batch_overrides(
    spec: SceneSpec, overrides: Mapping[str, Any], source: str = "batch.yaml render"
) -> SceneSpec:
    """Apply a batch's ``render:`` settings, except where a config file or CLI flag set the key explicitly.

    So the order is defaults < batch.yaml < --config < CLI flags.
    """
    if not overrides:
        return spec
    _check_known(overrides, source)
    values = spec_to_dict(spec)
    sources: dict[str, str] = {}
    for key, value in overrides.items():
        if key not in spec.explicit_keys:
            values[key] = value
            sources[key] = source
    return _build(values, sources, spec.explicit_keys)


def spec_to_dict(spec: SceneSpec) -> dict[str, Any]:
    """JSON-able settings (ranges as lists), in declaration order; what metadata and manifests record."""
    out: dict[str, Any] = {}
    for key in spec_keys():
        value = getattr(spec, key)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def spec_from_dict(data: Mapping[str, Any]) -> SceneSpec:
    """Rebuild a spec recorded by ``spec_to_dict`` (every key required; validated again)."""
    _check_known(data, "recorded spec")
    missing = [key for key in spec_keys() if key not in data]
    if missing:
        raise SpecError(f"recorded spec: missing settings {', '.join(missing)}")
    return _build(data, {}, frozenset())
