"""The BasicWriter -> shard converter, on fixtures written in BasicWriter's exact on-disk format."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from isaac_jobs.basicwriter import (
    BASICWRITER_BOX_DTYPE,
    convert_basicwriter_output,
    convert_basicwriter_report,
    resolve_class,
)
from isaac_jobs.dataset import ShardWriter
from isaac_jobs.spec import load_spec
from sim2cloud import contract

CLASSES = ["bottle", "mug"]
WIDTH, HEIGHT = 64, 48


def write_rgba(path: Path, seed: int) -> np.ndarray:
    rgba = np.random.default_rng(seed).integers(0, 256, size=(HEIGHT, WIDTH, 4), dtype=np.uint8)
    rgba[0, 0, 3] = 0  # a transparent pixel keeps its colour channels in the RGB output
    Image.fromarray(rgba, "RGBA").save(path)
    return rgba


def write_boxes(path: Path, rows: list[tuple[int, int, int, int, int, float]]) -> None:
    np.save(path, np.array(rows, dtype=BASICWRITER_BOX_DTYPE))


def write_labels(path: Path, labels: dict[int, str]) -> None:
    path.write_text(json.dumps({str(k): {"class": v} for k, v in labels.items()}))


@pytest.fixture
def basicwriter_dir(tmp_path: Path) -> Path:
    """Five frames as BasicWriter writes them (rgb_NNNN.png, ..._NNNN.npy, ..._labels_NNNN.json, prim paths)."""
    src = tmp_path / "basicwriter"
    src.mkdir()
    # Frame 0: one of every box case.
    write_rgba(src / "rgb_0000.png", 0)
    write_boxes(
        src / "bounding_box_2d_tight_0000.npy",
        [
            (0, 10, 5, 29, 24, 0.0),  # plain mug, inclusive max 29/24 -> exclusive 30/25
            (1, 0, 0, 9, 9, 0.25),  # prim with two labels "toy,bottle": bottle is ours
            (2, 50, -3, 70, 9, 0.0),  # past the right and top edges: clipped to 50..64, 0..10
            (3, 30, 30, 39, 39, -1.0),  # occlusion unknown: kept
            (7, 1, 1, 20, 20, 0.0),  # semantic id 7 has no label: skipped
            (4, 40, 20, 59, 39, 0.95),  # 5% visible: dropped by min_visible_fraction
            (5, 5, 40, 6, 41, 0.0),  # 2 px: dropped by min_box_side_px
            (6, 12, 12, 30, 30, 0.0),  # "mug,bottle": both ours, ambiguous: skipped
        ],
    )
    write_labels(
        src / "bounding_box_2d_tight_labels_0000.json",
        {0: "mug", 1: "toy,bottle", 2: "mug", 3: "bottle", 4: "mug", 5: "mug", 6: "mug,bottle"},
    )
    (src / "bounding_box_2d_tight_prim_paths_0000.json").write_text(json.dumps(["/World/mug_0", "/World/bottle_0"]))
    # Frame 1: no boxes at all.
    write_rgba(src / "rgb_0001.png", 1)
    write_boxes(src / "bounding_box_2d_tight_0001.npy", [])
    write_labels(src / "bounding_box_2d_tight_labels_0001.json", {})
    # Frame 2: corrupt PNG.
    (src / "rgb_0002.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    write_boxes(src / "bounding_box_2d_tight_0002.npy", [(0, 1, 1, 20, 20, 0.0)])
    write_labels(src / "bounding_box_2d_tight_labels_0002.json", {0: "mug"})
    # Frame 3: the npy is missing.
    write_rgba(src / "rgb_0003.png", 3)
    write_labels(src / "bounding_box_2d_tight_labels_0003.json", {0: "mug"})
    # Frame 4: corrupt npy.
    write_rgba(src / "rgb_0004.png", 4)
    (src / "bounding_box_2d_tight_0004.npy").write_bytes(b"not numpy")
    return src


def spec():
    return load_spec(None, {"min_box_side_px": 4, "min_visible_fraction": 0.15, "image_format": "png"})


def convert(src: Path, out: Path, **kwargs):
    scene = spec()
    writer = ShardWriter(out, class_names=CLASSES, shard=0, shards=1, image_format="png")
    report = convert_basicwriter_report(src, writer, class_names=CLASSES, spec=scene, **kwargs)
    return report, writer.commit({"renderer": {"backend": "isaac"}})


def label_lines(shard: Path, frame: int) -> list[str]:
    return (shard / contract.LABELS_DIR / f"{frame:06d}.txt").read_text().splitlines()


def yolo(class_id: int, x0: float, y0: float, x1: float, y1: float) -> str:
    cx, cy = (x0 + x1) / 2 / WIDTH, (y0 + y1) / 2 / HEIGHT
    return f"{class_id} {cx:.6f} {cy:.6f} {(x1 - x0) / WIDTH:.6f} {(y1 - y0) / HEIGHT:.6f}"


def test_box_cases_become_the_expected_yolo_lines(basicwriter_dir: Path, tmp_path: Path) -> None:
    report, shard = convert(basicwriter_dir, tmp_path / "out")
    assert label_lines(shard, 0) == [
        yolo(1, 10, 5, 30, 25),  # inclusive max + 1
        yolo(0, 0, 0, 10, 10),  # "toy,bottle" -> bottle
        yolo(1, 50, 0, 64, 10),  # clipped to the image
        yolo(0, 30, 30, 40, 40),  # occlusionRatio -1 kept
    ]
    assert report.dropped_boxes == 2
    assert len(report.skipped_boxes) == 2
    assert any("semantic id 7" in reason and "no 'class' label" in reason for reason in report.skipped_boxes)
    assert any("ambiguous" in reason for reason in report.skipped_boxes)


def test_frame_without_boxes_writes_an_empty_label_file(basicwriter_dir: Path, tmp_path: Path) -> None:
    _, shard = convert(basicwriter_dir, tmp_path / "out")
    label = shard / contract.LABELS_DIR / "000001.txt"
    assert label.is_file()
    assert label.read_text() == ""


def test_bad_frames_are_reported_and_the_rest_converted(basicwriter_dir: Path, tmp_path: Path) -> None:
    report, shard = convert(basicwriter_dir, tmp_path / "out")
    assert report.converted == [0, 1]
    reasons = {problem.frame: problem.reason for problem in report.problems}
    assert set(reasons) == {2, 3, 4}
    assert "rgb_0002.png" in reasons[2]
    assert "bounding_box_2d_tight_0003.npy is missing" in reasons[3]
    assert "bounding_box_2d_tight_0004.npy" in reasons[4]
    assert sorted(p.name for p in (shard / contract.IMAGES_DIR).iterdir()) == ["000000.png", "000001.png"]
    marker = json.loads((shard / contract.SHARD_COMPLETE_MARKER).read_text())
    assert marker["frames"] == [0, 1]


def test_rgba_loses_only_its_alpha(basicwriter_dir: Path, tmp_path: Path) -> None:
    _, shard = convert(basicwriter_dir, tmp_path / "out")
    source = np.asarray(Image.open(basicwriter_dir / "rgb_0000.png"))
    written = np.asarray(Image.open(shard / contract.IMAGES_DIR / "000000.png"))
    assert written.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(written, source[..., :3])


def test_frames_are_renumbered_to_the_shards_dataset_indices(basicwriter_dir: Path, tmp_path: Path) -> None:
    report, shard = convert(basicwriter_dir, tmp_path / "out", frame_indices=[100, 101, 102, 103, 104])
    assert report.converted == [0, 1]
    assert sorted(p.name for p in (shard / contract.LABELS_DIR).iterdir()) == ["000100.txt", "000101.txt"]


def test_frame_beyond_the_shards_frames_is_a_problem(basicwriter_dir: Path, tmp_path: Path) -> None:
    report, _ = convert(basicwriter_dir, tmp_path / "out", frame_indices=[100])
    assert report.converted == [0]
    assert any(p.frame == 1 and "beyond the 1 frames" in p.reason for p in report.problems)


def test_transform_rgb_changes_the_picture_not_the_boxes(basicwriter_dir: Path, tmp_path: Path) -> None:
    seen: list[int] = []

    def invert(frame_index: int, rgb: np.ndarray) -> np.ndarray:
        seen.append(frame_index)
        return 255 - rgb

    _, plain = convert(basicwriter_dir, tmp_path / "plain")
    _, inverted = convert(basicwriter_dir, tmp_path / "inverted", transform_rgb=invert)
    assert seen == [0, 1]
    assert label_lines(inverted, 0) == label_lines(plain, 0)
    np.testing.assert_array_equal(
        np.asarray(Image.open(inverted / contract.IMAGES_DIR / "000000.png")),
        255 - np.asarray(Image.open(plain / contract.IMAGES_DIR / "000000.png")),
    )


def test_labels_without_a_labels_file_is_a_problem(tmp_path: Path) -> None:
    src = tmp_path / "bw"
    src.mkdir()
    write_rgba(src / "rgb_0000.png", 0)
    write_boxes(src / "bounding_box_2d_tight_0000.npy", [(0, 1, 1, 20, 20, 0.0)])
    report, _ = convert(src, tmp_path / "out")
    assert report.converted == []
    assert "no bounding_box_2d_tight_labels file" in report.problems[0].reason


def test_wrong_npy_dtype_is_named(tmp_path: Path) -> None:
    src = tmp_path / "bw"
    src.mkdir()
    write_rgba(src / "rgb_0000.png", 0)
    np.save(src / "bounding_box_2d_tight_0000.npy", np.zeros((2, 6), dtype=np.float32))
    report, _ = convert(src, tmp_path / "out")
    assert "lacks BasicWriter fields" in report.problems[0].reason


def test_public_entrypoint_returns_converted_count_and_logs_problems(
    basicwriter_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = ShardWriter(tmp_path / "out", class_names=CLASSES, shard=0, shards=1)
    with caplog.at_level(logging.WARNING, logger="isaac_jobs.basicwriter"):
        converted = convert_basicwriter_output(basicwriter_dir, writer, class_names=CLASSES, spec=spec())
    writer.commit({})
    assert converted == 2
    assert "3 BasicWriter frame(s)" in caplog.text
    assert "semantic id 7" in caplog.text


@pytest.mark.parametrize(
    ("label", "expected"),
    [("mug", 1), ("toy,bottle", 0), (" bottle , toy ", 0), ("mug,mug", 1), ("toy", None), ("mug,bottle", None)],
)
def test_resolve_class(label: str, expected: int | None) -> None:
    assert resolve_class(label, CLASSES)[0] == expected


def test_one_render_products_subfolder_is_read(basicwriter_dir: Path, tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    outer.mkdir()
    basicwriter_dir.rename(outer / "Replicator")
    report, _ = convert(outer, tmp_path / "out")
    assert report.converted == [0, 1]


def test_several_render_products_are_refused(basicwriter_dir: Path, tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    (outer / "cam_b").mkdir(parents=True)
    write_rgba(outer / "cam_b" / "rgb_0000.png", 9)
    basicwriter_dir.rename(outer / "cam_a")
    writer = ShardWriter(tmp_path / "out", class_names=CLASSES, shard=0, shards=1)
    with pytest.raises(ValueError, match="several render products"):
        convert_basicwriter_report(outer, writer, class_names=CLASSES, spec=spec())
    writer.abort()
