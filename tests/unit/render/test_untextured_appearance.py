"""Meshes without a look of their own get a random colour and surface per instance (scene spec ``untextured_*``)."""

from __future__ import annotations

import colorsys
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from isaac_jobs.backends.gl import DEFAULT_SHININESS, GLRenderer, shininess_from_roughness, untextured_appearance
from isaac_jobs.mesh import Mesh
from isaac_jobs.spec import SceneSpec, SpecError, load_spec

# One object filling the middle of the frame, lit by the ambient term only, with every other jitter neutral:
# its pixels are then its albedo.
ALBEDO_ONLY = {
    "camera_distance": [1.5, 1.5],
    "camera_elevation_deg": [0, 0],
    "camera_azimuth_deg": [0, 0],
    "camera_roll_deg": [0, 0],
    "camera_fov_deg": [40, 40],
    "camera_target_jitter": 0.0,
    "distractors_per_frame": [0, 0],
    "objects_per_frame": [1, 1],
    "position_x": [0, 0],
    "position_y": [0, 0],
    "position_z": [0, 0],
    "object_size": [0.6, 0.6],
    "backgrounds": ["solid"],
    "light_count": [0, 0],
    "ambient_intensity": [1, 1],
    "object_brightness": [1, 1],
    "object_saturation": [1, 1],
    "object_hue_shift_deg": [0, 0],
    "image_brightness": [1, 1],
    "image_contrast": [1, 1],
    "image_saturation": [1, 1],
    "image_noise": [0, 0],
}


@pytest.fixture
def renderer_for() -> Iterator[Callable[[list[Mesh], list[str], SceneSpec], GLRenderer]]:
    made: list[GLRenderer] = []

    def make(meshes: list[Mesh], class_names: list[str], spec: SceneSpec) -> GLRenderer:
        made.append(GLRenderer(meshes, class_names, spec))
        return made[-1]

    yield make
    for renderer in made:
        renderer.close()


def _object_colour(renderer: GLRenderer, frame_index: int) -> np.ndarray:
    frame = renderer.render_detailed(frame_index)
    pixels = frame.rgb[frame.ids == 1].astype(float)
    assert len(pixels) > 200
    return np.median(pixels, axis=0)


def test_defaults_are_random_over_the_documented_ranges() -> None:
    spec = load_spec()
    assert spec.untextured_appearance == "random"
    assert spec.untextured_hue_deg == (0, 360) and spec.untextured_saturation == (0, 1)
    assert spec.untextured_value == (0.15, 1) and spec.untextured_roughness == (0.15, 0.9)
    assert spec.untextured_metallic == (0, 0.4)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("untextured_appearance", "rainbow", "'rainbow' is not one of random, none"),
        ("untextured_saturation", [0, 1.5], "untextured_saturation[1]: 1.5 is outside [0, 1]"),
        ("untextured_value", [0.9, 0.2], "min 0.9 is greater than max 0.2"),
        ("untextured_hue_deg", [0, 400], "outside [0, 360]"),
        ("untextured_metallic", 0.5, "expected a range"),
    ],
)
def test_bad_values_name_the_setting(key: str, value: object, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(overrides={key: value})
    assert fragment in str(caught.value) and key in str(caught.value)


def test_draws_honour_the_ranges() -> None:
    spec = load_spec(
        overrides={
            "untextured_hue_deg": [90, 150],
            "untextured_saturation": [0.4, 0.6],
            "untextured_value": [0.3, 0.5],
            "untextured_roughness": [0.5, 0.8],
            "untextured_metallic": [0.1, 0.2],
        }
    )
    rng = np.random.default_rng(0)
    hues = []
    for _ in range(500):
        rgb, (shininess, metallic) = untextured_appearance(rng, spec)
        hue, saturation, value = colorsys.rgb_to_hsv(*rgb)
        hues.append(hue * 360)
        assert 90 - 1e-6 <= hue * 360 <= 150 + 1e-6
        assert 0.4 - 1e-9 <= saturation <= 0.6 + 1e-9 and 0.3 - 1e-9 <= value <= 0.5 + 1e-9
        assert shininess_from_roughness(0.8) <= shininess <= shininess_from_roughness(0.5)
        assert 0.1 <= metallic <= 0.2
    assert max(hues) - min(hues) > 50  # the range is used, not one value of it
    assert shininess_from_roughness(1.0) == 1.0 and shininess_from_roughness(0.0) == 1024.0


def test_a_colourless_mesh_renders_in_the_drawn_colour(meshes, class_names, renderer_for) -> None:
    box = next(m for m in meshes if m.name == "box")
    assert not box.has_appearance
    green = load_spec(
        overrides={
            **ALBEDO_ONLY,
            "width": 128,
            "height": 96,
            "untextured_hue_deg": [120, 120],
            "untextured_saturation": [1, 1],
            "untextured_value": [1, 1],
            "untextured_metallic": [0, 0],
        }
    )
    np.testing.assert_allclose(_object_colour(renderer_for([box], ["box"], green), 0), [0, 255, 0], atol=2)
    grey = load_spec(overrides={**ALBEDO_ONLY, "width": 128, "height": 96, "untextured_appearance": "none"})
    np.testing.assert_allclose(_object_colour(renderer_for([box], ["box"], grey), 0), [0.7 * 255] * 3, atol=2)


def test_colours_are_seeded_per_frame_and_vary_between_instances(meshes, renderer_for) -> None:
    box = next(m for m in meshes if m.name == "box")
    spec = load_spec(overrides={**ALBEDO_ONLY, "width": 128, "height": 96, "seed": 3})
    first = renderer_for([box], ["box"], spec)
    colours = [_object_colour(first, frame) for frame in range(6)]
    again = renderer_for([box], ["box"], spec)
    np.testing.assert_array_equal(_object_colour(again, 4), colours[4])  # same (seed, frame), other history
    assert len({tuple(np.round(c)) for c in colours}) == 6
    other_seed = renderer_for([box], ["box"], load_spec(overrides={**ALBEDO_ONLY, "width": 128, "height": 96}))
    assert not np.array_equal(_object_colour(other_seed, 4), colours[4])


def test_meshes_with_their_own_look_keep_it(meshes, renderer_for) -> None:
    own = [m for m in meshes if m.name != "box"]  # vertex-coloured ball, textured tube
    assert all(m.has_appearance for m in own)
    frames = {}
    for appearance in ("random", "none"):
        spec = load_spec(overrides={**ALBEDO_ONLY, "width": 128, "height": 96, "untextured_appearance": appearance})
        renderer = renderer_for(own, [m.class_name for m in own], spec)
        frames[appearance] = [renderer.render_detailed(i).rgb for i in range(4)]
    for random_frame, plain_frame in zip(frames["random"], frames["none"], strict=True):
        np.testing.assert_array_equal(random_frame, plain_frame)
    assert DEFAULT_SHININESS == 32.0
