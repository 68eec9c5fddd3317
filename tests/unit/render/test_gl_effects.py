"""The GL backend's camera effects run as GPU passes: the same pixels as the CPU formulas they replace."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from isaac_jobs.backends.gl import GLRenderer
from isaac_jobs.camera_effects import apply_camera_effects
from isaac_jobs.scene import ScenePlan


def with_effects(plan: ScenePlan, **effects: float) -> ScenePlan:
    realism = dataclasses.replace(plan.realism, **{"defocus_px": 0.0, "motion_blur_px": 0.0, **effects})
    return dataclasses.replace(plan, realism=realism)


EFFECTS = [
    ({"defocus_px": 1.3}, 1),  # PIL's fixed-point box blur rounds per pass: at most one level apart
    ({"defocus_px": 0.6}, 1),
    ({"motion_blur_px": 5.0, "motion_blur_angle": 0.7}, 0),  # integer mean of the same taps: exact
    ({"motion_blur_px": 6.0, "motion_blur_angle": 0.0}, 0),
    ({"defocus_px": 0.8, "motion_blur_px": 3.4, "motion_blur_angle": 2.5}, 1),
]


@pytest.fixture
def renderer(meshes, class_names, small_spec):
    made = GLRenderer(meshes, class_names, small_spec(objects_per_frame=[3, 4], width=160, height=120))
    yield made
    made.close()


@pytest.mark.parametrize(("effects", "tolerance"), EFFECTS)
def test_gpu_camera_effects_match_the_cpu_formulas(renderer, effects, tolerance) -> None:
    for frame in range(3):
        plan = renderer.scene_plan(frame)
        sharp = renderer.render_image(with_effects(plan))
        expected = apply_camera_effects(sharp, with_effects(plan, **effects).realism)
        on_gpu = renderer.render_image(with_effects(plan, **effects))
        difference = np.abs(on_gpu.astype(int) - expected.astype(int))
        assert difference.max() <= tolerance
        assert (difference > 0).mean() < 0.05
        assert np.abs(expected.astype(int) - sharp.astype(int)).mean() > 1.0  # the effect itself changed the frame


def test_blurred_frames_keep_the_sharp_boxes_and_id_image(renderer) -> None:
    plan = renderer.scene_plan(1)
    sharp = renderer.render_detailed(with_effects(plan))
    blurred = renderer.render_detailed(with_effects(plan, defocus_px=2.0, motion_blur_px=6.0, motion_blur_angle=1.0))
    assert blurred.boxes == sharp.boxes and sharp.boxes
    assert np.array_equal(blurred.ids, sharp.ids)
    assert [o.alone_pixels for o in blurred.objects] == [o.alone_pixels for o in sharp.objects]
    rgb, boxes = renderer.render_frame(with_effects(plan, defocus_px=2.0))
    assert boxes == sharp.boxes
    assert not np.array_equal(rgb, sharp.rgb)
