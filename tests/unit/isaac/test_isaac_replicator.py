"""The pure parts of the Isaac Replicator backend: arguments, spec -> Replicator mapping, image jitter."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from isaac_jobs.backends import isaac_replicator as ir
from isaac_jobs.dataset import frames_for_shard
from isaac_jobs.spec import load_spec

REPO = Path(__file__).resolve().parents[3]


def test_module_imports_without_isaac_sim() -> None:
    code = (
        "import sys, isaac_jobs.backends.isaac_replicator as m; "
        "bad = [n for n in sys.modules if n.split('.')[0] in ('omni', 'pxr', 'carb', 'isaacsim')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_parse_args(tmp_path: Path) -> None:
    args = ir.parse_args(["--meshes", str(tmp_path), "--out", str(tmp_path / "o"), "--shard", "1", "--shards", "3"])
    assert (args.shard, args.shards, args.config, args.frames) == (1, 3, None, None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard", "3", "--shards", "3"], "--shard 3: must be in 0..2"),
        (["--shards", "0"], "--shards 0"),
        (["--frames", "0"], "--frames 0"),
        (["--config", "/nonexistent.yaml"], "--config /nonexistent.yaml: no such file"),
    ],
)
def test_parse_args_names_the_bad_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        ir.parse_args(["--meshes", str(tmp_path), "--out", str(tmp_path / "o"), *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_parse_args_refuses_a_missing_meshes_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ir.parse_args(["--meshes", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert "not a folder" in capsys.readouterr().err


def test_command_runs_this_module_with_isaac_python(tmp_path: Path) -> None:
    argv = ir.command(tmp_path / "m", tmp_path / "o", shard=2, shards=4, config=tmp_path / "c.yaml")
    assert argv[:3] == [ir.ISAAC_PYTHON, "-m", "isaac_jobs.backends.isaac_replicator"]
    parsed = ir.build_parser().parse_args(argv[3:])
    assert (parsed.shard, parsed.shards, parsed.config) == (2, 4, tmp_path / "c.yaml")


@pytest.mark.parametrize(("fov", "width", "height"), [(40.0, 640, 640), (60.0, 1280, 720), (25.0, 96, 160)])
def test_focal_length_gives_the_vertical_fov(fov: float, width: int, height: int) -> None:
    focal = ir.focal_length_for_fov(fov, width, height)
    vertical_aperture = ir.HORIZONTAL_APERTURE_MM * height / width
    assert math.degrees(2 * math.atan(vertical_aperture / (2 * focal))) == pytest.approx(fov)


def test_camera_follows_the_spec_ranges_and_depends_only_on_seed_and_frame() -> None:
    spec = load_spec(None, {"camera_target_jitter": 0.0, "seed": 7})
    for frame in range(20):
        pose = ir.camera_for_frame(spec, frame)
        eye = np.array(pose.eye)
        distance = float(np.linalg.norm(eye))
        elevation = math.degrees(math.asin(eye[2] / distance))
        assert spec.camera_distance[0] <= distance <= spec.camera_distance[1]
        assert spec.camera_elevation_deg[0] - 1e-9 <= elevation <= spec.camera_elevation_deg[1] + 1e-9
        assert spec.camera_fov_deg[0] <= pose.vertical_fov_deg <= spec.camera_fov_deg[1]
        assert pose.target == (0.0, 0.0, 0.0)
    assert ir.camera_for_frame(spec, 3) == ir.camera_for_frame(spec, 3)
    assert ir.camera_for_frame(spec, 3) != ir.camera_for_frame(spec, 4)
    other_seed = load_spec(None, {"camera_target_jitter": 0.0, "seed": 8})
    assert ir.camera_for_frame(other_seed, 3) != ir.camera_for_frame(spec, 3)


def test_plan_covers_the_shards_frames_with_the_same_cameras_whatever_the_split() -> None:
    spec = load_spec(None, {"frames": 10})
    whole = ir.plan_replicator(spec, shard=0, shards=1, mesh_count=3)
    parts = [ir.plan_replicator(spec, shard=k, shards=3, mesh_count=3) for k in range(3)]
    assert [p.frame_indices for p in parts] == [tuple(frames_for_shard(10, k, 3)) for k in range(3)]
    assert sum((p.cameras for p in parts), ()) == whole.cameras
    assert len({p.global_seed for p in parts}) == 3
    assert ir.plan_replicator(spec, shard=1, shards=3, mesh_count=3).global_seed == parts[1].global_seed


def test_plan_maps_counts_ranges_and_lights() -> None:
    spec = load_spec(
        None,
        {
            "objects_per_frame": [1, 5],
            "distractors_per_frame": [0, 4],
            "distractor_shapes": ["capsule", "box"],
            "light_count": [1, 3],
            "light_intensity": [0.5, 1.0],
            "light_elevation_deg": [20, 80],
            "light_azimuth_deg": [-90, 90],
            "light_color_jitter": 0.2,
            "object_size": [0.1, 0.2],
            "width": 320,
            "height": 240,
        },
    )
    plan = ir.plan_replicator(spec, shard=0, shards=1, mesh_count=2)
    assert plan.resolution == (320, 240)
    assert plan.copies_per_mesh == 3  # 5 objects at most from 2 meshes
    assert plan.object_visible_probability == pytest.approx(3.0 / 6.0)
    assert plan.object_size == (0.1, 0.2)
    assert plan.position_min == (spec.position_x[0], spec.position_y[0], spec.position_z[0])
    assert plan.rotation_max == (spec.rotation_roll_deg[1], spec.rotation_pitch_deg[1], spec.rotation_yaw_deg[1])
    assert plan.distractor_shapes == ("cylinder", "cube", "cylinder", "cube")
    assert plan.distractor_visible_probability == pytest.approx(0.5)
    assert plan.light_slots == 3
    assert plan.light_visible_probability == pytest.approx(2.0 / 3.0)
    assert plan.light_intensity == (0.5 * ir.DISTANT_LIGHT_UNIT, 1.0 * ir.DISTANT_LIGHT_UNIT)
    assert plan.light_rotation_min == (10.0, 0.0, -90.0)  # 90 - highest elevation
    assert plan.light_rotation_max == (70.0, 0.0, 90.0)
    assert plan.light_color_min == pytest.approx((0.8, 0.8, 0.8))


def test_plan_without_distractors_or_lights() -> None:
    spec = load_spec(None, {"distractors_per_frame": [0, 0], "light_count": [0, 0]})
    plan = ir.plan_replicator(spec, shard=0, shards=1, mesh_count=1)
    assert plan.distractor_shapes == ()
    assert plan.distractor_visible_probability == 0.0
    assert plan.light_slots == 0


def test_plan_needs_a_mesh() -> None:
    with pytest.raises(ValueError, match="no meshes"):
        ir.plan_replicator(load_spec(), shard=0, shards=1, mesh_count=0)


def test_image_jitter_is_reproducible_per_frame_and_identity_at_neutral_settings() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    spec = load_spec()
    first = ir.jitter_image(rgb, spec, 5)
    assert first.shape == rgb.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, ir.jitter_image(rgb, spec, 5))
    assert not np.array_equal(first, ir.jitter_image(rgb, spec, 6))
    neutral = load_spec(
        None,
        {
            "image_brightness": [1, 1],
            "image_contrast": [1, 1],
            "image_saturation": [1, 1],
            "image_noise": [0, 0],
        },
    )
    np.testing.assert_array_equal(ir.jitter_image(rgb, neutral, 5), rgb)


def test_background_textures_include_user_images_and_procedural_kinds(tmp_path: Path) -> None:
    from PIL import Image

    user = tmp_path / "user"
    user.mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(user / "a.jpg")
    (user / "notes.txt").write_text("not an image")
    spec = load_spec(None, {"background_images_dir": str(user), "backgrounds": ["checker", "solid"]})
    textures = ir.background_textures(spec, tmp_path / "tex", size=(32, 16))
    assert textures[0] == user / "a.jpg"
    assert len(textures) == 1 + 2 * ir.BACKGROUND_TEXTURES
    for path in textures[1:]:
        with Image.open(path) as image:
            assert image.size == (32, 16)


def test_every_procedural_kind_draws() -> None:
    rng = np.random.default_rng(0)
    for kind in ("gradient", "noise", "checker", "stripes", "solid"):
        image = ir.procedural_background(kind, 40, 20, rng)
        assert image.shape == (20, 40, 3) and image.dtype == np.uint8
    with pytest.raises(ValueError, match="unknown procedural background"):
        ir.procedural_background("plasma", 4, 4, rng)
