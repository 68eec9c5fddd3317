"""Render worker processes within one shard: how many, the same dataset for any count, errors that name frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isaac_jobs.render_workers import (
    MAX_CHUNK_FRAMES,
    RenderWorkerError,
    auto_render_workers,
    chunks,
    is_software_renderer,
    render_frames_in_workers,
    render_workers_for,
)
from isaac_jobs.shards import render_meshes_to_shard
from isaac_jobs.spec import SpecError, load_spec
from sim2cloud import contract
from sim2cloud.cli import main

NVIDIA = "NVIDIA H200/PCIe/SSE2"
LLVMPIPE = "llvmpipe (LLVM 15.0.6, 256 bits)"


def files(shard_dir: Path, folder: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((shard_dir / folder).iterdir())}


@pytest.mark.parametrize(
    ("cpus", "software", "frames", "expected"),
    [
        (16, False, 3000, 4),  # a GPU host: half the CPUs, at most 4 (more contexts only take turns on the GPU)
        (6, False, 3000, 3),
        (16, False, 100, 3),  # a short shard: one worker per 32 frames
        (16, False, 20, 1),  # too few frames to pay for a second process
        (1, False, 3000, 1),  # one usable CPU
        (3, False, 3000, 1),
        (64, True, 3000, 1),  # a CPU rasteriser already uses every core
        (2, True, 200, 1),
    ],
)
def test_auto_worker_count_follows_the_host(cpus: int, software: bool, frames: int, expected: int) -> None:
    assert auto_render_workers(cpus=cpus, software_renderer=software, frames=frames) == expected


def test_worker_count_setting_auto_or_a_number() -> None:
    assert is_software_renderer(LLVMPIPE) and is_software_renderer("softpipe") and not is_software_renderer(NVIDIA)
    assert render_workers_for("auto", gl_renderer=NVIDIA, frames=3000, cpus=16) == 4
    assert render_workers_for("auto", gl_renderer=LLVMPIPE, frames=3000, cpus=16) == 1
    assert render_workers_for(4, gl_renderer=LLVMPIPE, frames=3000, cpus=2) == 4  # the user's number wins
    assert render_workers_for(4, gl_renderer=NVIDIA, frames=2, cpus=16) == 2  # never more than the frames
    assert render_workers_for(4, gl_renderer=NVIDIA, frames=0, cpus=16) == 1


def test_render_workers_setting_is_validated() -> None:
    assert load_spec().render_workers == "auto"
    assert load_spec(overrides={"render_workers": 3}).render_workers == 3
    for bad in (0, -1, "many", 2.5, True):
        with pytest.raises(SpecError, match="render_workers: expected 'auto' or a whole number of processes"):
            load_spec(overrides={"render_workers": bad})


def test_chunks_cover_the_frames_in_order_and_stay_small() -> None:
    frames = range(100, 1100)
    parts = chunks(frames, 8)
    assert [f for part in parts for f in part] == list(frames)
    assert max(len(part) for part in parts) == MAX_CHUNK_FRAMES
    assert [len(part) for part in chunks(range(7), 2)] == [1] * 7  # about four per worker: all get work


def test_same_frames_labels_and_pixels_with_one_and_two_workers(meshes, class_names, small_spec, tmp_path) -> None:
    one = render_meshes_to_shard(
        meshes, class_names, tmp_path / "one", spec=small_spec(frames=8, render_workers=1), progress=False
    )
    two = render_meshes_to_shard(
        meshes, class_names, tmp_path / "two", spec=small_spec(frames=8, render_workers=2), progress=False
    )
    assert files(two.path, contract.IMAGES_DIR) == files(one.path, contract.IMAGES_DIR)  # same bytes: same pixels
    assert files(two.path, contract.LABELS_DIR) == files(one.path, contract.LABELS_DIR)
    assert len(files(one.path, contract.IMAGES_DIR)) == 8
    assert any(files(one.path, contract.LABELS_DIR).values())  # there were boxes to compare
    markers = [json.loads((r.path / contract.SHARD_COMPLETE_MARKER).read_text()) for r in (one, two)]
    assert markers[0]["frames"] == markers[1]["frames"] == list(range(8))
    assert markers[0]["box_counts"] == markers[1]["box_counts"]
    assert [m["renderer"]["processes"] for m in markers] == [1, 2]
    assert not [p for p in (tmp_path / "two").iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_a_failing_worker_names_its_frames_and_the_cause(meshes, small_spec, tmp_path) -> None:
    folder = tmp_path / "shard"
    for sub in (contract.IMAGES_DIR, contract.LABELS_DIR):
        (folder / sub).mkdir(parents=True)
    seen: list[int] = []
    # The workers' renderer refuses meshes of a class it was not given: each chunk fails in its worker.
    with pytest.raises(
        RenderWorkerError, match=r"render worker failed on frames \d+(-\d+)?: ValueError: meshes of classes"
    ):
        render_frames_in_workers(
            meshes, ["box"], small_spec(frames=4), range(4), folder=folder, workers=2,
            on_frame=lambda frame, boxes: seen.append(frame),
        )  # fmt: skip
    assert seen == []


def test_cli_workers_flag(tmp_path: Path, capsys) -> None:
    assert main(["render", "--meshes", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "render_workers: expected 'auto' or a whole number of processes >= 1, got 0" in capsys.readouterr().err
