"""One scene plan per (seed, frame), whichever backend consumes it, and the Isaac backend's numpy stand-ins for
GL shader work (background, image jitter) reproduce the GL picture for the same plan."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from isaac_jobs.backends import isaac_replicator as ir
from isaac_jobs.backends.gl import GLRenderer
from isaac_jobs.dataset import frames_for_shard
from isaac_jobs.prepare import PreparedBatch, prepare_batch
from isaac_jobs.scene import ScenePlan
from isaac_jobs.shards import isaac_request, scene_plans
from isaac_jobs.spec import load_spec

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> PreparedBatch:
    return prepare_batch(REPO / "samples" / "meshes", tmp_path_factory.mktemp("assets") / "assets", progress=False)


def test_the_plan_of_a_frame_is_the_same_for_both_backends_and_any_shard_split(
    prepared: PreparedBatch, tmp_path: Path
) -> None:
    spec = load_spec(None, {"width": 96, "height": 64, "frames": 9, "distractors_per_frame": [1, 3]})
    frames = frames_for_shard(spec.frames, 1, 3)
    plans = scene_plans(prepared, spec, frames)
    # What the Isaac script receives: the plans written to its request file and read back in its process.
    request = ir.read_request(ir.write_request(tmp_path / "request.json", isaac_request(prepared, spec, plans)))
    assert list(request.plans) == plans
    assert [a.path for a in request.assets] == [str(prepared.asset_path(a).resolve()) for a in prepared.assets]
    # What the GL backend renders: its renderer built from the USD assets, as render_prepared builds it.
    renderer = GLRenderer(prepared.load_meshes(), prepared.class_names, spec)
    try:
        assert [renderer.scene_plan(i) for i in frames] == plans
        rgb_from_plan, boxes_from_plan = renderer.render_frame(plans[0])
        rgb_from_index, boxes_from_index = renderer.render_frame(frames[0])
        np.testing.assert_array_equal(rgb_from_plan, rgb_from_index)
        assert boxes_from_plan == boxes_from_index
    finally:
        renderer.close()
    # A frame's plan depends on (seed, frame) only: the whole run draws the same plans for these frames.
    whole = scene_plans(prepared, spec, range(spec.frames))
    assert [whole[i] for i in frames] == plans
    assert scene_plans(prepared, replace(spec, seed=spec.seed + 1), frames) != plans
    assert all(ScenePlan.from_dict(plan.to_dict()) == plan for plan in plans)


@pytest.mark.parametrize("kind", ["gradient", "noise", "checker", "stripes", "solid"])
def test_numpy_background_and_jitter_reproduce_the_gl_shader(prepared: PreparedBatch, kind: str) -> None:
    spec = load_spec(
        None,
        {
            "width": 96,
            "height": 72,
            "backgrounds": [kind],
            "image_noise": [0.02, 0.05],
            "objects_per_frame": [1, 2],
            # The background alone: no ground plane in front of it, no exposure or blur on top of it.
            "ground_plane_probability": 0.0,
            "exposure_ev": [0, 0],
            "defocus_probability": 0.0,
            "motion_blur_probability": 0.0,
        },
    )
    renderer = GLRenderer(prepared.load_meshes(), prepared.class_names, spec)
    try:
        for frame_index in range(2):
            frame = renderer.render_detailed(frame_index)
            plan = renderer.scene_plan(frame_index)
            background = ir.background_image(plan.background, spec.width, spec.height, plan.image.noise_seed)
            expected = ir.jitter_image(background, plan.image)
            seen = frame.ids == 0  # background pixels
            assert seen.mean() > 0.3
            difference = np.abs(frame.rgb.astype(int) - expected.astype(int))[seen]
            # float32 on the GPU vs float64 here, and one rounding less: a few levels on rare pixels at most.
            assert np.mean(difference <= 2) > 0.98, kind
    finally:
        renderer.close()
