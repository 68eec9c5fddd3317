"""Appearance of the objects: per-class looks from batch.yaml, what the scene sampler knows of each asset, colours.

A class look (batch.yaml ``looks:``) says what a class looks like in the world; it is written into the class's
USD material at preparation (``usd_export``: the ranges' centre as the UsdPreviewSurface ``diffuseColor``,
``roughness`` and ``metallic``; a texture image as a ``UsdUVTexture``; the ranges themselves in the material
prim's ``customData`` under :data:`LOOK_CUSTOM_DATA_KEY`) and recorded in the batch plan; the scene sampler then
draws each instance's colour inside the look's ranges. ``looks`` keys::

    looks:
      mug:                     # a class name
        hue: [340, 20]         # degrees; a range may wrap through 0 (red)
        saturation: [0.5, 0.9] # HSV saturation 0-1
        value: [0.35, 0.9]     # HSV value 0-1
        roughness: [0.2, 0.5]  # GGX roughness 0-1
        metallic: [0, 0]       # 0 dielectric .. 1 metal
        texture: textures/mug.png   # an image relative to the batch folder (meshes without UVs get a box projection)

Every key is optional; a missing range falls back to the scene spec's random-appearance range. A look applies to
the class's meshes that have no appearance of their own: meshes with a texture or vertex colours keep them.
"""

from __future__ import annotations

import colorsys
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from sim2cloud import contract

if TYPE_CHECKING:
    from isaac_jobs.mesh import Mesh

LOOK_KEYS: Final = ("hue", "saturation", "value", "roughness", "metallic", "texture")
LOOK_RANGE_LIMITS: Final = {"hue": (0.0, 360.0), "saturation": (0.0, 1.0), "value": (0.0, 1.0),
                            "roughness": (0.0, 1.0), "metallic": (0.0, 1.0)}  # fmt: skip
LOOK_TEXTURE_EXTENSIONS: Final = tuple(e for e in contract.MESH_COMPANION_EXTENSIONS if e in (".png", ".jpg", ".jpeg"))
"""Image files a batch may carry beside its meshes (the render launcher accepts them as companions)."""
LOOK_CUSTOM_DATA_KEY: Final = "sim2cloud:look"
"""customData key of the USD material prim holding the class look's ranges (JSON)."""
MESH_LOOK_KEY: Final = "look"
"""``Mesh.extra`` key under which a prepared asset's class look travels to the GL backend (JSON)."""

FloatRange = tuple[float, float]


class LookError(ValueError):
    """A bad ``looks`` entry; the message names the class and key."""


@dataclass(frozen=True)
class Look:
    """A class's look: HSV colour ranges, roughness and metallic ranges, optional texture image."""

    hue: FloatRange | None = None
    saturation: FloatRange | None = None
    value: FloatRange | None = None
    roughness: FloatRange | None = None
    metallic: FloatRange | None = None
    texture: str | None = None
    """The image, relative to the batch folder."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Look:
        def rng(key: str) -> FloatRange | None:
            value = data.get(key)
            return None if value is None else (float(value[0]), float(value[1]))

        texture = data.get("texture")
        return cls(
            rng("hue"), rng("saturation"), rng("value"), rng("roughness"), rng("metallic"), texture and str(texture)
        )

    @classmethod
    def from_json(cls, text: str) -> Look:
        return cls.from_mapping(json.loads(text))

    def center_color(self) -> tuple[float, float, float]:
        """The colour at the centre of the ranges (what the USD material's diffuseColor says)."""
        hue = _hue_center(self.hue) if self.hue is not None else 0.0
        saturation = sum(self.saturation) / 2 if self.saturation is not None else 0.0
        value = sum(self.value) / 2 if self.value is not None else 0.7
        return hsv_rgb(hue, saturation, value)


def parse_looks(raw: Any, class_names: Sequence[str] | None, batch_dir: Path, where: str) -> dict[str, Look]:
    """batch.yaml ``looks`` checked key by key; raises LookError naming the class and key."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise LookError(f"{where}: looks must map class names to looks")
    looks: dict[str, Look] = {}
    for name, entry in raw.items():
        here = f"{where}: looks[{name!r}]"
        if class_names is not None and str(name) not in class_names:
            raise LookError(f"{here}: no class of that name (classes: {', '.join(class_names)})")
        if not isinstance(entry, Mapping):
            raise LookError(f"{here}: expected a mapping of {', '.join(LOOK_KEYS)}")
        for key, value in entry.items():
            if key not in LOOK_KEYS:
                raise LookError(f"{here}: unknown key {key!r}; allowed: {', '.join(LOOK_KEYS)}")
            if key == "texture":
                if not isinstance(value, str) or not (Path(batch_dir) / value).is_file():
                    raise LookError(f"{here}.texture: {value!r} is not an image file under the batch folder")
                if Path(value).suffix.lower() not in LOOK_TEXTURE_EXTENSIONS:
                    allowed = ", ".join(LOOK_TEXTURE_EXTENSIONS)
                    raise LookError(f"{here}.texture: {value!r} must be one of {allowed} (what uploads accept)")
                continue
            lo, hi = LOOK_RANGE_LIMITS[key]
            if (
                not isinstance(value, list | tuple)
                or len(value) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
                or not all(lo <= v <= hi for v in value)
            ):
                raise LookError(f"{here}.{key}: expected a range [min, max] within [{lo:g}, {hi:g}], got {value!r}")
            if key != "hue" and value[0] > value[1]:
                raise LookError(f"{here}.{key}: min {value[0]} is greater than max {value[1]}")
        looks[str(name)] = Look.from_mapping(entry)
    return looks


@dataclass(frozen=True)
class AssetTraits:
    """What the scene sampler knows of an asset besides its class: its size and whether it has a look of its own."""

    extents: tuple[float, float, float]
    """Axis-aligned bounding-box size (x, y, z), the asset's own units (metres)."""
    own_appearance: bool
    """True for meshes with a texture or vertex colours: they keep them (colour jitter only)."""
    look: Look | None = None


def _hue_center(hue: FloatRange) -> float:
    lo, hi = hue
    span = (hi - lo) % 360.0 if hi != lo else 0.0
    return (lo + span / 2) % 360.0


def draw_hue(rng: np.random.Generator, hue: FloatRange) -> float:
    """A hue in [lo, hi] degrees, wrapping through 0 when lo > hi ([340, 20] is the reds)."""
    lo, hi = hue
    span = (hi - lo) % 360.0 if hi != lo else 0.0
    if hue == (0.0, 360.0):
        span = 360.0
    return float((lo + rng.uniform(0.0, span)) % 360.0) if span > 0 else float(lo % 360.0)


def hsv_rgb(hue_deg: float, saturation: float, value: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, saturation, value)
    return (float(r), float(g), float(b))


def kelvin_rgb(kelvin: float) -> tuple[float, float, float]:
    """Tint of a black body at ``kelvin`` (Tanner Helland's fit), scaled so its luminance is 1."""
    t = min(max(kelvin, 1000.0), 40000.0) / 100.0
    red = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    green = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    blue = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    rgb = np.clip(np.array([red, green, blue]) / 255.0, 0.0, 1.0)
    luma = float(rgb @ np.array([0.299, 0.587, 0.114]))
    return tuple(float(c) for c in rgb / max(luma, 1e-6))  # type: ignore[return-value]


def box_projection_uvs(positions: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """UVs for a mesh that has none, so a class texture can be put on it: each vertex projected onto the bounding
    box side its normal faces most (tri-planar box mapping), scaled by the longest side."""
    low, high = positions.min(axis=0), positions.max(axis=0)
    local = (positions - low) / max(float(np.max(high - low)), 1e-9)
    axis = np.argmax(np.abs(normals), axis=1)
    uvs = np.where(
        (axis == 0)[:, None], local[:, [1, 2]], np.where((axis == 1)[:, None], local[:, [0, 2]], local[:, [0, 1]])
    )
    return np.ascontiguousarray(uvs, dtype=np.float32)


def has_own_appearance(mesh: Mesh) -> bool:
    """A texture (with UVs to put it on) or vertex colours: the mesh's own look, kept as it is."""
    return (mesh.texture is not None and mesh.uvs is not None) or mesh.colors is not None


def apply_look(mesh: Mesh, look: Look, batch_dir: Path) -> bool:
    """Give a mesh with no appearance of its own its class look (centre colour; the texture image, put on with a
    box projection when the mesh has no UVs). Returns False, changing nothing, for a mesh with its own look."""
    if has_own_appearance(mesh):
        return False
    mesh.base_color = look.center_color()
    if look.texture is not None:
        from PIL import Image

        with Image.open(Path(batch_dir) / look.texture) as image:
            mesh.texture = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
        if mesh.uvs is None:
            mesh.uvs = box_projection_uvs(mesh.positions, mesh.normals)
        mesh.base_color = (1.0, 1.0, 1.0)
    mesh.extra[MESH_LOOK_KEY] = look.to_json()
    return True


def range_center(bounds: FloatRange | None, default: float) -> float:
    return default if bounds is None else (bounds[0] + bounds[1]) / 2
