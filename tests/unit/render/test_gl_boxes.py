"""Boxes of the GL backend against its own object-id image, recomputed independently here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import trimesh

from isaac_jobs.backends.gl import GLRenderer
from isaac_jobs.mesh import Mesh
from isaac_jobs.spec import REALISM_OFF, SceneSpec

from .conftest import mesh_from_trimesh

# A fixed camera on +x looking at the origin: world +y is image right, +z image up.
FIXED_CAMERA = {
    "camera_distance": [1.5, 1.5],
    "camera_elevation_deg": [0, 0],
    "camera_azimuth_deg": [0, 0],
    "camera_roll_deg": [0, 0],
    "camera_fov_deg": [40, 40],
    "camera_target_jitter": 0.0,
    "distractors_per_frame": [0, 0],
    "min_box_side_px": 0,
    "min_visible_fraction": 0.0,
}


MIN_CONTACT_PX = 8
"""Pixel edges along which two objects' silhouettes must meet before one is taken to hide the other."""


def boxes_from_ids(ids: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    """Tight box (x_min, y_min, x_max exclusive, y_max exclusive) of every non-zero id."""
    out = {}
    for object_id in np.unique(ids):
        if object_id == 0:
            continue
        ys, xs = np.nonzero(ids == object_id)
        out[int(object_id)] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return out


@pytest.fixture
def renderer_for() -> Iterator[Callable[[list[Mesh], list[str], SceneSpec], GLRenderer]]:
    made: list[GLRenderer] = []

    def make(meshes: list[Mesh], class_names: list[str], spec: SceneSpec) -> GLRenderer:
        made.append(GLRenderer(meshes, class_names, spec))
        return made[-1]

    yield make
    for renderer in made:
        renderer.close()


def test_boxes_match_the_id_mask(meshes, class_names, small_spec, renderer_for) -> None:
    spec = small_spec(objects_per_frame=[3, 5], distractors_per_frame=[1, 3], min_box_side_px=0, min_visible_fraction=0)
    renderer = renderer_for(meshes, class_names, spec)
    checked = 0
    for frame_index in range(8):
        frame = renderer.render_detailed(frame_index)
        assert frame.rgb.shape == (96, 128, 3) and frame.rgb.dtype == np.uint8
        labelled = {o.object_id: o for o in frame.objects if o.class_id >= 0}
        distractors = {o.object_id for o in frame.objects if o.class_id < 0}
        every_id = boxes_from_ids(frame.ids)
        assert set(every_id) <= set(labelled) | distractors
        expected = {k: box for k, box in every_id.items() if k in labelled}  # distractors are never labelled
        for object_id, instance in labelled.items():
            assert instance.raw_box == expected.get(object_id)
            assert instance.visible_pixels == int(np.count_nonzero(frame.ids == object_id))
        kept = sorted(frame.boxes)
        wanted = sorted((labelled[k].class_id, *map(float, box)) for k, box in expected.items())
        assert kept == wanted  # with the drop rule off, every visible object has exactly its mask box
        checked += len(expected)
    assert checked >= 8


def test_box_is_clipped_for_an_object_partly_outside_the_image(meshes, class_names, small_spec, renderer_for) -> None:
    # Half-width of the view at 1.5 m with a 40 degree vertical FOV and 4:3 aspect: tan(20 deg) * 1.5 * 4/3.
    right_edge_y = float(np.tan(np.radians(20)) * 1.5 * 128 / 96)
    spec = small_spec(
        **FIXED_CAMERA,
        objects_per_frame=[1, 1],
        object_size=[0.4, 0.4],
        position_x=[0, 0],
        position_y=[right_edge_y, right_edge_y],
        position_z=[0, 0],
    )
    renderer = renderer_for(meshes[:1], ["box"], spec)
    frame = renderer.render_detailed(0)
    (instance,) = frame.objects
    assert instance.raw_box is not None
    x_min, _, x_max, _ = instance.raw_box
    assert x_max == 128 and 40 < x_min < 128  # reaches the right edge, starts inside
    assert frame.boxes == [(0, *map(float, instance.raw_box))]
    assert np.count_nonzero(frame.ids[:, -1]) > 0  # the object really is cut by the edge


def test_fully_hidden_and_fully_outside_objects_get_no_box(small_spec, renderer_for) -> None:
    ball = mesh_from_trimesh("ball", "ball", trimesh.creation.icosphere(subdivisions=3))
    # Two spheres around the same centre with different sizes: the smaller one is inside the larger.
    spec = small_spec(
        **FIXED_CAMERA, objects_per_frame=[2, 2], object_size=[0.1, 0.5], position_x=[0, 0], position_y=[0, 0],
        position_z=[0, 0],
    )  # fmt: skip
    renderer = renderer_for([ball], ["ball"], spec)
    frame = renderer.render_detailed(0)
    hidden = [o for o in frame.objects if o.visible_pixels == 0]
    visible = [o for o in frame.objects if o.visible_pixels > 0]
    assert len(hidden) == 1 and len(visible) == 1
    assert hidden[0].raw_box is None
    assert len(frame.boxes) == 1
    assert not np.any(frame.ids == hidden[0].object_id)

    outside = small_spec(**FIXED_CAMERA, objects_per_frame=[1, 1], position_y=[5, 5], position_x=[0, 0])
    frame = renderer_for([ball], ["ball"], outside).render_detailed(0)
    assert frame.boxes == [] and not np.any(frame.ids)


def test_visible_fraction_drives_the_drop_rule(meshes, class_names, small_spec, renderer_for) -> None:
    base = {"objects_per_frame": [4, 6], "distractors_per_frame": [2, 3], "min_box_side_px": 0}
    keep_all = renderer_for(meshes, class_names, small_spec(**base, min_visible_fraction=0.0))
    strict = renderer_for(meshes, class_names, small_spec(**base, min_visible_fraction=0.9))
    partly_hidden = 0
    for frame_index in range(6):
        frame = keep_all.render_detailed(frame_index)
        strict_boxes = strict.render_frame(frame_index)[1]
        visible = [o for o in frame.objects if o.object_id > 0 and o.visible_pixels > 0]
        for instance in visible:
            assert 0.0 < instance.visible_fraction <= 1.0
            if instance.alone_pixels is not None:
                assert instance.alone_pixels >= instance.visible_pixels
        partly_hidden += sum(o.visible_fraction < 0.9 for o in visible)
        assert len(frame.boxes) == len(visible)
        assert len(strict_boxes) == sum(o.visible_fraction >= 0.9 for o in visible)
    assert partly_hidden > 0  # the scenes really had occlusion to test


def test_frames_depend_only_on_seed_and_index(meshes, class_names, small_spec, renderer_for) -> None:
    spec = small_spec(objects_per_frame=[2, 3])
    first = renderer_for(meshes, class_names, spec)
    second = renderer_for(meshes, class_names, spec)
    rgb_a, boxes_a = first.render_frame(4)
    second.render_frame(0)  # a different history must not matter
    rgb_b, boxes_b = second.render_frame(4)
    assert boxes_a == boxes_b and np.array_equal(rgb_a, rgb_b)
    rgb_c, _ = renderer_for(meshes, class_names, small_spec(objects_per_frame=[2, 3], seed=1)).render_frame(4)
    assert not np.array_equal(rgb_a, rgb_c)


def test_textured_vertex_coloured_and_flat_meshes_render_their_colours(small_spec, renderer_for, meshes) -> None:
    spec = small_spec(
        **{**FIXED_CAMERA, "distractors_per_frame": [0, 0]}, objects_per_frame=[1, 1], position_x=[0, 0],
        position_y=[0, 0], position_z=[0, 0], object_size=[0.6, 0.6], backgrounds=["solid"],
        object_hue_shift_deg=[0, 0], image_noise=[0, 0], light_count=[0, 0], ambient_intensity=[1, 1],
        **REALISM_OFF,  # no random look, no environment light: the mesh's own flat colour under flat ambient
    )  # fmt: skip
    spreads = {}
    for mesh in meshes:
        frame = renderer_for([mesh], [mesh.class_name], spec).render_detailed(0)
        pixels = frame.rgb[frame.ids == 1].astype(float)
        assert len(pixels) > 100
        spreads[mesh.name] = pixels.std(axis=0).mean()
    # Ambient light only: a flat-coloured mesh is one colour; texture and vertex colours vary over the surface.
    assert spreads["box"] < 1.0
    assert spreads["tube"] > 20 and spreads["ball"] > 20


@pytest.mark.parametrize("min_visible_fraction", [0.15, 0.5, 0.9])
def test_render_frame_keeps_exactly_the_boxes_the_exact_visible_fractions_keep(
    meshes, class_names, small_spec, renderer_for, min_visible_fraction
) -> None:
    # render_frame counts alone coverage only where the drop decision depends on it; its boxes must be those
    # the exact visible fractions (render_detailed, which counts every hidden object) keep, frame for frame.
    spec = small_spec(
        objects_per_frame=[4, 7], distractors_per_frame=[1, 3], min_box_side_px=0,
        min_visible_fraction=min_visible_fraction,
    )  # fmt: skip
    renderer = renderer_for(meshes, class_names, spec)
    hidden = dropped_for_visibility = 0
    for frame_index in range(10):
        detailed = renderer.render_detailed(frame_index)
        rgb, boxes = renderer.render_frame(frame_index)
        assert np.array_equal(rgb, detailed.rgb)
        assert boxes == detailed.boxes
        visible = [o for o in detailed.objects if o.class_id >= 0 and o.visible_pixels > 0]
        wanted = sorted(
            (o.class_id, *map(float, o.raw_box)) for o in visible if o.visible_fraction >= min_visible_fraction
        )  # type: ignore[arg-type]
        assert sorted(boxes) == wanted
        hidden += sum(o.alone_pixels is not None for o in visible)
        dropped_for_visibility += sum(o.visible_fraction < min_visible_fraction for o in visible)
    assert hidden > 0 and dropped_for_visibility > 0  # the scenes really exercised the rule


def box_from_rgb(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box of the pixels that differ from a solid background (its colour read at the image corners)."""
    corners = rgb[[0, 0, -1, -1], [0, -1, 0, -1]].astype(int)
    assert (np.ptp(corners, axis=0) <= 1).all(), "the background is not one colour"
    foreground = np.abs(rgb.astype(int) - corners[0]).max(axis=2) > 6
    ys, xs = np.nonzero(foreground)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize(("position_y", "position_z"), [(-0.35, 0.2), (0.3, -0.25)])
def test_boxes_sit_on_the_object_in_the_rgb_image(
    meshes, class_names, small_spec, renderer_for, position_y: float, position_z: float
) -> None:
    """The label box must frame the object where the RGB image shows it: an id image read back flipped or
    shifted against the RGB image would give boxes consistent with the id image and wrong for the picture."""
    spec = small_spec(
        **REALISM_OFF,  # one solid background colour around the object: no ground plane, no blur, no exposure
        **FIXED_CAMERA, objects_per_frame=[1, 1], object_size=[0.35, 0.35], position_x=[0, 0],
        position_y=[position_y, position_y], position_z=[position_z, position_z], backgrounds=["solid"],
        image_noise=[0, 0],
    )  # fmt: skip
    for mesh in meshes:
        renderer = renderer_for([mesh], [mesh.class_name], spec)
        for frame_index in range(3):
            rgb, boxes = renderer.render_frame(frame_index)
            seen = box_from_rgb(rgb)
            assert seen is not None
            (box,) = boxes
            assert box[0] == 0
            assert np.allclose(box[1:], seen, atol=1.0), (mesh.name, frame_index, box, seen)
            # The object is off centre (up-left or down-right), so a mirrored box would land elsewhere.
            centre_x, centre_y = (box[1] + box[3]) / 2, (box[2] + box[4]) / 2
            assert (centre_x < 64) == (position_y < 0) and (centre_y < 48) == (position_z > 0)


def test_an_object_nothing_hides_is_fully_visible_and_kept_by_a_strict_rule(meshes, small_spec, renderer_for) -> None:
    spec = small_spec(**{**FIXED_CAMERA, "min_visible_fraction": 0.95}, objects_per_frame=[1, 1], position_x=[0, 0],
                      position_y=[0, 0], position_z=[0, 0])  # fmt: skip
    for mesh in meshes:
        renderer = renderer_for([mesh], [mesh.class_name], spec)
        frame = renderer.render_detailed(0)
        (instance,) = frame.objects
        assert instance.visible_fraction == 1.0 and instance.alone_pixels is None
        assert renderer.render_frame(0)[1] == frame.boxes == [(0, *map(float, instance.raw_box))]  # type: ignore[arg-type]


def test_of_two_labelled_objects_that_meet_in_the_image_one_is_hidden_in_part(
    meshes, class_names, small_spec, renderer_for
) -> None:
    """Where two objects' pixels meet along an edge, one stands in front of the other and hides part of it,
    whatever order the objects were placed in. Checked against the id image alone, with no depth; a contact of a
    few pixels may be two silhouettes that merely touch, so only longer ones count."""
    spec = small_spec(objects_per_frame=[5, 7], distractors_per_frame=[0, 0], min_box_side_px=0, min_visible_fraction=0)
    renderer = renderer_for(meshes, class_names, spec)
    pairs = 0
    for frame_index in range(12):
        frame = renderer.render_detailed(frame_index)
        by_id = {o.object_id: o for o in frame.objects}
        ids = frame.ids.astype(int)
        contacts: Counter[tuple[int, int]] = Counter()
        for a, b in ((ids[:, :-1], ids[:, 1:]), (ids[:-1, :], ids[1:, :])):
            meet = (a != b) & (a > 0) & (b > 0)
            contacts.update((min(x, y), max(x, y)) for x, y in zip(a[meet].tolist(), b[meet].tolist(), strict=True))
        for (first, second), length in contacts.items():
            if length >= MIN_CONTACT_PX:
                fractions = (by_id[first].visible_fraction, by_id[second].visible_fraction)
                assert min(fractions) < 1.0, (frame_index, first, second, length)
                pairs += 1
    assert pairs >= 10  # the scenes really had objects in front of others
