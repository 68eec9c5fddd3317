"""Backend ``isaac``: one render shard with NVIDIA Isaac Sim Replicator (a standalone Isaac Sim script).

Run inside the Isaac Sim image (``containers/isaac-sim``)::

    /isaac-sim/python.sh -m isaac_jobs.backends.isaac_replicator \\
        --meshes DIR --out DIR [--config YAML] [--frames N] --shard K --shards N

Order of work: arguments, the scene spec and the batch are parsed and the meshes loaded with our own
modules first (bad input fails fast, before Isaac's long start); then ``SimulationApp({"headless": True})``
is created, and only after that is anything from ``omni``/``pxr``/``carb`` imported (Isaac's rule: its
plugins load with the app). The meshes become USD assets (:func:`isaac_jobs.usd_export.write_usd`, class
label as ``UsdSemantics.LabelsAPI`` instance ``class``), the scene spec is mapped onto Replicator
(:func:`plan_replicator`, pure and unit-tested), BasicWriter (``rgb``, ``bounding_box_2d_tight``) writes
the shard's frames into a temp folder, and :func:`isaac_jobs.basicwriter.convert_basicwriter_report`
turns them into our shard through :class:`isaac_jobs.dataset.ShardWriter`, committed last.

This module imports nothing from Isaac at module level, so it is linted, type-checked and its pure parts
tested on machines without Isaac Sim.

How the scene spec maps onto Replicator, and where it cannot mirror the GL backend exactly:

* Camera: eye, look-at point and vertical FOV are drawn per frame in Python from the generator seeded
  with ``(seed, frame index)`` (:func:`camera_for_frame`) and fed to Replicator as sequences, so the
  viewpoint of frame ``i`` is the same whatever the shard count. ``camera_roll_deg`` is not applied:
  Replicator's ``look_at`` keeps the world up axis. The FOV becomes a focal length for the USD camera's
  horizontal aperture (:func:`focal_length_for_fov`).
* Objects: every mesh is referenced ``ceil(max objects / meshes)`` times (``rep.create.from_usd``); each
  frame every copy is shown with probability ``mean(objects_per_frame) / copies`` and posed with
  ``rep.modify.pose`` uniform ranges (position, roll/pitch/yaw as XYZ Euler, ``size`` = longest side
  from ``object_size``). So the object count per frame varies around the spec's mean rather than being
  drawn uniformly from its range, and classes appear in proportion to their meshes (GL draws the class
  first). Replicator distributions are seeded per shard (:func:`shard_seed`), so object poses, unlike the
  camera, depend on the shard split. Objects may interpenetrate (no physics settling), as in GL.
* Distractors: Replicator primitives without labels (``torus``/``cone``/...; ``capsule`` becomes a
  cylinder, ``box`` a cube), shown like objects with ``mean(distractors_per_frame) / slots`` and
  coloured with ``rep.randomizer.color``.
* Lights: ``max(light_count)`` distant lights, each on with probability ``mean/max``, rotation from the
  elevation/azimuth ranges, intensity ``light_intensity x`` :data:`DISTANT_LIGHT_UNIT`, colour
  ``1 - light_color_jitter .. 1`` per channel. ``ambient_intensity`` drives a dome light
  (x :data:`DOME_LIGHT_UNIT`). Path-traced/RTX shading, shadows and reflections have no GL equivalent.
* Backgrounds: user images and procedural images (rendered to PNG here) become dome-light textures
  chosen per frame; a dome wraps the image around the scene (lat-long), so it is seen warped and
  partially, not as a flat screen-filling picture as in GL.
* Colour jitter: the per-object albedo/saturation/hue jitter is not applied (the assets keep their own
  USD materials: replacing them would lose textures). The whole-image brightness/contrast/saturation/
  noise jitter is applied after capture, per frame from ``(seed, frame index)`` (:func:`jitter_image`).
* Appearance where a mesh has none (``untextured_*``): not mirrored yet. Meshes without a texture, vertex
  colours or a material colour keep the exporter's grey material; Replicator could express it
  (``rep.create.material_omnipbr`` with diffuse/roughness/metallic distributions bound per prim), once the
  USD asset carries whether a mesh has a look of its own.
* Frames: ``rep.trigger.on_frame(max_execs=frames)`` (``num_frames`` in Replicator before 1.10) holds
  the randomizers, and the script steps ``rep.orchestrator.step(rt_subframes=...)`` exactly once per
  frame of the shard, then waits for the writer (``captureOnPlay`` off, the Isaac Sim 4.5+ pattern).
* Boxes: BasicWriter's tight boxes cover visible pixels, like GL's id-target boxes; the drop rule uses
  ``1 - occlusionRatio`` as visible fraction (see :mod:`isaac_jobs.basicwriter`).
"""

from __future__ import annotations

import argparse
import colorsys
import logging
import math
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    from isaac_jobs.mesh import Mesh
    from isaac_jobs.spec import SceneSpec

log = logging.getLogger(__name__)

ISAAC_PYTHON: Final = "/isaac-sim/python.sh"
"""Isaac Sim's Python launcher inside the official image."""
MODULE: Final = "isaac_jobs.backends.isaac_replicator"
DISTANT_LIGHT_UNIT: Final = 3000.0
"""Replicator distant-light intensity for spec intensity 1.0 (Replicator's own examples light with 1000-3000)."""
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
CAMERA_STREAM: Final = 0x0CA3E7A
"""Third seed word of the per-frame camera generator, so it never repeats another stream's draws."""
JITTER_STREAM: Final = 0x01177E4
"""Third seed word of the per-frame image-jitter generator."""
BACKGROUND_TEXTURES: Final = 8
"""Procedural background images rendered per kind for the dome light to choose from."""

Vec3 = tuple[float, float, float]
FloatRange = tuple[float, float]


# --------------------------------------------------------------------------------------
# Arguments (parsed before Isaac starts)
# --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{ISAAC_PYTHON} -m {MODULE}",
        description="Render one shard of a batch with Isaac Sim Replicator into our YOLO shard layout.",
    )
    parser.add_argument("--meshes", type=Path, required=True, help="batch folder: <meshes>/<class>/<file>")
    parser.add_argument("--out", type=Path, required=True, help="output folder; the shard lands in <out>/shard-<k>")
    parser.add_argument("--config", type=Path, default=None, help="scene-spec YAML overriding the defaults")
    parser.add_argument("--frames", type=int, default=None, help="total frames of the run (overrides the spec)")
    parser.add_argument("--seed", type=int, default=None, help="master seed (overrides the spec)")
    parser.add_argument("--shard", type=int, default=0, help="this shard's index, 0..shards-1")
    parser.add_argument("--shards", type=int, default=1, help="number of shards the run is split into")
    parser.add_argument("--rt-subframes", type=int, default=RT_SUBFRAMES, help="RTX subframes per captured frame")
    parser.add_argument("--keep-basicwriter", type=Path, default=None, help="also copy BasicWriter's raw output here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check the arguments; errors exit with status 2 naming the bad argument."""
    parser = build_parser()
    # Kit appends its own flags when it relaunches; only ours are read.
    args, _unknown = parser.parse_known_args(argv)
    if args.shards < 1:
        parser.error(f"--shards {args.shards}: must be at least 1")
    if not 0 <= args.shard < args.shards:
        parser.error(f"--shard {args.shard}: must be in 0..{args.shards - 1}")
    if args.frames is not None and args.frames < 1:
        parser.error(f"--frames {args.frames}: must be at least 1")
    if args.rt_subframes < 1:
        parser.error(f"--rt-subframes {args.rt_subframes}: must be at least 1")
    if not args.meshes.is_dir():
        parser.error(f"--meshes {args.meshes}: not a folder")
    if args.config is not None and not args.config.is_file():
        parser.error(f"--config {args.config}: no such file")
    return args


def command(
    meshes_dir: Path,
    out_dir: Path,
    *,
    shard: int = 0,
    shards: int = 1,
    config: Path | None = None,
    python: str = ISAAC_PYTHON,
) -> list[str]:
    """The argv that runs this script for one shard (for a caller outside Isaac's Python)."""
    argv = [python, "-m", MODULE, "--meshes", str(meshes_dir), "--out", str(out_dir)]
    if config is not None:
        argv += ["--config", str(config)]
    return [*argv, "--shard", str(shard), "--shards", str(shards)]


# --------------------------------------------------------------------------------------
# Spec -> Replicator parameters (pure)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraPose:
    eye: Vec3
    """Camera position, metres, Z-up."""
    target: Vec3
    """Look-at point."""
    vertical_fov_deg: float
    focal_length_mm: float
    """Focal length giving ``vertical_fov_deg`` with :data:`HORIZONTAL_APERTURE_MM` at the image aspect."""


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


def _frame_rng(seed: int, frame_index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, frame_index, stream])


def camera_for_frame(spec: SceneSpec, frame_index: int) -> CameraPose:
    """Camera of one frame from ``(spec.seed, frame_index)`` only: distance, elevation, azimuth, FOV, target."""
    rng = _frame_rng(spec.seed, frame_index, CAMERA_STREAM)
    distance = rng.uniform(*spec.camera_distance)
    elevation = math.radians(rng.uniform(*spec.camera_elevation_deg))
    azimuth = math.radians(rng.uniform(*spec.camera_azimuth_deg))
    fov = float(rng.uniform(*spec.camera_fov_deg))
    jitter = spec.camera_target_jitter
    target = rng.uniform(-jitter, jitter, size=3) if jitter > 0 else np.zeros(3)
    direction = np.array(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    )
    eye = target + distance * direction
    return CameraPose(
        eye=(float(eye[0]), float(eye[1]), float(eye[2])),
        target=(float(target[0]), float(target[1]), float(target[2])),
        vertical_fov_deg=fov,
        focal_length_mm=focal_length_for_fov(fov, spec.width, spec.height),
    )


def shard_seed(seed: int, shard: int, shards: int) -> int:
    """Replicator's global seed for one shard: reproducible per (seed, shard, shards), different per shard."""
    mixed = np.random.SeedSequence([seed, shard, shards]).generate_state(1)[0]
    return int(mixed) & 0x7FFFFFFF


def _mean(value_range: tuple[float, float]) -> float:
    return (value_range[0] + value_range[1]) / 2.0


@dataclass(frozen=True)
class ReplicatorPlan:
    """Everything the Replicator graph needs, derived from the scene spec (no Isaac types)."""

    resolution: tuple[int, int]
    """(width, height) of the render product."""
    frame_indices: tuple[int, ...]
    """Dataset frame index of BasicWriter frame n = ``frame_indices[n]``."""
    global_seed: int
    cameras: tuple[CameraPose, ...]
    """One per frame, in ``frame_indices`` order."""
    copies_per_mesh: int
    object_visible_probability: float
    object_size: FloatRange | None
    """Longest side range (Replicator's ``size``), None keeps each mesh's own size."""
    position_min: Vec3
    position_max: Vec3
    rotation_min: Vec3
    """(roll, pitch, yaw) degrees, applied as XYZ Euler angles."""
    rotation_max: Vec3
    distractor_shapes: tuple[str, ...]
    """``rep.create`` function names, one per distractor slot."""
    distractor_visible_probability: float
    distractor_size: FloatRange
    light_slots: int
    light_visible_probability: float
    light_intensity: FloatRange
    light_rotation_min: Vec3
    light_rotation_max: Vec3
    light_color_min: Vec3
    light_color_max: Vec3
    dome_intensity: FloatRange
    rt_subframes: int = RT_SUBFRAMES

    @property
    def frames(self) -> int:
        return len(self.frame_indices)


def plan_replicator(
    spec: SceneSpec,
    *,
    shard: int,
    shards: int,
    mesh_count: int,
    rt_subframes: int = RT_SUBFRAMES,
) -> ReplicatorPlan:
    """Map the scene spec onto Replicator parameters for shard ``shard`` of ``shards``."""
    from isaac_jobs.dataset import frames_for_shard

    if mesh_count < 1:
        raise ValueError("no meshes to place")
    frame_indices = tuple(frames_for_shard(spec.frames, shard, shards))
    objects_lo, objects_hi = spec.objects_per_frame
    copies = max(1, math.ceil(objects_hi / mesh_count))
    slots = copies * mesh_count
    distractor_slots = spec.distractors_per_frame[1]
    shapes = tuple(
        REPLICATOR_SHAPES[spec.distractor_shapes[i % len(spec.distractor_shapes)]] for i in range(distractor_slots)
    )
    light_slots = spec.light_count[1]
    # Light from elevation e: a distant light shines down its -Z, so tilt it by 90 - e about X, then yaw.
    elevation_lo, elevation_hi = spec.light_elevation_deg
    azimuth_lo, azimuth_hi = spec.light_azimuth_deg
    jitter = spec.light_color_jitter
    return ReplicatorPlan(
        resolution=(spec.width, spec.height),
        frame_indices=frame_indices,
        global_seed=shard_seed(spec.seed, shard, shards),
        cameras=tuple(camera_for_frame(spec, i) for i in frame_indices),
        copies_per_mesh=copies,
        object_visible_probability=min(1.0, _mean((objects_lo, objects_hi)) / slots),
        object_size=spec.object_size,
        position_min=(spec.position_x[0], spec.position_y[0], spec.position_z[0]),
        position_max=(spec.position_x[1], spec.position_y[1], spec.position_z[1]),
        rotation_min=(spec.rotation_roll_deg[0], spec.rotation_pitch_deg[0], spec.rotation_yaw_deg[0]),
        rotation_max=(spec.rotation_roll_deg[1], spec.rotation_pitch_deg[1], spec.rotation_yaw_deg[1]),
        distractor_shapes=shapes,
        distractor_visible_probability=(
            min(1.0, _mean(spec.distractors_per_frame) / distractor_slots) if distractor_slots else 0.0
        ),
        distractor_size=spec.distractor_size,
        light_slots=light_slots,
        light_visible_probability=min(1.0, _mean(spec.light_count) / light_slots) if light_slots else 0.0,
        light_intensity=(spec.light_intensity[0] * DISTANT_LIGHT_UNIT, spec.light_intensity[1] * DISTANT_LIGHT_UNIT),
        light_rotation_min=(90.0 - elevation_hi, 0.0, azimuth_lo),
        light_rotation_max=(90.0 - elevation_lo, 0.0, azimuth_hi),
        light_color_min=(1.0 - jitter,) * 3,
        light_color_max=(1.0, 1.0, 1.0),
        dome_intensity=(spec.ambient_intensity[0] * DOME_LIGHT_UNIT, spec.ambient_intensity[1] * DOME_LIGHT_UNIT),
        rt_subframes=rt_subframes,
    )


# --------------------------------------------------------------------------------------
# Whole-image colour jitter (applied to the captured RGB; Replicator has no post-process for it)
# --------------------------------------------------------------------------------------
def jitter_image(rgb: np.ndarray, spec: SceneSpec, frame_index: int) -> np.ndarray:
    """Brightness, contrast (around mid-grey), saturation and sensor noise drawn from (seed, frame index)."""
    rng = _frame_rng(spec.seed, frame_index, JITTER_STREAM)
    brightness = rng.uniform(*spec.image_brightness)
    contrast = rng.uniform(*spec.image_contrast)
    saturation = rng.uniform(*spec.image_saturation)
    noise = rng.uniform(*spec.image_noise)
    image = rgb.astype(np.float32) / 255.0
    image = image * brightness
    image = (image - 0.5) * contrast + 0.5
    grey = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    image = grey[..., None] + (image - grey[..., None]) * saturation
    if noise > 0:
        image = image + rng.normal(0.0, noise, size=image.shape).astype(np.float32)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def procedural_background(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A (H, W, 3) uint8 background picture of one of the spec's procedural kinds (for dome textures)."""
    colors = rng.uniform(0.0, 1.0, size=(2, 3)).astype(np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        t = (xs * math.cos(angle) + ys * math.sin(angle)) / max(width, height)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        image = colors[0] * (1 - t[..., None]) + colors[1] * t[..., None]
    elif kind == "noise":
        coarse = rng.uniform(0.0, 1.0, size=(max(2, height // 16), max(2, width // 16), 3)).astype(np.float32)
        rows = np.linspace(0, coarse.shape[0] - 1, height).astype(int)
        cols = np.linspace(0, coarse.shape[1] - 1, width).astype(int)
        image = coarse[rows][:, cols]
    elif kind == "checker":
        cell = int(rng.integers(8, 64))
        mask = ((xs // cell + ys // cell) % 2).astype(np.float32)
        image = colors[0] * (1 - mask[..., None]) + colors[1] * mask[..., None]
    elif kind == "stripes":
        period = int(rng.integers(8, 64))
        mask = ((xs // period) % 2).astype(np.float32)
        image = colors[0] * (1 - mask[..., None]) + colors[1] * mask[..., None]
    elif kind == "solid":
        hue, sat, val = rng.uniform(0, 1), rng.uniform(0, 0.8), rng.uniform(0.2, 1.0)
        image = np.broadcast_to(np.array(colorsys.hsv_to_rgb(hue, sat, val), dtype=np.float32), (height, width, 3))
    else:
        raise ValueError(f"unknown procedural background {kind!r}")
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def background_textures(spec: SceneSpec, folder: Path, *, size: tuple[int, int] = (1024, 512)) -> list[Path]:
    """Dome textures: the user's background images plus procedural pictures written to ``folder``."""
    from PIL import Image

    textures: list[Path] = []
    if spec.background_images_dir:
        textures += sorted(
            p
            for p in Path(spec.background_images_dir).iterdir()
            if p.is_file() and p.suffix.lower() in {".jpg", ".jpeg", ".png"}
        )
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([spec.seed, 0xBAC6])
    for kind in spec.backgrounds:
        for n in range(BACKGROUND_TEXTURES):
            path = folder / f"{kind}_{n}.png"
            Image.fromarray(procedural_background(kind, size[0], size[1], rng)).save(path)
            textures.append(path)
    return textures


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


def start_simulation_app(width: int, height: int) -> Any:
    """Create the headless SimulationApp; nothing from omni/pxr/carb may be imported before this."""
    try:
        from isaacsim import SimulationApp  # Isaac Sim 4.x / 5.x
    except ImportError:  # pragma: no cover - older images
        from omni.isaac.kit import SimulationApp
    return SimulationApp({"headless": True, "width": width, "height": height, "renderer": "RayTracedLighting"})


def build_replicator_scene(
    plan: ReplicatorPlan, assets: Sequence[Path], textures: Sequence[Path], output_dir: Path
) -> tuple[Any, Any]:  # pragma: no cover - needs Isaac Sim
    """Author the Replicator graph and attach a BasicWriter; returns (writer, render product)."""
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
    rep.set_global_seed(plan.global_seed)

    with rep.new_layer("sim2cloud"):
        # The class label travels inside each asset (UsdSemantics.LabelsAPI), so none is added here.
        objects = [rep.create.from_usd(str(path)) for path in assets for _ in range(plan.copies_per_mesh)]
        distractors = [getattr(rep.create, shape)() for shape in plan.distractor_shapes]
        lights = [rep.create.light(light_type="distant") for _ in range(plan.light_slots)]
        dome = rep.create.light(light_type="dome")
        camera = rep.create.camera(horizontal_aperture=HORIZONTAL_APERTURE_MM, clipping_range=(0.01, 1000.0))
        render_product = rep.create.render_product(camera, plan.resolution)

        object_group = rep.create.group(objects)
        with rep.trigger.on_frame(max_execs=plan.frames):
            with object_group:
                pose: dict[str, Any] = {
                    "position": rep.distribution.uniform(plan.position_min, plan.position_max),
                    "rotation": rep.distribution.uniform(plan.rotation_min, plan.rotation_max),
                }
                if plan.object_size is not None:
                    pose["size"] = rep.distribution.uniform(*plan.object_size)
                rep.modify.pose(**pose)
                p = plan.object_visible_probability
                rep.modify.visibility(rep.distribution.choice([True, False], weights=[p, 1.0 - p]))
            if distractors:
                with rep.create.group(distractors):
                    rep.modify.pose(
                        position=rep.distribution.uniform(plan.position_min, plan.position_max),
                        rotation=rep.distribution.uniform((-180.0,) * 3, (180.0,) * 3),
                        size=rep.distribution.uniform(*plan.distractor_size),
                    )
                    q = plan.distractor_visible_probability
                    rep.modify.visibility(rep.distribution.choice([True, False], weights=[q, 1.0 - q]))
                    rep.randomizer.color(colors=rep.distribution.uniform((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
            if lights:
                with rep.create.group(lights):
                    rep.modify.pose(rotation=rep.distribution.uniform(plan.light_rotation_min, plan.light_rotation_max))
                    rep.modify.attribute("inputs:intensity", rep.distribution.uniform(*plan.light_intensity))
                    rep.modify.attribute(
                        "inputs:color", rep.distribution.uniform(plan.light_color_min, plan.light_color_max)
                    )
                    r = plan.light_visible_probability
                    rep.modify.visibility(rep.distribution.choice([True, False], weights=[r, 1.0 - r]))
            with dome:
                rep.modify.attribute("inputs:intensity", rep.distribution.uniform(*plan.dome_intensity))
                if textures:
                    rep.modify.attribute("inputs:texture:file", rep.distribution.choice([str(t) for t in textures]))
            with camera:
                # Per-frame viewpoints computed from (seed, frame index): same frame, same view, any shard split.
                rep.modify.pose(
                    position=rep.distribution.sequence([pose.eye for pose in plan.cameras]),
                    look_at=rep.distribution.sequence([pose.target for pose in plan.cameras]),
                )
                rep.modify.attribute(
                    "focalLength", rep.distribution.sequence([pose.focal_length_mm for pose in plan.cameras])
                )

        writer = rep.WriterRegistry.get("BasicWriter")
        writer.initialize(output_dir=str(output_dir), rgb=True, bounding_box_2d_tight=True)
        writer.attach([render_product])
    return writer, render_product


def capture_frames(plan: ReplicatorPlan, *, progress: bool = True) -> None:  # pragma: no cover - needs Isaac Sim
    import omni.replicator.core as rep
    from tqdm import tqdm

    for _ in tqdm(range(plan.frames), desc="isaac render", unit="frame", disable=not progress):
        rep.orchestrator.step(rt_subframes=plan.rt_subframes)
    # BasicWriter writes asynchronously; every file must be on disk before conversion.
    rep.orchestrator.wait_until_complete()


def render_meshes_with_isaac(
    meshes: Sequence[Mesh],
    *,
    spec: SceneSpec,
    shard: int,
    shards: int,
    work_dir: Path,
    rt_subframes: int = RT_SUBFRAMES,
    progress: bool = True,
) -> tuple[ReplicatorPlan, Path]:  # pragma: no cover - needs Isaac Sim
    """Write USD assets, run Replicator, and return the plan and the BasicWriter output folder."""
    from isaac_jobs.usd_export import validate_usd, write_usd

    assets: list[Path] = []
    for mesh in meshes:
        path = write_usd(mesh, work_dir / "usd" / mesh.class_name / f"{mesh.name}.usd")
        try:
            problems = validate_usd(path)
        except (ImportError, AttributeError) as err:
            # Isaac's bundled USD may predate UsdValidation; the asset is still what usd-core validated in CI.
            problems = [f"validation unavailable in this USD build ({err})"]
        if problems:
            log.warning("%s: USD validation: %s", path, "; ".join(problems))
        assets.append(path)
    plan = plan_replicator(spec, shard=shard, shards=shards, mesh_count=len(assets), rt_subframes=rt_subframes)
    textures = background_textures(spec, work_dir / "backgrounds")
    basicwriter_dir = work_dir / "basicwriter"
    writer, render_product = build_replicator_scene(plan, assets, textures, basicwriter_dir)
    try:
        capture_frames(plan, progress=progress)
    finally:
        writer.detach()
        render_product.destroy()
    return plan, basicwriter_dir


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - needs Isaac Sim
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)

    # Everything that can fail on user input happens before Isaac's slow start.
    from isaac_jobs.basicwriter import convert_basicwriter_report, describe
    from isaac_jobs.batch import discover_batch, load_batch
    from isaac_jobs.dataset import ShardWriter
    from isaac_jobs.shards import mesh_record
    from isaac_jobs.spec import apply_batch_overrides, load_spec, spec_to_dict

    spec = load_spec(args.config, {"frames": args.frames, "seed": args.seed})
    batch = discover_batch(args.meshes)
    spec = apply_batch_overrides(spec, batch.render_overrides)
    meshes, load_errors = load_batch(batch, progress=not args.no_progress)
    mesh_errors = [*batch.errors, *load_errors]
    for error in mesh_errors:
        log.error("mesh skipped: %s", error)
    for mesh in meshes:
        for note in mesh.texture_notes:
            log.warning("mesh texture: %s: %s", mesh.source, note)
    if not meshes:
        reasons = "; ".join(str(e) for e in mesh_errors) or "the batch folder holds no meshes"
        log.error("no valid mesh in %s: %s", args.meshes, reasons)
        return 1

    app = start_simulation_app(spec.width, spec.height)
    # Scratch beside the output (instance storage on Batch); hidden, so no reader mistakes it for a shard.
    args.out.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=".isaac-work-", dir=args.out))
    try:
        plan, basicwriter_dir = render_meshes_with_isaac(
            meshes,
            spec=spec,
            shard=args.shard,
            shards=args.shards,
            work_dir=work_dir,
            rt_subframes=args.rt_subframes,
            progress=not args.no_progress,
        )
        if args.keep_basicwriter is not None:
            shutil.copytree(basicwriter_dir, args.keep_basicwriter, dirs_exist_ok=True)
        writer = ShardWriter(
            args.out,
            class_names=batch.class_names,
            shard=args.shard,
            shards=args.shards,
            image_format=spec.image_format,
            jpeg_quality=spec.jpeg_quality,
        )
        try:
            report = convert_basicwriter_report(
                basicwriter_dir,
                writer,
                class_names=batch.class_names,
                spec=spec,
                frame_indices=plan.frame_indices,
                transform_rgb=lambda frame_index, rgb: jitter_image(rgb, spec, frame_index),
            )
            path = writer.commit(
                {
                    "renderer": renderer_info(),
                    "spec": spec_to_dict(spec),
                    "source_meshes": [mesh_record(m) for m in meshes],
                    "mesh_errors": [{"path": e.path, "reason": e.reason} for e in mesh_errors],
                    "batch": {"triangle_budget": batch.triangle_budget, "up_axis": batch.up_axis},
                    "replicator": {"global_seed": plan.global_seed, "rt_subframes": plan.rt_subframes},
                    "conversion": describe(report),
                }
            )
        except BaseException:
            writer.abort()
            raise
        log.info("shard %d of %d: %d frames in %s", args.shard, args.shards, len(report.converted), path)
        if len(report.converted) != plan.frames:
            log.warning(
                "%d of %d frames could not be converted (see the shard metadata)",
                plan.frames - len(report.converted),
                plan.frames,
            )
        return 0
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        app.close()


if __name__ == "__main__":
    sys.exit(main())
