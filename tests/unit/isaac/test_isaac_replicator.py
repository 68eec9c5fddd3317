"""The pure parts of the Isaac Replicator backend: arguments, the request, plans -> Replicator mapping, numpy jitter.

The mapping is checked against USD's own transform semantics (usd-core composes the xformOps Replicator
authors), so an object or light posed by the schedule sits exactly where the GL backend draws it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from isaac_jobs.backends import isaac_replicator as ir
from isaac_jobs.scene import SceneSampler, direction, model_matrix
from isaac_jobs.spec import load_spec

REPO = Path(__file__).resolve().parents[3]
ASSETS = (
    ir.RequestAsset("/assets/mug/mug.usd", (0.01, -0.02, 0.05), 0.12),
    ir.RequestAsset("/assets/can/can.usd", (0.0, 0.0, 0.06), 0.12),
    ir.RequestAsset("/assets/book/book.usd", (0.1, 0.07, 0.015), 0.2),
)


def request_for(frames: range, **overrides: object) -> ir.RenderRequest:
    spec = load_spec(None, {"width": 320, "height": 240, **overrides})
    sampler = SceneSampler(spec, [0, 1, 1])  # asset 0 is class 0; assets 1 and 2 share class 1
    return ir.RenderRequest(resolution=(320, 240), assets=ASSETS, plans=tuple(sampler.plan(i) for i in frames))


def test_module_imports_without_isaac_sim() -> None:
    code = (
        "import sys, isaac_jobs.backends.isaac_replicator as m; "
        "bad = [n for n in sys.modules if n.split('.')[0] in ('omni', 'pxr', 'carb', 'isaacsim')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_command_and_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = ir.write_request(tmp_path / "request.json", request_for(range(2)))
    argv = ir.command(request, tmp_path / "work", progress=False)
    assert argv[:3] == [ir.ISAAC_PYTHON, "-m", "isaac_jobs.backends.isaac_replicator"]
    parsed = ir.parse_args(argv[3:])
    assert (parsed.request, parsed.out, parsed.no_progress) == (request, tmp_path / "work", True)
    with pytest.raises(SystemExit) as exit_info:
        ir.parse_args(["--request", str(tmp_path / "none.json"), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "none.json: no such file" in capsys.readouterr().err


def test_the_request_survives_its_file_unchanged(tmp_path: Path) -> None:
    request = request_for(range(5, 9), background_images_dir=str(REPO / "samples"))
    assert ir.read_request(ir.write_request(tmp_path / "r.json", request)) == request
    data = request.to_dict()
    data["format"] = 99
    with pytest.raises(ValueError, match="format 99"):
        ir.RenderRequest.from_dict(json.loads(json.dumps(data)))


@pytest.mark.parametrize(("fov", "width", "height"), [(40.0, 640, 640), (60.0, 1280, 720), (25.0, 96, 160)])
def test_focal_length_gives_the_vertical_fov(fov: float, width: int, height: int) -> None:
    focal = ir.focal_length_for_fov(fov, width, height)
    vertical_aperture = ir.HORIZONTAL_APERTURE_MM * height / width
    assert math.degrees(2 * math.atan(vertical_aperture / (2 * focal))) == pytest.approx(fov)


def _usd_matrix(translate: tuple[float, ...], rotate_xyz: tuple[float, ...], scale: tuple[float, ...]) -> np.ndarray:
    """What USD makes of Replicator's pose ops (translate, rotateXYZ, scale), as a column-vector matrix."""
    from pxr import Gf, Usd, UsdGeom

    stage = Usd.Stage.CreateInMemory()
    xform = UsdGeom.Xform.Define(stage, "/prim")
    xform.AddTranslateOp().Set(Gf.Vec3d(*translate))
    xform.AddRotateXYZOp().Set(Gf.Vec3f(*rotate_xyz))
    xform.AddScaleOp().Set(Gf.Vec3f(*scale))
    return np.array(xform.ComputeLocalToWorldTransform(Usd.TimeCode.Default()), dtype=np.float64).T


def test_objects_get_one_prim_per_copy_posed_exactly_as_the_gl_backend_places_them() -> None:
    request = request_for(range(12), objects_per_frame=[2, 6])
    schedule = ir.replicator_schedule(request)
    assert schedule.frame_indices == tuple(range(12))
    for asset in range(len(ASSETS)):
        most = max(sum(o.asset == asset for o in plan.objects) for plan in request.plans)
        assert sum(slot.asset == asset for slot in schedule.objects) == most
    for frame, plan in enumerate(request.plans):
        shown = [slot for slot in schedule.objects if slot.frames.visible[frame]]
        assert sorted(slot.asset for slot in shown) == sorted(o.asset for o in plan.objects)
        for asset in range(len(ASSETS)):
            slots = [slot for slot in shown if slot.asset == asset]
            objects = [o for o in plan.objects if o.asset == asset]
            for slot, obj in zip(slots, objects, strict=True):
                frames = slot.frames
                s = frames.scale[frame]
                usd = _usd_matrix(frames.position[frame], frames.rotation[frame], (s, s, s))
                gl = model_matrix(
                    obj.size, obj.rotation_deg, obj.position, ASSETS[asset].center, ASSETS[asset].longest_side
                )
                np.testing.assert_allclose(usd, gl, atol=1e-5)


def test_distractors_lights_dome_and_camera_follow_the_plans() -> None:
    request = request_for(
        range(10),
        distractors_per_frame=[1, 4],
        distractor_shapes=["capsule", "box"],
        light_count=[1, 3],
        light_color_jitter=0.2,
    )
    schedule = ir.replicator_schedule(request)
    assert {slot.shape for slot in schedule.distractors} <= {"cylinder", "cube"}
    assert len(schedule.lights) == max(len(plan.lights) for plan in request.plans)
    for frame, plan in enumerate(request.plans):
        assert sum(slot.frames.visible[frame] for slot in schedule.distractors) == len(plan.distractors)
        shown = {
            (slot.frames.position[frame], slot.frames.scale[frame], slot.frames.color[frame])
            for slot in schedule.distractors
            if slot.frames.visible[frame]
        }
        assert shown == {(d.position, d.size, d.color) for d in plan.distractors}
        lights = [light for light in schedule.lights if light.visible[frame]]
        assert len(lights) == len(plan.lights)
        for slot, light in zip(lights, plan.lights, strict=True):
            # The prim's +Z (towards the light) points where the GL backend's light comes from.
            towards = _usd_matrix((0, 0, 0), slot.rotation[frame], (1, 1, 1))[:3, 2]
            np.testing.assert_allclose(towards, direction(light.elevation_deg, light.azimuth_deg), atol=1e-5)
            color = np.asarray(slot.color[frame]) * slot.intensity[frame] / ir.DISTANT_LIGHT_UNIT
            np.testing.assert_allclose(color, light.color, rtol=1e-6)
        assert schedule.dome_intensity[frame] == pytest.approx(plan.ambient * ir.DOME_LIGHT_UNIT)
        assert schedule.camera_eye[frame] == plan.camera.eye
        assert schedule.camera_target[frame] == plan.camera.target
        fov = plan.camera.vertical_fov_deg
        assert schedule.focal_length_mm[frame] == pytest.approx(ir.focal_length_for_fov(fov, 320, 240))
        assert schedule.backgrounds[frame] == plan.background


def test_a_request_without_assets_is_refused() -> None:
    request = request_for(range(1))
    with pytest.raises(ValueError, match="no assets"):
        ir.replicator_schedule(ir.RenderRequest(request.resolution, (), request.plans))


def test_image_jitter_is_the_identity_at_neutral_settings_and_reproducible() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    plan = request_for(range(1)).plans[0]
    neutral = type(plan.image)(brightness=1.0, contrast=1.0, saturation=1.0, noise=0.0, noise_seed=3)
    np.testing.assert_array_equal(ir.jitter_image(rgb, neutral), rgb)
    noisy = type(plan.image)(brightness=1.1, contrast=0.9, saturation=1.2, noise=0.05, noise_seed=3)
    first = ir.jitter_image(rgb, noisy)
    np.testing.assert_array_equal(first, ir.jitter_image(rgb, noisy))
    assert not np.array_equal(first, rgb)


def test_dome_textures_draw_every_kind_and_crop_user_images(tmp_path: Path) -> None:
    from dataclasses import replace

    from PIL import Image

    background = request_for(range(1)).plans[0].background
    for kind in ("gradient", "noise", "checker", "stripes", "solid"):
        image = ir.dome_texture(replace(background, kind=kind, image=None, crop=None), 7, size=(40, 20))
        assert image.shape == (20, 40, 3) and image.dtype == np.uint8
    picture = np.zeros((10, 20, 3), np.uint8)
    picture[:, 10:] = 255  # right half white
    Image.fromarray(picture).save(tmp_path / "half.png")
    left = replace(background, kind="image", image=str(tmp_path / "half.png"), crop=(0.0, 0.0, 0.5, 1.0))
    assert ir.dome_texture(left, 7, size=(8, 4)).max() == 0
    mirrored = replace(left, crop=(1.0, 0.0, -0.5, 1.0))  # the right half, mirrored
    assert ir.dome_texture(mirrored, 7, size=(8, 4)).min() == 255
    unreadable = replace(left, image=str(tmp_path / "missing.png"))
    fallback = replace(unreadable, kind=background.fallback_kind, image=None, crop=None)
    np.testing.assert_array_equal(
        ir.dome_texture(unreadable, 7, size=(8, 4)), ir.dome_texture(fallback, 7, size=(8, 4))
    )


def test_the_realism_fields_reach_the_replicator_schedule() -> None:
    from isaac_jobs.appearance import AssetTraits

    spec = load_spec(None, {"width": 320, "height": 240, "ground_plane_probability": 0.5, "objects_per_frame": [2, 4]})
    # Asset 0 has no colour of its own (gets planned looks); assets 1 and 2 keep their textures.
    traits = [AssetTraits((0.1, 0.1, 0.1), False), AssetTraits((0.1, 0.1, 0.1), True), AssetTraits((1, 1, 1), True)]
    sampler = SceneSampler(spec, [0, 1, 1], traits)
    plans = tuple(sampler.plan(i) for i in range(12))
    schedule = ir.replicator_schedule(ir.RenderRequest(resolution=(320, 240), assets=ASSETS, plans=plans))
    for slot in schedule.objects:
        assert slot.recolor == (slot.asset == 0)
    # Each visible copy of the colourless asset shows its planned look, frame by frame and copy by copy.
    looks = [[o.material.color for o in plan.objects if o.asset == 0 and o.material] for plan in plans]
    copies = [slot for slot in schedule.objects if slot.asset == 0]
    for frame, planned in enumerate(looks):
        shown = [slot.frames.color[frame] for slot in copies if slot.frames.visible[frame]]
        assert shown == planned
    assert schedule.ground.visible == tuple(plan.ground is not None for plan in plans)
    assert 0 < sum(schedule.ground.visible) < len(plans)
    for frame, plan in enumerate(plans):
        if plan.ground is not None:
            assert schedule.ground.height[frame] == plan.ground.height
            assert schedule.ground.color[frame] == plan.ground.material.color
        for slot, kelvin in enumerate(schedule.light_temperature_k):
            expected = plan.lights[slot].temperature_k if slot < len(plan.lights) else None
            assert kelvin[frame] == expected


def test_finish_frame_applies_exposure_and_camera_effects_as_the_gl_backend_does() -> None:
    from dataclasses import replace

    from isaac_jobs.camera_effects import apply_camera_effects

    plan = SceneSampler(load_spec(None, {"width": 32, "height": 24}), [0]).plan(0)
    plan = replace(plan, realism=replace(plan.realism, exposure=1.5, defocus_px=1.0, motion_blur_px=0.0))
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    exposed = replace(plan.image, brightness=plan.image.brightness * 1.5)
    expected = apply_camera_effects(ir.jitter_image(rgb, exposed), plan.realism)
    np.testing.assert_array_equal(ir.finish_frame(rgb, plan), expected)
    assert not np.array_equal(ir.finish_frame(rgb, plan), ir.jitter_image(rgb, plan.image))
