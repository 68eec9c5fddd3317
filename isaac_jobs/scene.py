"""The scene sampler: one backend-neutral plan per (seed, frame) that every backend renders as given.

``SceneSampler(spec, asset_classes).plan(frame_index)`` draws, from a generator seeded with
``(spec.seed, frame_index)`` only (never the shard), everything a frame shows: the camera, the labelled objects
(which asset, where, how turned, how large, their colour jitter), the distractors, the lights, the background
and the whole-image jitter. A :class:`ScenePlan` is plain data (frozen dataclasses of floats, ints and
strings; ``to_dict``/``from_dict`` for JSON), so it can be written to a file and handed to another process
(the Isaac Sim script) unchanged.

Conventions every backend follows (so the same plan gives the same picture geometry):

* World: metres, Z-up. An object is placed by its asset's axis-aligned bounds: scale ``s = size /
  longest side`` (1 when ``size`` is None), rotation ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (USD's
  ``rotateXYZ``), and the bounds' centre lands on ``position``: ``x -> R s (x - centre) + position``
  (:func:`model_matrix`).
* Directions from (elevation, azimuth) degrees: :func:`direction` (camera eye offset and light directions).
* The camera looks from ``eye`` at ``target`` with vertical field of view ``vertical_fov_deg`` and ``roll_deg``
  about its viewing axis.

New randomizations (materials, a ground plane, light kinds, camera effects) are added as new fields of the
plan (with defaults that mean "as before"), drawn here AFTER the existing draws so earlier fields keep their
values, and then honoured by each backend (or listed in its docstring as not honoured).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from isaac_jobs.spec import PROCEDURAL_BACKGROUNDS, SceneSpec

Vec3 = tuple[float, float, float]
BACKGROUND_IMAGE_EXTENSIONS: Final = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPECULAR_RANGE: Final = (0.0, 0.4)
"""Highlight strength drawn per frame (the GL shader's Blinn-Phong term)."""


@dataclass(frozen=True)
class CameraPlan:
    eye: Vec3
    target: Vec3
    vertical_fov_deg: float
    roll_deg: float


@dataclass(frozen=True)
class ObjectPlan:
    """A labelled object: one of the batch's assets."""

    asset: int
    """Index into the batch plan's assets."""
    class_id: int
    size: float | None
    """Longest side in metres, None for the asset's own size."""
    rotation_deg: Vec3
    """(roll, pitch, yaw): about X, then Y, then Z."""
    position: Vec3
    """Where the centre of the asset's bounds goes."""
    brightness: float
    saturation: float
    hue_shift_deg: float


@dataclass(frozen=True)
class DistractorPlan:
    """An unlabelled procedural shape (``spec.DISTRACTOR_SHAPES``) in a flat colour."""

    shape: str
    size: float
    rotation_deg: Vec3
    position: Vec3
    color: Vec3


@dataclass(frozen=True)
class LightPlan:
    """A directional light shining from (elevation, azimuth); ``color`` is intensity times tint."""

    elevation_deg: float
    azimuth_deg: float
    color: Vec3


@dataclass(frozen=True)
class BackgroundPlan:
    kind: str
    """A procedural kind (``spec.PROCEDURAL_BACKGROUNDS``) or ``"image"``."""
    fallback_kind: str
    """Drawn instead when ``kind`` is ``"image"`` and the image cannot be read."""
    color_a: Vec3
    color_b: Vec3
    angle: float
    """Radians: gradient/stripes direction and checker rotation."""
    frequency: float
    offset: tuple[float, float]
    image: str | None = None
    """The user background image (``kind == "image"``)."""
    crop: tuple[float, float, float, float] | None = None
    """Image uv = crop[:2] + uv * crop[2:] (a negative width mirrors it)."""


@dataclass(frozen=True)
class ImagePlan:
    """Whole-image jitter, applied in this order: saturation, contrast (around mid-grey), brightness, noise."""

    brightness: float
    contrast: float
    saturation: float
    noise: float
    """Standard deviation of Gaussian sensor noise (image values in [0, 1])."""
    noise_seed: int


@dataclass(frozen=True)
class ScenePlan:
    frame_index: int
    seed: int
    camera: CameraPlan
    objects: tuple[ObjectPlan, ...]
    distractors: tuple[DistractorPlan, ...]
    lights: tuple[LightPlan, ...]
    ambient: float
    specular: float
    background: BackgroundPlan
    image: ImagePlan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenePlan:
        def vec(value: Sequence[float]) -> Any:
            return tuple(float(v) for v in value)

        camera = data["camera"]
        background = dict(data["background"])
        return cls(
            frame_index=int(data["frame_index"]),
            seed=int(data["seed"]),
            camera=CameraPlan(
                vec(camera["eye"]), vec(camera["target"]), camera["vertical_fov_deg"], camera["roll_deg"]
            ),
            objects=tuple(
                ObjectPlan(**{**o, "rotation_deg": vec(o["rotation_deg"]), "position": vec(o["position"])})
                for o in data["objects"]
            ),
            distractors=tuple(
                DistractorPlan(
                    **{
                        **d,
                        "rotation_deg": vec(d["rotation_deg"]),
                        "position": vec(d["position"]),
                        "color": vec(d["color"]),
                    }
                )
                for d in data["distractors"]
            ),
            lights=tuple(LightPlan(**{**light, "color": vec(light["color"])}) for light in data["lights"]),
            ambient=data["ambient"],
            specular=data["specular"],
            background=BackgroundPlan(
                **{
                    **background,
                    "color_a": vec(background["color_a"]),
                    "color_b": vec(background["color_b"]),
                    "offset": vec(background["offset"]),
                    "crop": None if background.get("crop") is None else vec(background["crop"]),
                }
            ),
            image=ImagePlan(**data["image"]),
        )


# --------------------------------------------------------------------------------------------------------
# Geometry every backend shares
# --------------------------------------------------------------------------------------------------------
def direction(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """Unit vector from the origin towards (elevation, azimuth): Z-up, azimuth from +X towards +Y."""
    elevation, azimuth = math.radians(elevation_deg), math.radians(azimuth_deg)
    return np.array(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    )


def rotation_matrix(rotation_deg: Sequence[float]) -> np.ndarray:
    """``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` for (roll, pitch, yaw) degrees (USD ``xformOp:rotateXYZ``)."""
    roll, pitch, yaw = (math.radians(a) for a in rotation_deg)
    cx, sx = math.cos(roll), math.sin(roll)
    cy, sy = math.cos(pitch), math.sin(pitch)
    cz, sz = math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=np.float64)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=np.float64)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=np.float64)
    return rz @ ry @ rx


def placement(
    size: float | None,
    rotation_deg: Sequence[float],
    position: Sequence[float],
    center: Sequence[float] | np.ndarray,
    longest: float,
) -> tuple[float, np.ndarray]:
    """(uniform scale, translation) that put an asset with these bounds where the plan says."""
    scale = 1.0 if size is None else size / max(longest, 1e-9)
    translation = np.asarray(position, dtype=np.float64) - rotation_matrix(rotation_deg) @ (
        scale * np.asarray(center, dtype=np.float64)
    )
    return scale, translation


def model_matrix(
    size: float | None,
    rotation_deg: Sequence[float],
    position: Sequence[float],
    center: Sequence[float] | np.ndarray,
    longest: float,
) -> np.ndarray:
    """The 4x4 object-to-world matrix T @ R @ S of :func:`placement` (column vectors)."""
    scale, translation = placement(size, rotation_deg, position, center, longest)
    model = np.eye(4)
    model[:3, :3] = rotation_matrix(rotation_deg) * scale
    model[:3, 3] = translation
    return model


def list_background_images(spec: SceneSpec) -> list[Path]:
    """The user's background images (``background_images_dir``, recursively, sorted)."""
    folder = spec.background_images_dir
    if folder is None:
        return []
    images = sorted(
        p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in BACKGROUND_IMAGE_EXTENSIONS
    )
    if not images and not spec.backgrounds:
        raise ValueError(f"background_images_dir {folder}: no images ({', '.join(BACKGROUND_IMAGE_EXTENSIONS)})")
    return images


# --------------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------------
def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def _integer(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _vec(values: Sequence[float] | np.ndarray) -> Vec3:
    return (float(values[0]), float(values[1]), float(values[2]))


class SceneSampler:
    """Draws the :class:`ScenePlan` of any frame of ``spec``; asset ``i`` of the batch has ``asset_classes[i]``.

    Classes are drawn first (uniformly among the classes that have an asset), then one of the class's assets,
    so a class with many files is not over-represented.
    """

    def __init__(self, spec: SceneSpec, asset_classes: Sequence[int]) -> None:
        if not asset_classes:
            raise ValueError("the scene sampler needs at least one asset")
        self.spec = spec
        self.asset_classes = list(asset_classes)
        classes = sorted(set(self.asset_classes))
        self._by_class = {c: [i for i, k in enumerate(self.asset_classes) if k == c] for c in classes}
        self._classes = classes
        self.background_images = list_background_images(spec)

    def plan(self, frame_index: int) -> ScenePlan:
        spec = self.spec
        rng = np.random.default_rng([spec.seed, frame_index])
        camera = self._camera(rng)
        objects = self._objects(rng)
        distractors = self._distractors(rng)
        lights = tuple(self._light(rng) for _ in range(_integer(rng, spec.light_count)))
        ambient = _uniform(rng, spec.ambient_intensity)
        specular = float(rng.uniform(*SPECULAR_RANGE))
        image = ImagePlan(
            brightness=_uniform(rng, spec.image_brightness),
            contrast=_uniform(rng, spec.image_contrast),
            saturation=_uniform(rng, spec.image_saturation),
            noise=_uniform(rng, spec.image_noise),
            noise_seed=int(rng.integers(0, 2**32)),
        )
        background = self._background(rng)
        return ScenePlan(
            frame_index=frame_index,
            seed=spec.seed,
            camera=camera,
            objects=objects,
            distractors=distractors,
            lights=lights,
            ambient=ambient,
            specular=specular,
            background=background,
            image=image,
        )

    def _camera(self, rng: np.random.Generator) -> CameraPlan:
        spec = self.spec
        distance = _uniform(rng, spec.camera_distance)
        elevation = _uniform(rng, spec.camera_elevation_deg)
        azimuth = _uniform(rng, spec.camera_azimuth_deg)
        fov = _uniform(rng, spec.camera_fov_deg)
        roll = _uniform(rng, spec.camera_roll_deg)
        target = rng.uniform(-spec.camera_target_jitter, spec.camera_target_jitter, 3)
        eye = target + distance * direction(elevation, azimuth)
        return CameraPlan(_vec(eye), _vec(target), fov, roll)

    def _pose(self, rng: np.random.Generator, size: tuple[float, float] | None) -> tuple[float | None, Vec3, Vec3]:
        spec = self.spec
        drawn = None if size is None else _uniform(rng, size)
        rotation = (
            _uniform(rng, spec.rotation_roll_deg),
            _uniform(rng, spec.rotation_pitch_deg),
            _uniform(rng, spec.rotation_yaw_deg),
        )
        position = (_uniform(rng, spec.position_x), _uniform(rng, spec.position_y), _uniform(rng, spec.position_z))
        return drawn, rotation, position

    def _objects(self, rng: np.random.Generator) -> tuple[ObjectPlan, ...]:
        spec = self.spec
        objects = []
        for _ in range(_integer(rng, spec.objects_per_frame)):
            class_id = self._classes[int(rng.integers(len(self._classes)))]
            members = self._by_class[class_id]
            asset = members[int(rng.integers(len(members)))]
            size, rotation, position = self._pose(rng, spec.object_size)
            objects.append(
                ObjectPlan(
                    asset=asset,
                    class_id=class_id,
                    size=size,
                    rotation_deg=rotation,
                    position=position,
                    brightness=_uniform(rng, spec.object_brightness),
                    saturation=_uniform(rng, spec.object_saturation),
                    hue_shift_deg=_uniform(rng, spec.object_hue_shift_deg),
                )
            )
        return tuple(objects)

    def _distractors(self, rng: np.random.Generator) -> tuple[DistractorPlan, ...]:
        spec = self.spec
        distractors = []
        for _ in range(_integer(rng, spec.distractors_per_frame)):
            shape = spec.distractor_shapes[int(rng.integers(len(spec.distractor_shapes)))]
            size, rotation, position = self._pose(rng, spec.distractor_size)
            assert size is not None
            color = _vec(rng.uniform(0.05, 0.95, 3))
            distractors.append(DistractorPlan(shape, size, rotation, position, color))
        return tuple(distractors)

    def _light(self, rng: np.random.Generator) -> LightPlan:
        spec = self.spec
        elevation = _uniform(rng, spec.light_elevation_deg)
        azimuth = _uniform(rng, spec.light_azimuth_deg)
        tint = 1 + rng.uniform(-spec.light_color_jitter, spec.light_color_jitter, 3)
        return LightPlan(elevation, azimuth, _vec(_uniform(rng, spec.light_intensity) * tint))

    def _background(self, rng: np.random.Generator) -> BackgroundPlan:
        spec = self.spec
        choices = spec.backgrounds or PROCEDURAL_BACKGROUNDS
        fallback = choices[int(rng.integers(len(choices)))]
        use_image = bool(self.background_images) and (
            not spec.backgrounds or rng.uniform() < spec.background_image_probability
        )
        image = crop = None
        if use_image:
            image = str(self.background_images[int(rng.integers(len(self.background_images)))])
            # A random crop covering at least half of each side, mirrored half the time.
            w, h = float(rng.uniform(0.5, 1.0)), float(rng.uniform(0.5, 1.0))
            x, y = float(rng.uniform(0, 1 - w)), float(rng.uniform(0, 1 - h))
            crop = (x + w, y, -w, h) if rng.uniform() < 0.5 else (x, y, w, h)
        return BackgroundPlan(
            kind="image" if use_image else fallback,
            fallback_kind=fallback,
            color_a=_vec(rng.uniform(0, 1, 3)),
            color_b=_vec(rng.uniform(0, 1, 3)),
            angle=float(rng.uniform(0, 2 * math.pi)),
            frequency=float(rng.uniform(2, 24)),
            offset=(float(rng.uniform(0, 100)), float(rng.uniform(0, 100))),
            image=image,
            crop=crop,
        )
