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

The realism fields (issue 10) follow that rule: each object's and distractor's :class:`MaterialPlan` (its
asset's own colours, its class look, or a random look; needs the assets' :class:`AssetTraits`), each light's
colour temperature, the :class:`GroundPlan` and the resting or floating poses on it (which replace the
objects' rotation and height), and the frame's :class:`RealismPlan` (shading switches, shadow softness,
exposure, blur, JPEG quality). Every value is drawn whether its setting is on or not, so switching one
setting off leaves the others' values as they were.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from isaac_jobs.appearance import AssetTraits, Look, draw_hue, hsv_rgb
from isaac_jobs.spec import PROCEDURAL_BACKGROUNDS, SceneSpec

Vec3 = tuple[float, float, float]
BACKGROUND_IMAGE_EXTENSIONS: Final = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPECULAR_RANGE: Final = (0.0, 0.4)
"""Highlight strength drawn per frame (the GL shader's Blinn-Phong term)."""
METALLIC_RANGE: Final = (0.6, 1.0)
"""Metallic of a random look drawn metallic (``appearance_metallic_probability``)."""
DEFAULT_METALLIC: Final = 0.0
GROUND_HALF_SIZE: Final = 12.0
"""Half the side of the square ground plane, metres (it reaches past the far edge of most views)."""
DISTRACTOR_EXTENTS: Final = {
    "box": (1.0, 0.7, 0.5),
    "sphere": (1.0, 1.0, 1.0),
    "cylinder": (0.6, 0.6, 1.0),
    "cone": (0.8, 0.8, 1.0),
    "torus": (0.94, 0.94, 0.24),
    "capsule": (0.4, 0.4, 1.0),
}
"""Bounding-box size of each distractor shape before scaling (longest side 1): what resting poses rest on."""
STABLE_ROTATIONS: Final = ((0.0, 0.0), (180.0, 0.0), (90.0, 0.0), (-90.0, 0.0), (0.0, 90.0), (0.0, -90.0))
"""(roll, pitch) that put each of the six bounding-box faces down: -z, +z, +y, -y, +x, -x."""


@dataclass(frozen=True)
class CameraPlan:
    eye: Vec3
    target: Vec3
    vertical_fov_deg: float
    roll_deg: float


@dataclass(frozen=True)
class MaterialPlan:
    """A surface: what a labelled object, distractor or the ground plane is drawn with."""

    color: Vec3 | None
    """Base colour; None keeps the asset's own (texture, vertex colours or USD material colour)."""
    roughness: float
    metallic: float
    pattern: str = "none"
    """``none`` or a procedural texture (``spec.APPEARANCE_PATTERNS``; the ground: ``spec.GROUND_PATTERNS``)."""
    pattern_color: Vec3 = (0.0, 0.0, 0.0)
    pattern_frequency: float = 1.0
    """Cycles per object size (objects, distractors) or per metre (the ground)."""
    pattern_angle: float = 0.0
    """Radians: stripes direction, grain rings' axis tilt."""
    pattern_seed: int = 0


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
    material: MaterialPlan | None = None
    """None: drawn as before the realism settings (own colours, shader default shininess)."""


@dataclass(frozen=True)
class DistractorPlan:
    """An unlabelled procedural shape (``spec.DISTRACTOR_SHAPES``) in a flat colour."""

    shape: str
    size: float
    rotation_deg: Vec3
    position: Vec3
    color: Vec3
    material: MaterialPlan | None = None
    """None: the flat ``color``; else this surface (its colour is ``color``)."""


@dataclass(frozen=True)
class LightPlan:
    """A directional light shining from (elevation, azimuth); ``color`` is intensity times tint."""

    elevation_deg: float
    azimuth_deg: float
    color: Vec3
    temperature_k: float | None = None
    """Colour temperature; the light's colour is ``color`` times ``appearance.kelvin_rgb(temperature_k)``."""


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
class GroundPlan:
    """A horizontal support plane at ``height`` (z), centred under the origin; never labelled (id 0)."""

    height: float
    half_size: float
    material: MaterialPlan


@dataclass(frozen=True)
class RealismPlan:
    """Frame-wide settings of the realism pass (issue 10); the default means "as before"."""

    pbr_shading: bool = False
    shadows: bool = False
    shadow_softness: float = 0.0
    """PCF radius in shadow-map texels."""
    environment_light: bool = False
    exposure: float = 1.0
    """Linear exposure multiplier (2^ev)."""
    defocus_px: float = 0.0
    motion_blur_px: float = 0.0
    motion_blur_angle: float = 0.0
    """Radians."""
    jpeg_quality: int | None = None
    """None: the writer's default quality."""


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
    ground: GroundPlan | None = None
    realism: RealismPlan = RealismPlan()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenePlan:
        def vec(value: Sequence[float]) -> Any:
            return tuple(float(v) for v in value)

        def material(value: Mapping[str, Any] | None) -> MaterialPlan | None:
            if value is None:
                return None
            color = value["color"]
            return MaterialPlan(
                **{
                    **value,
                    "color": None if color is None else vec(color),
                    "pattern_color": vec(value["pattern_color"]),
                }
            )

        camera = data["camera"]
        background = dict(data["background"])
        ground = data.get("ground")
        return cls(
            frame_index=int(data["frame_index"]),
            seed=int(data["seed"]),
            camera=CameraPlan(
                vec(camera["eye"]), vec(camera["target"]), camera["vertical_fov_deg"], camera["roll_deg"]
            ),
            objects=tuple(
                ObjectPlan(
                    **{
                        **o,
                        "rotation_deg": vec(o["rotation_deg"]),
                        "position": vec(o["position"]),
                        "material": material(o.get("material")),
                    }
                )
                for o in data["objects"]
            ),
            distractors=tuple(
                DistractorPlan(
                    **{
                        **d,
                        "rotation_deg": vec(d["rotation_deg"]),
                        "position": vec(d["position"]),
                        "color": vec(d["color"]),
                        "material": material(d.get("material")),
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
            ground=None
            if ground is None
            else GroundPlan(ground["height"], ground["half_size"], material(ground["material"])),  # type: ignore[arg-type]
            realism=RealismPlan(**data.get("realism", {})),
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

    def __init__(
        self, spec: SceneSpec, asset_classes: Sequence[int], traits: Sequence[AssetTraits] | None = None
    ) -> None:
        if not asset_classes:
            raise ValueError("the scene sampler needs at least one asset")
        if traits is not None and len(traits) != len(asset_classes):
            raise ValueError(f"{len(traits)} asset traits for {len(asset_classes)} assets")
        self.spec = spec
        self.asset_classes = list(asset_classes)
        # Without traits (a caller that knows nothing of the assets) every asset is a colourless unit cube.
        self.traits = list(traits) if traits is not None else [AssetTraits((1.0, 1.0, 1.0), False)] * len(asset_classes)
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
        # The realism draws (issue 10) come after every earlier draw, so the fields above keep their values.
        objects, distractors, lights, ground, realism = self._realism(rng, objects, distractors, lights)
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
            ground=ground,
            realism=realism,
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

    # ---------------------------------------------------------------------------------------------- realism
    def _realism(
        self,
        rng: np.random.Generator,
        objects: tuple[ObjectPlan, ...],
        distractors: tuple[DistractorPlan, ...],
        lights: tuple[LightPlan, ...],
    ) -> tuple[
        tuple[ObjectPlan, ...], tuple[DistractorPlan, ...], tuple[LightPlan, ...], GroundPlan | None, RealismPlan
    ]:
        spec = self.spec
        # Every value is drawn whether its setting is on or not, so turning one setting off leaves the others'.
        objects = tuple(replace(o, material=self._object_material(rng, o.asset)) for o in objects)
        distractors = tuple(replace(d, material=self._distractor_material(rng, d.color)) for d in distractors)
        temperatures = [_uniform(rng, spec.light_temperature_k) for _ in lights]
        if spec.light_temperature:
            lights = tuple(replace(light, temperature_k=t) for light, t in zip(lights, temperatures, strict=True))
        has_ground = bool(rng.uniform() < spec.ground_plane_probability)
        ground_material = self._ground_material(rng)
        settled_objects = tuple(
            replace(o, **self._settle(rng, self._extents(o.asset), o.size, o.rotation_deg, o.position)) for o in objects
        )
        settled_distractors = tuple(
            replace(d, **self._settle(rng, DISTRACTOR_EXTENTS[d.shape], d.size, d.rotation_deg, d.position))
            for d in distractors
        )
        ground = None
        if has_ground:
            ground = GroundPlan(spec.ground_height, GROUND_HALF_SIZE, ground_material)
            objects, distractors = settled_objects, settled_distractors
        softness = _uniform(rng, spec.shadow_softness)
        exposure = 2.0 ** _uniform(rng, spec.exposure_ev)
        defocus = _uniform(rng, spec.defocus_px) if rng.uniform() < spec.defocus_probability else 0.0
        motion = _uniform(rng, spec.motion_blur_px) if rng.uniform() < spec.motion_blur_probability else 0.0
        motion_angle = float(rng.uniform(0, math.pi))
        realism = RealismPlan(
            pbr_shading=spec.pbr_shading,
            shadows=spec.shadows and bool(lights),
            shadow_softness=softness,
            environment_light=spec.environment_light,
            exposure=exposure,
            defocus_px=defocus,
            motion_blur_px=motion,
            motion_blur_angle=motion_angle,
            jpeg_quality=_integer(rng, spec.jpeg_quality),
        )
        return objects, distractors, lights, ground, realism

    def _extents(self, asset: int) -> tuple[float, float, float]:
        return self.traits[asset].extents

    def _object_material(self, rng: np.random.Generator, asset: int) -> MaterialPlan | None:
        """The asset's own colours, its class look's ranges, or a random look (with a pattern on a share)."""
        spec = self.spec
        traits = self.traits[asset]
        look = traits.look
        own = look if look is not None else Look()  # a missing range of the look: the spec's
        hue = draw_hue(rng, own.hue or (0.0, 360.0))
        saturation = _uniform(rng, own.saturation or spec.appearance_saturation)
        value = _uniform(rng, own.value or spec.appearance_value)
        roughness = _uniform(rng, own.roughness or spec.appearance_roughness)
        metallic_drawn = _uniform(rng, METALLIC_RANGE) if rng.uniform() < spec.appearance_metallic_probability else 0.0
        metallic = _uniform(rng, own.metallic) if own.metallic else metallic_drawn
        pattern = self._pattern(rng, hue, saturation, value)
        if traits.own_appearance or not (spec.random_appearance or look is not None):
            if not spec.pbr_shading:
                return None
            own_metallic = _uniform(rng, own.metallic) if own.metallic else DEFAULT_METALLIC
            return MaterialPlan(None, roughness, own_metallic)
        if look is not None:
            pattern = {}  # the user said what the class looks like: no made-up texture on it
        return MaterialPlan(hsv_rgb(hue, saturation, value), roughness, metallic, **pattern)

    def _pattern(self, rng: np.random.Generator, hue: float, saturation: float, value: float) -> dict[str, Any]:
        spec = self.spec
        chosen = spec.appearance_patterns[int(rng.integers(len(spec.appearance_patterns)))]
        second = hsv_rgb(
            hue + float(rng.uniform(-40, 40)),
            float(np.clip(saturation * rng.uniform(0.5, 1.3), 0, 1)),
            value * float(rng.uniform(0.3, 0.8)),
        )
        fields = {
            "pattern": chosen,
            "pattern_color": second,
            "pattern_frequency": float(rng.uniform(2.0, 10.0)),
            "pattern_angle": float(rng.uniform(0, math.pi)),
            "pattern_seed": int(rng.integers(0, 2**31)),
        }
        return fields if rng.uniform() < spec.appearance_pattern_probability else {}

    def _distractor_material(self, rng: np.random.Generator, color: Vec3) -> MaterialPlan | None:
        spec = self.spec
        roughness = _uniform(rng, spec.appearance_roughness)
        metallic = _uniform(rng, METALLIC_RANGE) if rng.uniform() < spec.appearance_metallic_probability else 0.0
        hue, saturation, value = _hsv(color)
        pattern = self._pattern(rng, hue, saturation, value)
        if spec.random_appearance:
            return MaterialPlan(color, roughness, metallic, **pattern)
        return MaterialPlan(color, roughness, DEFAULT_METALLIC) if spec.pbr_shading else None

    def _ground_material(self, rng: np.random.Generator) -> MaterialPlan:
        spec = self.spec
        hue = float(rng.uniform(0, 360))
        saturation, value = float(rng.uniform(0.0, 0.6)), float(rng.uniform(0.2, 0.9))
        pattern = spec.ground_patterns[int(rng.integers(len(spec.ground_patterns)))]
        second = hsv_rgb(hue + float(rng.uniform(-60, 60)), float(rng.uniform(0.0, 0.6)), float(rng.uniform(0.1, 0.9)))
        return MaterialPlan(
            color=hsv_rgb(hue, saturation, value),
            roughness=float(rng.uniform(0.4, 1.0)),
            metallic=0.0,
            pattern=pattern,
            pattern_color=second,
            pattern_frequency=float(rng.uniform(0.5, 8.0)),
            pattern_angle=float(rng.uniform(0, math.pi)),
            pattern_seed=int(rng.integers(0, 2**31)),
        )

    def _settle(
        self,
        rng: np.random.Generator,
        extents: Sequence[float],
        size: float | None,
        rotation_deg: Vec3,
        position: Vec3,
    ) -> dict[str, Any]:
        """A pose on the ground: resting on one of its bounding-box faces (a larger face more often), turned
        about the up axis, lowest point on the plane; or floating, its lowest point ``float_gap`` above it."""
        spec = self.spec
        e = np.maximum(np.asarray(extents, dtype=np.float64), 1e-9)
        scale = 1.0 if size is None else size / float(e.max())
        areas = np.array([e[0] * e[1]] * 2 + [e[0] * e[2]] * 2 + [e[1] * e[2]] * 2)
        face = int(rng.choice(len(STABLE_ROTATIONS), p=areas / areas.sum()))
        yaw = _uniform(rng, spec.rotation_yaw_deg)
        gap = _uniform(rng, spec.float_gap)
        if rng.uniform() < spec.resting_probability:
            roll, pitch = STABLE_ROTATIONS[face]
            rotation: Vec3 = (roll, pitch, yaw)
            gap = 0.0
        else:
            rotation = rotation_deg
        # Half the height of the turned bounding box: exact for the resting poses (quarter turns), conservative
        # (never below the plane) for free ones.
        half_height = 0.5 * scale * float(np.abs(rotation_matrix(rotation)[2]) @ e)
        height = spec.ground_height + half_height + gap
        return {"rotation_deg": rotation, "position": (position[0], position[1], height)}


def _hsv(color: Sequence[float]) -> tuple[float, float, float]:
    import colorsys

    h, s, v = colorsys.rgb_to_hsv(*(float(c) for c in color[:3]))
    return h * 360.0, s, v
