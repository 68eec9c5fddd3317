"""Rendering through the USD assets matches rendering the original meshes, for every input format.

For each format (the sample batch's GLB, textured GLB, OBJ+MTL+PNG, PLY with vertex colours and STL, plus a
Y-up centimetre USDA and a textured USDZ made here), the file goes the pipeline's way (preparation step ->
USD asset -> read back by the GL backend) and the same frames are rendered from the mesh as loaded from the
original file. Boxes and image statistics must agree within a small tolerance.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from isaac_jobs.backends.gl import GLRenderer
from isaac_jobs.mesh import Mesh, load_mesh
from isaac_jobs.prepare import prepare_batch
from isaac_jobs.spec import load_spec
from isaac_jobs.usd_export import write_usd

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "samples" / "meshes"
sys.path.insert(0, str(REPO / "tests" / "unit" / "mesh"))
from test_usd_input import usdz_of, write_y_up_centimetres  # noqa: E402

FRAMES = 4


def sample_input(batch: Path, relative: str) -> tuple[Path, Mesh]:
    """Copy one sample file (and its companions) into a one-file batch; the original mesh as loaded from it."""
    source = SAMPLES / relative
    folder = batch / source.parent.name
    folder.mkdir(parents=True)
    for companion in source.parent.glob(source.stem + ".*"):
        shutil.copy(companion, folder)
    if source.suffix == ".obj":
        shutil.copy(source.with_suffix(".png"), folder)
    return folder / source.name, load_mesh(source, class_name=source.parent.name)


def usda_input(batch: Path, _: str) -> tuple[Path, Mesh]:
    original = load_mesh(SAMPLES / "mug" / "mug_sam3d.glb", class_name="mug")
    (batch / "mug").mkdir(parents=True)
    return write_y_up_centimetres(original, batch / "mug" / "mug_cm.usda"), original


def usdz_input(batch: Path, _: str) -> tuple[Path, Mesh]:
    original = load_mesh(SAMPLES / "bottle" / "bottle.obj", class_name="bottle")
    scratch = batch.parent / "scratch"
    crate = write_usd(original, scratch / "bottle.usdc")
    (batch / "bottle").mkdir(parents=True)
    return usdz_of(crate, batch / "bottle" / "bottle.usdz"), original


CASES = {
    "glb (vertex colours, SAM 3D style)": (sample_input, "mug/mug_sam3d.glb"),
    "glb (textured)": (sample_input, "can/can_textured.glb"),
    "obj+mtl+png": (sample_input, "bottle/bottle.obj"),
    "ply": (sample_input, "can/can.ply"),
    "stl": (sample_input, "book/book.stl"),
    "usda (Y-up, centimetres)": (usda_input, ""),
    "usdz (textured)": (usdz_input, ""),
}


@pytest.mark.parametrize("case", list(CASES))
def test_usd_path_renders_like_the_original_mesh(case: str, tmp_path: Path) -> None:
    make, relative = CASES[case]
    batch = tmp_path / "batch"
    _, original = make(batch, relative)
    prepared = prepare_batch(batch, tmp_path / "assets", progress=False)
    assert prepared.errors == [] and len(prepared.assets) == 1
    assert prepared.asset_path(prepared.assets[0]).suffix == ".usd"
    spec = load_spec(None, {"width": 128, "height": 96, "objects_per_frame": [1, 3], "distractors_per_frame": [0, 1]})
    through_usd = GLRenderer(prepared.load_meshes(), prepared.class_names, spec)
    direct = GLRenderer([original], prepared.class_names, spec)
    try:
        for frame_index in range(FRAMES):
            rgb_usd, boxes_usd = through_usd.render_frame(frame_index)
            rgb_direct, boxes_direct = direct.render_frame(frame_index)
            assert len(boxes_usd) == len(boxes_direct), case
            for box_usd, box_direct in zip(boxes_usd, boxes_direct, strict=True):
                assert box_usd[0] == box_direct[0]
                np.testing.assert_allclose(box_usd[1:], box_direct[1:], atol=1.0, err_msg=case)
            a, b = rgb_usd.astype(np.float64), rgb_direct.astype(np.float64)
            np.testing.assert_allclose(a.mean(axis=(0, 1)), b.mean(axis=(0, 1)), atol=1.0, err_msg=case)
            np.testing.assert_allclose(a.std(axis=(0, 1)), b.std(axis=(0, 1)), atol=1.0, err_msg=case)
            assert np.mean(np.abs(a - b) > 8) < 0.01, case  # at most a few edge pixels differ visibly
    finally:
        through_usd.close()
        direct.close()
