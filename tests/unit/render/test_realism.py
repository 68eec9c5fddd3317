"""The realism settings (issue 10): drawn per (seed, frame) into the plan, within their ranges, and really drawn by
the GL backend (ground plane, shadows, random looks checked on pixels); class looks from batch.yaml reach the USD
material and the sampler."""

from __future__ import annotations

import colorsys
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh

from isaac_jobs.appearance import LOOK_CUSTOM_DATA_KEY, AssetTraits, Look, draw_hue, kelvin_rgb
from isaac_jobs.backends.gl import GLRenderer
from isaac_jobs.batch import BatchConfigError
from isaac_jobs.camera_effects import apply_camera_effects
from isaac_jobs.dataset import ShardWriter
from isaac_jobs.prepare import prepare_batch
from isaac_jobs.scene import METALLIC_RANGE, STABLE_ROTATIONS, RealismPlan, ScenePlan, SceneSampler, model_matrix
from isaac_jobs.spec import REALISM_OFF, SpecError, load_spec

from .conftest import mesh_from_trimesh

REPO = Path(__file__).resolve().parents[3]
PLAIN = AssetTraits((0.2, 0.1, 0.05), own_appearance=False)
OWN = AssetTraits((0.1, 0.1, 0.3), own_appearance=True)


def sampler(traits: list[AssetTraits] | None = None, **overrides: Any) -> SceneSampler:
    traits = traits or [PLAIN, OWN]
    return SceneSampler(load_spec(overrides=overrides), list(range(len(traits))), traits)


def hsv(color: tuple[float, float, float]) -> tuple[float, float, float]:
    h, s, v = colorsys.rgb_to_hsv(*color)
    return h * 360, s, v


def test_realism_fields_are_drawn_per_seed_and_frame_after_the_earlier_fields() -> None:
    plans = [sampler().plan(i) for i in range(12)]
    assert plans == [sampler().plan(i) for i in range(12)]  # another sampler, same (seed, frame): same plans
    assert [sampler(seed=1).plan(i) for i in range(12)] != plans
    assert all(ScenePlan.from_dict(p.to_dict()) == p for p in plans)
    # Drawn after everything that existed before: turning realism off leaves camera, background, image jitter,
    # light directions and the objects' classes, sizes and colour jitter as they were.
    off = [sampler(**REALISM_OFF).plan(i) for i in range(12)]
    for on, before in zip(plans, off, strict=True):
        assert (on.camera, on.background, on.image, on.ambient) == (
            before.camera,
            before.background,
            before.image,
            before.ambient,
        )
        assert [(o.asset, o.size, o.brightness, o.hue_shift_deg) for o in on.objects] == [
            (o.asset, o.size, o.brightness, o.hue_shift_deg) for o in before.objects
        ]
        assert [(li.elevation_deg, li.azimuth_deg) for li in on.lights] == [
            (li.elevation_deg, li.azimuth_deg) for li in before.lights
        ]
        # Off means as before the realism settings: no ground, no material, no effects.
        realism = before.realism
        assert before.ground is None and not (realism.pbr_shading or realism.shadows or realism.environment_light)
        assert (realism.exposure, realism.defocus_px, realism.motion_blur_px, realism.jpeg_quality) == (1, 0, 0, 92)
        assert all(o.material is None for o in before.objects)
        assert all(li.temperature_k is None for li in before.lights)


def test_random_looks_shading_lights_and_camera_effects_stay_in_their_ranges() -> None:
    spec_overrides = {
        "appearance_saturation": [0.2, 0.6],
        "appearance_value": [0.3, 0.8],
        "appearance_roughness": [0.25, 0.5],
        "light_temperature_k": [3000, 4000],
        "exposure_ev": [-0.5, 0.5],
        "jpeg_quality": [60, 70],
        "defocus_px": [1.0, 1.5],
        "motion_blur_px": [2, 3],
        "ground_plane_probability": 0.5,
        "objects_per_frame": [3, 5],
    }
    draw = sampler(**spec_overrides)
    plans = [draw.plan(i) for i in range(150)]
    plain = [o.material for p in plans for o in p.objects if o.asset == 0]
    own = [o.material for p in plans for o in p.objects if o.asset == 1]
    assert plain and own
    assert all(m is not None and m.color is not None for m in plain)
    assert all(m is not None and m.color is None for m in own)  # meshes with their own colours keep them
    hues = []
    for material in plain:
        assert material is not None and material.color is not None
        h, s, v = hsv(material.color)
        hues.append(h)
        assert 0.2 - 1e-9 <= s <= 0.6 + 1e-9 and 0.3 - 1e-9 <= v <= 0.8 + 1e-9
        assert 0.25 <= material.roughness <= 0.5
        assert material.metallic == 0 or METALLIC_RANGE[0] <= material.metallic <= METALLIC_RANGE[1]
    assert np.histogram(hues, bins=6, range=(0, 360))[0].min() > 0  # any hue
    assert 0.15 < np.mean([m.pattern != "none" for m in plain if m is not None]) < 0.6
    assert all(3000 <= li.temperature_k <= 4000 for p in plans for li in p.lights if li.temperature_k is not None)
    assert all(2**-0.5 - 1e-9 <= p.realism.exposure <= 2**0.5 + 1e-9 for p in plans)
    assert {p.realism.jpeg_quality for p in plans} <= set(range(60, 71))
    assert len({p.realism.jpeg_quality for p in plans}) > 5
    defocused = [p.realism.defocus_px for p in plans if p.realism.defocus_px > 0]
    assert defocused and all(1.0 <= d <= 1.5 for d in defocused)
    assert 0.05 < len(defocused) / len(plans) < 0.4  # defocus_probability 0.2
    assert all(2 <= p.realism.motion_blur_px <= 3 for p in plans if p.realism.motion_blur_px > 0)
    assert 0.35 < np.mean([p.ground is not None for p in plans]) < 0.65


def test_objects_rest_on_the_ground_in_stable_poses_or_float_above_it() -> None:
    draw = sampler(ground_plane_probability=1.0, resting_probability=0.6, objects_per_frame=[4, 6])
    resting = floating = 0
    for frame in range(40):
        plan = draw.plan(frame)
        assert plan.ground is not None
        for obj in plan.objects:
            extents = np.array(draw.traits[obj.asset].extents)
            corners = np.array([[x, y, z, 1] for x in (0, 1) for y in (0, 1) for z in (0, 1)]) * [*extents, 1]
            world = model_matrix(obj.size, obj.rotation_deg, obj.position, extents / 2, float(extents.max()))
            lowest = float((world @ corners.T)[2].min())
            if obj.rotation_deg[:2] in STABLE_ROTATIONS:
                resting += 1
                assert lowest == pytest.approx(plan.ground.height, abs=1e-9)  # its lowest point on the plane
            else:
                floating += 1
                assert lowest >= plan.ground.height - 1e-9  # never through the plane
    assert resting > 40 and floating > 20


def test_a_class_look_narrows_the_colours_of_its_colourless_meshes() -> None:
    look = Look(hue=(340.0, 20.0), saturation=(0.6, 0.9), value=(0.4, 0.5), roughness=(0.1, 0.2))
    draw = sampler([replace(PLAIN, look=look)], objects_per_frame=[2, 3])
    materials = [o.material for i in range(60) for o in draw.plan(i).objects]
    for material in materials:
        assert material is not None and material.color is not None and material.pattern == "none"
        h, s, v = hsv(material.color)
        assert h >= 340 - 1e-6 or h <= 20 + 1e-6  # the range wraps through red
        assert 0.6 - 1e-9 <= s <= 0.9 + 1e-9 and 0.4 - 1e-9 <= v <= 0.5 + 1e-9
        assert 0.1 <= material.roughness <= 0.2
    assert draw_hue(np.random.default_rng(0), (0.0, 360.0)) != draw_hue(np.random.default_rng(1), (0.0, 360.0))


def test_bad_realism_settings_are_refused_by_name() -> None:
    with pytest.raises(SpecError, match="ground_plane_probability"):
        load_spec(overrides={"ground_plane_probability": 1.5})
    with pytest.raises(SpecError, match="appearance_patterns"):
        load_spec(overrides={"appearance_patterns": ["marble"]})
    with pytest.raises(SpecError, match="shadows"):
        load_spec(overrides={"shadows": "yes"})
    assert load_spec(overrides={"jpeg_quality": 80}).jpeg_quality == (80, 80)  # one number still works


# ------------------------------------------------------------------------------------------------ pixels
LOOK_DOWN = {
    "width": 96,
    "height": 96,
    "camera_distance": [1.2, 1.2],
    "camera_elevation_deg": [60, 60],
    "camera_azimuth_deg": [0, 0],
    "camera_roll_deg": [0, 0],
    "camera_fov_deg": [50, 50],
    "camera_target_jitter": 0.0,
    "distractors_per_frame": [0, 0],
    "objects_per_frame": [1, 1],
    "object_size": [0.3, 0.3],
    "position_x": [0, 0],
    "position_y": [0, 0],
    "resting_probability": 1.0,
    "backgrounds": ["solid"],
    "ground_patterns": ["solid"],
    "image_noise": [0, 0],
    "image_brightness": [1, 1],
    "image_contrast": [1, 1],
    "image_saturation": [1, 1],
    "exposure_ev": [0, 0],
    "defocus_probability": 0.0,
    "motion_blur_probability": 0.0,
    "light_count": [1, 1],
    "light_intensity": [1, 1],
    "light_elevation_deg": [55, 55],
    "light_azimuth_deg": [180, 180],  # behind the object as the camera sees it: the shadow falls towards it
    "light_color_jitter": 0.0,
    "ambient_intensity": [0.2, 0.2],
    "min_box_side_px": 0,
    "min_visible_fraction": 0.0,
}


@pytest.fixture
def box_mesh() -> list[Any]:
    return [mesh_from_trimesh("box", "box", trimesh.creation.box(extents=(1.0, 0.8, 0.6)))]


@pytest.fixture
def renderers() -> Iterator[list[GLRenderer]]:
    made: list[GLRenderer] = []
    yield made
    for renderer in made:
        renderer.close()


def render(renderers: list[GLRenderer], meshes: list[Any], **overrides: Any) -> Any:
    renderer = GLRenderer(meshes, ["box"], load_spec(overrides={**LOOK_DOWN, **overrides}))
    renderers.append(renderer)
    return renderer.render_detailed(0), renderer.scene_plan(0)


def test_the_ground_plane_is_drawn_in_perspective_as_id_zero_and_boxes_stay_tight(renderers, box_mesh) -> None:
    with_ground, plan = render(renderers, box_mesh, ground_plane_probability=1.0)
    without, _ = render(renderers, box_mesh, ground_plane_probability=0.0)
    assert plan.ground is not None
    background = np.array(plan.background.color_a) * 255
    ground_ids = with_ground.ids == 0
    # Looking 60 degrees down, the plane fills the lower image: those pixels are not the background colour.
    lower = ground_ids[60:]
    assert lower.mean() > 0.5
    far_from_background = np.abs(with_ground.rgb[60:].astype(float) - background).max(axis=2) > 20
    assert far_from_background[lower].mean() > 0.95
    # Without the plane the same pixels are the background, exactly.
    assert np.abs(without.rgb[60:].astype(float) - background).max(axis=2)[without.ids[60:] == 0].max() <= 1
    # The ground is no object: the one box is the tight box of the object's id pixels.
    ys, xs = np.nonzero(with_ground.ids == 1)
    assert with_ground.boxes == [(0, float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))]


def test_the_key_light_casts_a_shadow_on_the_ground(renderers, box_mesh) -> None:
    lit, plan = render(renderers, box_mesh, ground_plane_probability=1.0, shadows=False)
    shadowed, _ = render(renderers, box_mesh, ground_plane_probability=1.0, shadows=True)
    assert plan.ground is not None
    ground = (lit.ids == 0) & (shadowed.ids == 0)
    darkening = lit.rgb.astype(float).mean(axis=2) - shadowed.rgb.astype(float).mean(axis=2)
    in_shadow = ground & (darkening > 15)
    # A shadow of some size, on the side away from the light (the light is behind the object: towards the camera,
    # so the image's lower part), and the rest of the ground untouched.
    assert in_shadow.sum() > 40
    object_rows = np.nonzero((lit.ids == 1).any(axis=1))[0]
    assert np.nonzero(in_shadow)[0].mean() > object_rows.mean()
    assert np.abs(darkening[ground & ~in_shadow]).mean() < 2
    # Soft edges (PCF): some ground pixels are between fully lit and fully shadowed.
    depth = darkening[in_shadow].max()
    assert ((darkening > 0.15 * depth) & (darkening < 0.85 * depth) & ground).sum() > 5


def test_a_colourless_mesh_gets_a_different_look_per_frame(renderers, box_mesh) -> None:
    spec = load_spec(
        overrides={**LOOK_DOWN, "ground_plane_probability": 0.0, "light_count": [0, 0], "ambient_intensity": [1, 1]}
    )
    renderer = GLRenderer(box_mesh, ["box"], spec)
    renderers.append(renderer)
    means = []
    for frame in range(6):
        rendered = renderer.render_detailed(frame)
        means.append(rendered.rgb[rendered.ids == 1].astype(float).mean(axis=0))
    assert np.ptp(np.array(means), axis=0).max() > 60  # colours, not one grey under jitter
    # Without random looks (and without the environment's tint) the mesh is its own grey under white light.
    off = GLRenderer(box_mesh, ["box"], replace(spec, random_appearance=False, environment_light=False))
    renderers.append(off)
    greys = [off.render_detailed(frame) for frame in range(3)]
    pixels = [g.rgb[g.ids == 1].astype(float).mean(axis=0) for g in greys]
    assert all(np.ptp(p) < 25 for p in pixels)  # the mesh's own grey (saturation jitter only)


def test_camera_effects_blur_only_the_planned_frames() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert apply_camera_effects(image, RealismPlan()) is image
    defocused = apply_camera_effects(image, RealismPlan(defocus_px=2.0))
    moved = apply_camera_effects(image, RealismPlan(motion_blur_px=6, motion_blur_angle=0.0))
    detail = np.abs(np.diff(image.astype(float), axis=1)).mean()
    assert np.abs(np.diff(defocused.astype(float), axis=1)).mean() < 0.4 * detail
    # A horizontal motion blur smooths along rows much more than along columns.
    assert (
        np.abs(np.diff(moved.astype(float), axis=1)).mean() < 0.5 * np.abs(np.diff(moved.astype(float), axis=0)).mean()
    )


def test_the_writer_encodes_each_frame_at_its_planned_jpeg_quality(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    writer = ShardWriter(tmp_path, class_names=["a"], shard=0, shards=1, jpeg_quality=95)
    writer.add_frame(0, image, [], jpeg_quality=20)
    writer.add_frame(1, image, [], jpeg_quality=95)
    shard = writer.commit({})
    low, high = sorted((shard / "images").iterdir())
    assert low.stat().st_size < 0.6 * high.stat().st_size


def test_kelvin_tints_are_warm_to_cool_with_unit_luminance() -> None:
    warm, cool = kelvin_rgb(2700), kelvin_rgb(9000)
    assert warm[0] > warm[2] and cool[2] > cool[0]
    for tint in (warm, cool):
        assert float(np.dot(tint, (0.299, 0.587, 0.114))) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ batch.yaml
def make_batch(tmp_path: Path, looks_yaml: str) -> Path:
    batch = tmp_path / "batch"
    shutil.copytree(REPO / "samples" / "meshes" / "book", batch / "book")
    shutil.copytree(REPO / "samples" / "meshes" / "bottle", batch / "bottle")
    (batch / "textures").mkdir()
    from PIL import Image

    Image.fromarray(np.full((8, 8, 3), (200, 30, 30), dtype=np.uint8)).save(batch / "textures" / "red.png")
    (batch / "batch.yaml").write_text(looks_yaml, encoding="utf-8")
    return batch


def test_a_class_look_is_written_into_the_usd_material_and_reaches_the_sampler(tmp_path: Path) -> None:
    from pxr import Usd, UsdShade

    batch = make_batch(
        tmp_path,
        "looks:\n  book: {hue: [200, 220], saturation: [0.5, 0.7], value: [0.4, 0.6], roughness: [0.2, 0.4]}\n"
        "  bottle: {texture: textures/red.png, roughness: [0.7, 0.9]}\n",
    )
    prepared = prepare_batch(batch, tmp_path / "assets", progress=False)
    book = next(a for a in prepared.assets if a.class_name == "book")
    bottle = next(a for a in prepared.assets if a.class_name == "bottle")
    assert book.look is not None and tuple(book.look["hue"]) == (200, 220)
    assert bottle.look is None and bottle.own_appearance  # the bottle has its own texture: it keeps it
    stage = Usd.Stage.Open(str(prepared.asset_path(book)))
    material = next(UsdShade.Material(p) for p in stage.Traverse() if p.IsA(UsdShade.Material))
    surface = material.ComputeSurfaceSource()[0]
    assert surface.GetInput("roughness").Get() == pytest.approx(0.3)
    color = tuple(surface.GetInput("diffuseColor").Get())
    h, s, v = hsv(color)  # type: ignore[arg-type]
    assert h == pytest.approx(210, abs=0.5) and s == pytest.approx(0.6) and v == pytest.approx(0.5)
    assert Look.from_json(material.GetPrim().GetCustomDataByKey(LOOK_CUSTOM_DATA_KEY)).hue == (200.0, 220.0)
    # The sampler draws the book's colours inside its look, from the batch plan and from the USD meshes alike.
    spec = load_spec(overrides={"objects_per_frame": [2, 3], "width": 64, "height": 64})
    index = prepared.assets.index(book)
    from isaac_jobs.shards import scene_plans

    plans = scene_plans(prepared, spec, range(20))
    for material_plan in (o.material for p in plans for o in p.objects if o.asset == index):
        assert material_plan is not None and material_plan.color is not None
        assert 200 - 1e-6 <= hsv(material_plan.color)[0] <= 220 + 1e-6
        assert 0.2 <= material_plan.roughness <= 0.4
    with GLRenderer(prepared.load_meshes(), prepared.class_names, spec) as renderer:
        assert [renderer.scene_plan(i) for i in range(20)] == plans


def test_a_colourless_mesh_takes_a_class_texture_with_box_projected_uvs(tmp_path: Path) -> None:
    batch = make_batch(tmp_path, "looks:\n  book: {texture: textures/red.png}\n")
    prepared = prepare_batch(batch, tmp_path / "assets", progress=False)
    book = next(a for a in prepared.assets if a.class_name == "book")
    assert book.own_appearance and book.look is not None
    assert any(f.path.endswith("_basecolor.png") for f in book.files)
    mesh = next(m for m in prepared.load_meshes() if m.class_name == "book")
    assert mesh.texture is not None and mesh.uvs is not None
    assert tuple(mesh.texture.reshape(-1, mesh.texture.shape[-1])[0][:3]) == (200, 30, 30)


@pytest.mark.parametrize(
    ("looks", "message"),
    [
        ("looks:\n  book: {hue: [0, 400]}\n", "looks\\['book'\\].hue"),
        ("looks:\n  book: {glossiness: [0, 1]}\n", "unknown key 'glossiness'"),
        ("looks:\n  plate: {value: [0.2, 0.3]}\n", "no class of that name"),
        ("looks:\n  book: {texture: textures/missing.png}\n", "texture"),
        ("looks:\n  book: {texture: book/book.stl}\n", "must be one of .png"),
    ],
)
def test_a_bad_look_stops_the_batch_with_a_message_naming_it(tmp_path: Path, looks: str, message: str) -> None:
    batch = make_batch(tmp_path, looks)
    with pytest.raises(BatchConfigError, match=message):
        prepare_batch(batch, tmp_path / "assets", progress=False)


def test_resting_poses_cover_every_face_more_often_the_larger_ones() -> None:
    draw = sampler([AssetTraits((1.0, 0.5, 0.1), False)], ground_plane_probability=1.0, resting_probability=1.0)
    faces = [o.rotation_deg[:2] for i in range(200) for o in draw.plan(i).objects]
    flat = sum(face in STABLE_ROTATIONS[:2] for face in faces)  # the 1.0 x 0.5 faces down
    edge = sum(face in STABLE_ROTATIONS[4:] for face in faces)  # the 0.5 x 0.1 faces down
    assert flat > 4 * edge and edge > 0


def test_the_ground_hides_what_is_on_its_other_side_and_boxes_follow(renderers, box_mesh) -> None:
    # A camera below the plane sees its underside: the object resting on it is hidden (id 0), so no box.
    below = {"camera_elevation_deg": [-30, -30], "ground_height": -0.05, "position_z": [0, 0]}
    hidden, plan = render(renderers, box_mesh, ground_plane_probability=1.0, **below)
    seen, _ = render(renderers, box_mesh, ground_plane_probability=0.0, **below)
    assert plan.ground is not None and plan.camera.eye[2] < plan.ground.height
    assert not (hidden.ids == 1).any() and hidden.boxes == []
    assert (seen.ids == 1).any() and len(seen.boxes) == 1
