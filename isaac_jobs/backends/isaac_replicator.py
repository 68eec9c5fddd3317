"""Backend ``isaac``: NVIDIA Isaac Sim Replicator turns a render request (USD assets + scene plans) into frames.

Run inside the Isaac Sim image (``containers/isaac-sim``) by :mod:`isaac_jobs.shards`, never by a user::

    /isaac-sim/python.sh -m isaac_jobs.backends.isaac_replicator --request REQUEST.json --out DIR

The request (:class:`RenderRequest`, written by :func:`write_request`) holds the resolution, the prepared
batch's USD assets (path and bounds) and one :class:`isaac_jobs.scene.ScenePlan` per frame of the shard, all
drawn by the shared scene sampler outside Isaac. This script does nothing else than render them: it reads
the request (bad input fails before Isaac's long start), creates ``SimulationApp({"headless": True})`` and only
then imports anything from ``omni``/``pxr``/``carb`` (Isaac's rule), maps the plans onto a Replicator graph
(:func:`replicator_schedule`, pure and unit-tested), and steps it once per frame with BasicWriter (``rgb``,
``bounding_box_2d_tight``) writing into ``--out/basicwriter`` plus ``--out/renderer.json``. The
caller converts that output into the shard (:func:`isaac_jobs.basicwriter.convert_basicwriter_report`, with
:func:`jitter_image` for each plan's image jitter) and commits it: shard writing lives in one place.

This module imports nothing from Isaac at module level, so it is linted, type-checked and its pure parts
tested on machines without Isaac Sim.

How a plan maps onto Replicator, and what this backend does not honour:

* Camera: per-frame eye, look-at and focal length (:func:`focal_length_for_fov` for the plan's vertical FOV)
  as ``rep.distribution.sequence`` values. ``roll_deg`` is not applied: Replicator's ``look_at`` keeps the
  world up axis.
* Objects: each asset is referenced as many times as the most copies of it any frame of the shard shows
  (``rep.create.from_usd``, class label inside the asset). Per frame every copy gets visibility, translation,
  ``rotateXYZ`` (roll, pitch, yaw) and uniform scale from the plan, computed with the asset's bounds exactly
  like the GL backend's model matrix (:func:`isaac_jobs.scene.placement`): same poses, same sizes.
  Per-object colour jitter (brightness, saturation, hue) is not applied: the assets keep their own USD
  materials (replacing them would lose textures).
* Distractors: Replicator primitives without labels (``capsule`` becomes a cylinder, ``box`` a cube),
  sized by the plan's ``size`` (Replicator's longest-side ``size``), placed and turned like objects, with
  the plan's flat colour.
* Lights: as many distant lights as the most any frame has; per frame visibility, rotation (90 - elevation
  about X, then azimuth + 90 about Z: a distant light shines down its -Z), intensity
  ``max(color) x`` :data:`DISTANT_LIGHT_UNIT` and colour ``color / max(color)``. The ambient term drives a
  dome light (x :data:`DOME_LIGHT_UNIT`); the specular strength is not applied (RTX materials decide).
  Path-traced shading, shadows and reflections have no GL equivalent.
* Background: the plan's background (procedural kinds drawn by :func:`background_image` with the GL
  shader's formulas, or the user image cropped as planned) becomes the dome light's texture for that frame;
  a dome wraps it around the scene (lat-long), so it is seen warped and partly, not screen-filling as in GL.
* Image jitter: applied to the captured RGB by :func:`jitter_image`, the GL shader's formulas in numpy
  (saturation, contrast, brightness, then the same per-pixel hashed Gaussian noise).
* Frames: ``rep.trigger.on_frame(max_execs=frames)`` holds the per-frame sequences and the script steps
  ``rep.orchestrator.step(rt_subframes=...)`` exactly once per plan, then waits for the writer
  (``captureOnPlay`` off, the Isaac Sim 4.5+ pattern). BasicWriter frame ``n`` is the request's plan ``n``.
* Boxes: BasicWriter's tight boxes cover visible pixels, like GL's id-target boxes; the drop rule uses
  ``1 - occlusionRatio`` as visible fraction (see :mod:`isaac_jobs.basicwriter`).

The realism fields of the plan (issue 10), mirrored where Replicator can express them:

* Random looks of colourless assets and class looks: the planned colour per frame through
  ``rep.randomizer.color`` on the copies of assets with no colour of their own (:attr:`ObjectSlot.recolor`);
  assets with a texture or vertex colours keep their USD material. Not mirrored: the per-instance roughness,
  metallic and procedural patterns (noise, grain, stripes) of random looks, and patterns on distractors
  (Replicator's colour randomizer binds a plain material); a class look's roughness and metallic do reach RTX,
  through the asset's own UsdPreviewSurface, where preparation wrote them.
* Ground plane: ``rep.create.plane`` (no label) per frame shown or hidden, at the planned height and size, in
  the planned base colour. Not mirrored: its procedural pattern and roughness.
* Resting and floating poses: they are plain positions and rotations in the plan, mirrored exactly.
* Shadows, GGX/metallic shading and environment light: RTX renders them physically (shadows of every light,
  not only the key light; the dome light carries the background as image-based light), so the plan's
  ``realism.pbr_shading``, ``shadows``, ``shadow_softness`` and ``environment_light`` switches are not
  applied (there is no way to turn RTX shadows off per frame here).
* Light colour temperature: ``inputs:enableColorTemperature`` and ``inputs:colorTemperature`` of each distant
  light per frame (RTX's black-body tint, not :func:`isaac_jobs.appearance.kelvin_rgb`'s fit: close, not equal).
* Exposure, defocus and motion blur: applied to the captured RGB by :func:`finish_frame` with the GL
  backend's formulas (:mod:`isaac_jobs.camera_effects`); boxes stay those of the sharp render in both.
* JPEG quality per frame: the shard writer's, from the plan, as with GL.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from isaac_jobs.camera_effects import apply_camera_effects
from isaac_jobs.scene import BackgroundPlan, ImagePlan, ScenePlan, placement

log = logging.getLogger(__name__)

ISAAC_PYTHON: Final = "/isaac-sim/python.sh"
"""Isaac Sim's Python launcher inside the official image."""
MODULE: Final = "isaac_jobs.backends.isaac_replicator"
DISTANT_LIGHT_UNIT: Final = 3000.0
"""Replicator distant-light intensity for plan intensity 1.0 (Replicator's own examples light with 1000-3000)."""
DOME_LIGHT_UNIT: Final = 1000.0
"""Dome-light intensity for ambient intensity 1.0."""
HORIZONTAL_APERTURE_MM: Final = 20.955
"""USD's default camera horizontal aperture; the focal length is derived for it."""
RT_SUBFRAMES: Final = 4
"""Subframes rendered per captured frame so newly randomized poses/textures settle (no ghosting)."""
REPLICATOR_SHAPES: Final = {
    "box": "cube",
    "sphere": "sphere",
    "cylinder": "cylinder",
    "cone": "cone",
    "torus": "torus",
    "capsule": "cylinder",
}
"""Our distractor shapes -> ``rep.create`` functions (Replicator has no capsule)."""
DOME_TEXTURE_SIZE: Final = (1024, 512)
"""Lat-long dome texture drawn per frame from the plan's background."""
RENDERER_INFO_NAME: Final = "renderer.json"
"""Written by the script into ``--out``: what rendered the frames (Kit and Replicator versions)."""
BASICWRITER_DIR: Final = "basicwriter"
"""BasicWriter's output folder inside ``--out``."""
DOME_TEXTURE_DIR: Final = "dome"
"""The per-frame dome textures inside ``--out``."""
REQUEST_FORMAT: Final = 1

Vec3 = tuple[float, float, float]


# --------------------------------------------------------------------------------------
# The request (written outside Isaac, read by the script)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestAsset:
    path: str
    """The USD asset file."""
    center: Vec3
    """Centre of its bounds (metres, Z-up)."""
    longest_side: float


@dataclass(frozen=True)
class RenderRequest:
    resolution: tuple[int, int]
    """(width, height)."""
    assets: tuple[RequestAsset, ...]
    plans: tuple[ScenePlan, ...]
    rt_subframes: int = RT_SUBFRAMES

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REQUEST_FORMAT,
            "resolution": list(self.resolution),
            "assets": [{"path": a.path, "center": list(a.center), "longest_side": a.longest_side} for a in self.assets],
            "plans": [plan.to_dict() for plan in self.plans],
            "rt_subframes": self.rt_subframes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RenderRequest:
        if data.get("format") != REQUEST_FORMAT:
            raise ValueError(f"render request format {data.get('format')!r}, expected {REQUEST_FORMAT}")
        width, height = (int(v) for v in data["resolution"])
        return cls(
            resolution=(width, height),
            assets=tuple(
                RequestAsset(str(a["path"]), tuple(float(c) for c in a["center"]), float(a["longest_side"]))  # type: ignore[arg-type]
                for a in data["assets"]
            ),
            plans=tuple(ScenePlan.from_dict(p) for p in data["plans"]),
            rt_subframes=int(data.get("rt_subframes", RT_SUBFRAMES)),
        )


def write_request(path: Path, request: RenderRequest) -> Path:
    Path(path).write_text(json.dumps(request.to_dict()), encoding="utf-8")
    return Path(path)


def read_request(path: Path) -> RenderRequest:
    return RenderRequest.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


# --------------------------------------------------------------------------------------
# Arguments (parsed before Isaac starts)
# --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{ISAAC_PYTHON} -m {MODULE}",
        description="Render a request's scene plans with Isaac Sim Replicator into BasicWriter output.",
    )
    parser.add_argument("--request", type=Path, required=True, help="render request JSON (assets + scene plans)")
    parser.add_argument("--out", type=Path, required=True, help="work folder: basicwriter/, dome/, renderer.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check the arguments; errors exit with status 2 naming the bad argument."""
    parser = build_parser()
    # Kit appends its own flags when it relaunches; only ours are read.
    args, _unknown = parser.parse_known_args(argv)
    if not args.request.is_file():
        parser.error(f"--request {args.request}: no such file")
    return args


def command(request: Path, out_dir: Path, *, python: str = ISAAC_PYTHON, progress: bool = True) -> list[str]:
    """The argv that runs this script on a request (for a caller outside Isaac's Python)."""
    argv = [python, "-m", MODULE, "--request", str(request), "--out", str(out_dir)]
    return argv if progress else [*argv, "--no-progress"]


# --------------------------------------------------------------------------------------
# Plans -> Replicator parameters (pure)
# --------------------------------------------------------------------------------------
def focal_length_for_fov(
    vertical_fov_deg: float, width: int, height: int, horizontal_aperture_mm: float = HORIZONTAL_APERTURE_MM
) -> float:
    """USD focal length (mm) whose vertical field of view is ``vertical_fov_deg`` for a width x height image.

    With square pixels the vertical aperture is ``horizontal_aperture * height / width``.
    """
    if not 0 < vertical_fov_deg < 180:
        raise ValueError(f"vertical FOV {vertical_fov_deg} must be in (0, 180) degrees")
    vertical_aperture = horizontal_aperture_mm * height / width
    return vertical_aperture / (2.0 * math.tan(math.radians(vertical_fov_deg) / 2.0))


@dataclass(frozen=True)
class SlotFrames:
    """One prim of the Replicator scene and its value in every frame (hidden frames keep a neutral pose)."""

    visible: tuple[bool, ...]
    position: tuple[Vec3, ...]
    """Translation (xformOp:translate)."""
    rotation: tuple[Vec3, ...]
    """rotateXYZ degrees: (roll, pitch, yaw) for objects and distractors; see the light mapping for lights."""
    scale: tuple[float, ...]
    """Uniform scale (objects), or longest side in metres (distractors: Replicator's ``size``)."""
    color: tuple[Vec3, ...] = ()
    """Distractor colour / light colour per frame (empty for objects)."""
    intensity: tuple[float, ...] = ()
    """Light intensity per frame (lights only)."""


@dataclass(frozen=True)
class ObjectSlot:
    asset: int
    frames: SlotFrames
    recolor: bool = False
    """The asset has no colour of its own: ``frames.color`` is its planned look per frame
    (``rep.randomizer.color``); otherwise the asset keeps its USD material."""


@dataclass(frozen=True)
class GroundFrames:
    """The support plane per frame: shown or not, its height, half side and colour."""

    visible: tuple[bool, ...]
    height: tuple[float, ...]
    half_size: tuple[float, ...]
    color: tuple[Vec3, ...]


@dataclass(frozen=True)
class DistractorSlot:
    shape: str
    """``rep.create`` function name (REPLICATOR_SHAPES)."""
    frames: SlotFrames


@dataclass(frozen=True)
class ReplicatorSchedule:
    """Everything the Replicator graph needs, per frame, from the plans (no Isaac types)."""

    resolution: tuple[int, int]
    frame_indices: tuple[int, ...]
    """Dataset frame index of BasicWriter frame n."""
    camera_eye: tuple[Vec3, ...]
    camera_target: tuple[Vec3, ...]
    focal_length_mm: tuple[float, ...]
    objects: tuple[ObjectSlot, ...]
    distractors: tuple[DistractorSlot, ...]
    lights: tuple[SlotFrames, ...]
    light_temperature_k: tuple[tuple[float | None, ...], ...]
    """Per light slot, per frame: colour temperature (None: off, the light's colour only)."""
    ground: GroundFrames
    dome_intensity: tuple[float, ...]
    backgrounds: tuple[BackgroundPlan, ...]
    rt_subframes: int

    @property
    def frames(self) -> int:
        return len(self.frame_indices)


_HIDDEN: Final = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))


def _slot_frames(per_frame: list[list[tuple[Any, ...]]], slots: int, frames: int) -> list[SlotFrames]:
    """Spread each frame's items (position, rotation, scale, colour, intensity) over ``slots`` prims."""
    result = []
    for slot in range(slots):
        visible, position, rotation, scale, color, intensity = [], [], [], [], [], []
        for frame in range(frames):
            items = per_frame[frame]
            shown = slot < len(items)
            item = items[slot] if shown else (*_HIDDEN, 1.0, (0.0, 0.0, 0.0), 0.0)
            visible.append(shown)
            position.append(item[0])
            rotation.append(item[1])
            scale.append(item[2])
            color.append(item[3])
            intensity.append(item[4])
        result.append(
            SlotFrames(tuple(visible), tuple(position), tuple(rotation), tuple(scale), tuple(color), tuple(intensity))
        )
    return result


def _vec(values: Any) -> Vec3:
    return (float(values[0]), float(values[1]), float(values[2]))


def replicator_schedule(request: RenderRequest) -> ReplicatorSchedule:
    """Map the request's plans onto Replicator prims and their per-frame values."""
    if not request.assets:
        raise ValueError("the request has no assets to place")
    plans = request.plans
    width, height = request.resolution
    frames = len(plans)
    objects: list[ObjectSlot] = []
    for asset_index, asset in enumerate(request.assets):
        per_frame: list[list[tuple[Any, ...]]] = []
        recolor = False
        for plan in plans:
            items = []
            for obj in plan.objects:
                if obj.asset == asset_index:
                    scale, translation = placement(
                        obj.size, obj.rotation_deg, obj.position, asset.center, asset.longest_side
                    )
                    look = obj.material.color if obj.material is not None else None
                    recolor = recolor or look is not None
                    color = look if look is not None else (0.0, 0.0, 0.0)
                    items.append((_vec(translation), obj.rotation_deg, scale, color, 0.0))
            per_frame.append(items)
        copies = max((len(items) for items in per_frame), default=0)
        objects += [ObjectSlot(asset_index, slot, recolor) for slot in _slot_frames(per_frame, copies, frames)]
    distractors: list[DistractorSlot] = []
    for shape in sorted({d.shape for plan in plans for d in plan.distractors}):
        per_frame = [
            [(d.position, d.rotation_deg, d.size, d.color, 0.0) for d in plan.distractors if d.shape == shape]
            for plan in plans
        ]
        copies = max(len(items) for items in per_frame)
        distractors += [
            DistractorSlot(REPLICATOR_SHAPES[shape], slot) for slot in _slot_frames(per_frame, copies, frames)
        ]
    light_frames = []
    for plan in plans:
        items = []
        for light in plan.lights:
            strongest = max(max(light.color), 1e-9)
            color = _vec(np.asarray(light.color) / strongest)
            # A distant light shines down its -Z: tilting +Z by 90 - elevation about X, then turning it by
            # azimuth + 90 about Z, points +Z at scene.direction(elevation, azimuth), where the light is.
            rotation = (90.0 - light.elevation_deg, 0.0, light.azimuth_deg + 90.0)
            items.append(((0.0, 0.0, 0.0), rotation, 1.0, color, strongest * DISTANT_LIGHT_UNIT))
        light_frames.append(items)
    light_slots = max((len(items) for items in light_frames), default=0)
    temperatures = tuple(
        tuple(plan.lights[slot].temperature_k if slot < len(plan.lights) else None for plan in plans)
        for slot in range(light_slots)
    )
    ground = GroundFrames(
        visible=tuple(plan.ground is not None for plan in plans),
        height=tuple(plan.ground.height if plan.ground is not None else 0.0 for plan in plans),
        half_size=tuple(plan.ground.half_size if plan.ground is not None else 1.0 for plan in plans),
        color=tuple(
            _vec(plan.ground.material.color or (0.5, 0.5, 0.5)) if plan.ground is not None else (0.5, 0.5, 0.5)
            for plan in plans
        ),
    )
    return ReplicatorSchedule(
        resolution=(width, height),
        frame_indices=tuple(plan.frame_index for plan in plans),
        camera_eye=tuple(plan.camera.eye for plan in plans),
        camera_target=tuple(plan.camera.target for plan in plans),
        focal_length_mm=tuple(focal_length_for_fov(plan.camera.vertical_fov_deg, width, height) for plan in plans),
        objects=tuple(objects),
        distractors=tuple(distractors),
        lights=tuple(_slot_frames(light_frames, light_slots, frames)),
        light_temperature_k=temperatures,
        ground=ground,
        dome_intensity=tuple(plan.ambient * DOME_LIGHT_UNIT for plan in plans),
        backgrounds=tuple(plan.background for plan in plans),
        rt_subframes=request.rt_subframes,
    )


# --------------------------------------------------------------------------------------
# Plan fields Replicator has no node for, in numpy with the GL shader's formulas
# --------------------------------------------------------------------------------------
def _pcg(value: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        state = value.astype(np.uint32) * np.uint32(747796405) + np.uint32(2891336453)
        word = ((state >> ((state >> np.uint32(28)) + np.uint32(4))) ^ state) * np.uint32(277803737)
    return (word >> np.uint32(22)) ^ word


def _hash01(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The GL shaders' ``hash01(uvec3)``."""
    return _pcg(x.astype(np.uint32) ^ _pcg(y.astype(np.uint32) ^ _pcg(z.astype(np.uint32)))) / np.float64(4294967295.0)


def finish_frame(rgb: np.ndarray, plan: ScenePlan) -> np.ndarray:
    """What the GL shader and post-process do to a finished frame, on Replicator's capture: the image jitter
    with the plan's exposure folded into its brightness (as GL does), then defocus and motion blur."""
    exposed = replace(plan.image, brightness=plan.image.brightness * plan.realism.exposure)
    return apply_camera_effects(jitter_image(rgb, exposed), plan.realism)


def jitter_image(rgb: np.ndarray, image: ImagePlan) -> np.ndarray:
    """The plan's whole-image jitter on a captured (H, W, 3) uint8 image: the GL shader's ``finish_image``."""
    height, width = rgb.shape[:2]
    c = rgb.astype(np.float64) / 255.0
    luma = c @ np.array([0.299, 0.587, 0.114])
    c = luma[..., None] + (c - luma[..., None]) * image.saturation
    c = (c - 0.5) * image.contrast + 0.5
    c = c * image.brightness
    if image.noise > 0:
        cols, rows = np.meshgrid(np.arange(width, dtype=np.uint32), np.arange(height, dtype=np.uint32))
        seed = np.full_like(cols, image.noise_seed & 0xFFFFFFFF)
        u1 = np.maximum(_hash01(cols, rows, seed), 1e-7)
        u2 = _hash01(cols, rows, seed ^ np.uint32(0x9E3779B9))
        c = c + (image.noise * np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * math.pi * u2))[..., None]
    return (np.clip(c, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _value_noise(px: np.ndarray, py: np.ndarray, seed: int) -> np.ndarray:
    ix, iy = np.floor(px), np.floor(py)
    fx, fy = px - ix, py - iy
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    qx, qy = (ix.astype(np.int64) + 4096).astype(np.uint32), (iy.astype(np.int64) + 4096).astype(np.uint32)
    s = np.full_like(qx, seed & 0xFFFFFFFF)
    a, b = _hash01(qx, qy, s), _hash01(qx + np.uint32(1), qy, s)
    c, d = _hash01(qx, qy + np.uint32(1), s), _hash01(qx + np.uint32(1), qy + np.uint32(1), s)
    return (a + (b - a) * fx) + ((c + (d - c) * fx) - (a + (b - a) * fx)) * fy


def background_image(background: BackgroundPlan, width: int, height: int, noise_seed: int) -> np.ndarray:
    """(H, W, 3) uint8 of a procedural background with the GL background shader's formulas (no image jitter)."""
    from isaac_jobs.spec import PROCEDURAL_BACKGROUNDS

    kind = background.kind if background.kind in PROCEDURAL_BACKGROUNDS else background.fallback_kind
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    px, py = np.meshgrid(u * width / height, v)
    dx, dy = math.cos(background.angle), math.sin(background.angle)
    along = (px - 0.5) * dx + (py - 0.5) * dy
    a, b = np.asarray(background.color_a), np.asarray(background.color_b)
    if kind == "gradient":
        t = np.clip(along + 0.5, 0.0, 1.0)
    elif kind == "noise":
        qx = px * background.frequency + background.offset[0]
        qy = py * background.frequency + background.offset[1]
        t = np.zeros_like(px)
        for weight, factor in ((0.5, 1.0), (0.25, 2.03), (0.125, 4.01), (0.125, 8.07)):
            t = t + weight * _value_noise(qx * factor, qy * factor, noise_seed)
    elif kind == "checker":
        rx = (dx * px - dy * py) * background.frequency + background.offset[0]
        ry = (dy * px + dx * py) * background.frequency + background.offset[1]
        t = (np.mod(np.floor(rx) + np.floor(ry), 2.0) >= 0.5).astype(np.float64)
    elif kind == "stripes":
        t = (np.mod(along * background.frequency + background.offset[0], 1.0) >= 0.5).astype(np.float64)
    else:  # solid
        t = np.zeros_like(px)
    image = a * (1.0 - t[..., None]) + b * t[..., None]
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def dome_texture(background: BackgroundPlan, noise_seed: int, size: tuple[int, int] = DOME_TEXTURE_SIZE) -> np.ndarray:
    """The frame's dome texture: the cropped user image, or the procedural background (its fallback when the
    image cannot be read)."""
    from PIL import Image, UnidentifiedImageError

    width, height = size
    if background.image is not None and background.crop is not None:
        try:
            with Image.open(background.image) as opened:
                picture = opened.convert("RGB")
        except (OSError, UnidentifiedImageError) as err:
            log.warning("background image %s: unreadable, using a procedural background (%s)", background.image, err)
        else:
            x, y, w, h = background.crop
            left, right = sorted((x * picture.width, (x + w) * picture.width))
            top, bottom = y * picture.height, (y + h) * picture.height
            cropped = picture.crop(
                (int(left), int(top), max(int(right), int(left) + 1), max(int(bottom), int(top) + 1))
            )
            if w < 0:
                cropped = cropped.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            return np.asarray(cropped.resize((width, height)), dtype=np.uint8)
    return background_image(background, width, height, noise_seed)


# --------------------------------------------------------------------------------------
# The Isaac part (only ever called after SimulationApp exists)
# --------------------------------------------------------------------------------------
def renderer_info() -> dict[str, str]:  # pragma: no cover - needs Isaac Sim
    """What rendered the shard, for the shard metadata and the manifest (like GLRenderer.renderer_info)."""
    info = {"backend": "isaac"}
    try:
        import omni.kit.app

        info["kit_version"] = str(omni.kit.app.get_app().get_build_version())
        import omni.replicator.core as rep

        info["replicator_version"] = str(getattr(rep, "__version__", "unknown"))
    except (ImportError, AttributeError) as err:
        info["version_error"] = str(err)
    return info


def start_simulation_app(width: int, height: int) -> Any:  # pragma: no cover - needs Isaac Sim
    """Create the headless SimulationApp; nothing from omni/pxr/carb may be imported before this."""
    try:
        from isaacsim import SimulationApp  # Isaac Sim 4.x / 5.x
    except ImportError:  # older images
        from omni.isaac.kit import SimulationApp
    return SimulationApp({"headless": True, "width": width, "height": height, "renderer": "RayTracedLighting"})


def build_replicator_scene(
    schedule: ReplicatorSchedule, assets: Sequence[str], textures: Sequence[Path], output_dir: Path
) -> tuple[Any, Any]:  # pragma: no cover - needs Isaac Sim
    """Author the Replicator graph from the schedule and attach a BasicWriter; returns (writer, render product)."""
    import carb.settings
    import omni.replicator.core as rep
    import omni.usd
    from pxr import UsdGeom

    # Capture only when we step the orchestrator, not on every timeline tick.
    carb.settings.get_settings().set("/omni/replicator/captureOnPlay", False)
    omni.usd.get_context().new_stage()
    stage = omni.usd.get_context().get_stage()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    seq = rep.distribution.sequence

    with rep.new_layer("sim2cloud"):
        # The class label travels inside each asset (UsdSemantics.LabelsAPI), so none is added here.
        object_prims = [
            (rep.create.from_usd(assets[slot.asset]), slot.frames, slot.recolor) for slot in schedule.objects
        ]
        distractor_prims = [(getattr(rep.create, slot.shape)(), slot.frames) for slot in schedule.distractors]
        light_prims = [
            (rep.create.light(light_type="distant"), frames, kelvin)
            for frames, kelvin in zip(schedule.lights, schedule.light_temperature_k, strict=True)
        ]
        ground = rep.create.plane() if any(schedule.ground.visible) else None
        dome = rep.create.light(light_type="dome")
        camera = rep.create.camera(horizontal_aperture=HORIZONTAL_APERTURE_MM, clipping_range=(0.01, 1000.0))
        render_product = rep.create.render_product(camera, schedule.resolution)

        with rep.trigger.on_frame(max_execs=schedule.frames):
            for prim, frames, recolor in object_prims:
                with prim:
                    rep.modify.pose(
                        position=seq(list(frames.position)),
                        rotation=seq(list(frames.rotation)),
                        scale=seq([(s, s, s) for s in frames.scale]),
                    )
                    rep.modify.visibility(seq(list(frames.visible)))
                    if recolor:
                        rep.randomizer.color(colors=seq(list(frames.color)))
            for prim, frames in distractor_prims:
                with prim:
                    rep.modify.pose(
                        position=seq(list(frames.position)),
                        rotation=seq(list(frames.rotation)),
                        size=seq(list(frames.scale)),
                    )
                    rep.modify.visibility(seq(list(frames.visible)))
                    rep.randomizer.color(colors=seq(list(frames.color)))
            for prim, frames, kelvin in light_prims:
                with prim:
                    rep.modify.pose(rotation=seq(list(frames.rotation)))
                    rep.modify.attribute("inputs:intensity", seq(list(frames.intensity)))
                    rep.modify.attribute("inputs:color", seq(list(frames.color)))
                    rep.modify.attribute("inputs:enableColorTemperature", seq([k is not None for k in kelvin]))
                    rep.modify.attribute("inputs:colorTemperature", seq([k or 6500.0 for k in kelvin]))
                    rep.modify.visibility(seq(list(frames.visible)))
            if ground is not None:
                with ground:
                    # Replicator's plane is 1 x 1 scene units before scaling.
                    rep.modify.pose(
                        position=seq([(0.0, 0.0, h) for h in schedule.ground.height]),
                        scale=seq([(2 * s, 2 * s, 1.0) for s in schedule.ground.half_size]),
                    )
                    rep.modify.visibility(seq(list(schedule.ground.visible)))
                    rep.randomizer.color(colors=seq(list(schedule.ground.color)))
            with dome:
                rep.modify.attribute("inputs:intensity", seq(list(schedule.dome_intensity)))
                rep.modify.attribute("inputs:texture:file", seq([str(t) for t in textures]))
            with camera:
                rep.modify.pose(position=seq(list(schedule.camera_eye)), look_at=seq(list(schedule.camera_target)))
                rep.modify.attribute("focalLength", seq(list(schedule.focal_length_mm)))

        writer = rep.WriterRegistry.get("BasicWriter")
        writer.initialize(output_dir=str(output_dir), rgb=True, bounding_box_2d_tight=True)
        writer.attach([render_product])
    return writer, render_product


def capture_frames(schedule: ReplicatorSchedule, *, progress: bool = True) -> None:  # pragma: no cover - needs Isaac
    import omni.replicator.core as rep
    from tqdm import tqdm

    for _ in tqdm(range(schedule.frames), desc="isaac render", unit="frame", disable=not progress):
        rep.orchestrator.step(rt_subframes=schedule.rt_subframes)
    # BasicWriter writes asynchronously; every file must be on disk before conversion.
    rep.orchestrator.wait_until_complete()


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - needs Isaac Sim
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    # Everything that can fail on input happens before Isaac's slow start.
    request = read_request(args.request)
    schedule = replicator_schedule(request)
    args.out.mkdir(parents=True, exist_ok=True)
    texture_dir = args.out / DOME_TEXTURE_DIR
    texture_dir.mkdir(exist_ok=True)
    from PIL import Image

    textures = []
    for plan in request.plans:
        path = texture_dir / f"{plan.frame_index:06d}.png"
        Image.fromarray(dome_texture(plan.background, plan.image.noise_seed)).save(path)
        textures.append(path)

    app = start_simulation_app(*request.resolution)
    try:
        writer, render_product = build_replicator_scene(
            schedule, [a.path for a in request.assets], textures, args.out / BASICWRITER_DIR
        )
        try:
            capture_frames(schedule, progress=not args.no_progress)
        finally:
            writer.detach()
            render_product.destroy()
        (args.out / RENDERER_INFO_NAME).write_text(json.dumps(renderer_info()), encoding="utf-8")
        return 0
    finally:
        app.close()


if __name__ == "__main__":
    sys.exit(main())
