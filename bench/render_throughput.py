"""Render throughput of the GL backend (not a test): end-to-end frames/s beside the bare render rate, for the
default scene spec and for the same scenes with the realism settings off (``spec.REALISM_OFF``), in one run.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/render_throughput.py [--frames 300] [--size 640]
        [--job-frames N (default --frames; 0 skips the job)] [--workers auto,4,8]

The meshes go the pipeline's way first (isaac_jobs.prepare: meshes -> validated USD assets in a temp folder,
read back by the GL backend once and uploaded to GPU buffers once), and the time that took is printed.
Both loops render the same frames of the same scene spec (same seed, same meshes: samples/meshes):
  * bare (GLRenderer.render_image): what a renderer of images alone would do. Sample the scene, draw the
    background and every object into a colour + depth framebuffer (no object-id target), read the RGB
    image back. No id target, no alone-coverage draws, no labels, no JPEG, no files.
  * end to end (GLRenderer.render_frame + ShardWriter, what `sim2cloud render` does per shard): the same
    draw into colour + object-id targets, the alone-coverage draws of objects something may hide (counted by
    occlusion queries), readback of the RGB image and the id image, tight boxes from the id image and the
    drop rule, then JPEG encoding and the image + label files written on the writer's thread, and finally
    the shard committed (waits for every pending encode, renames the shard into place, writes the marker).
Both loops run for two renderers (each its own GL context): the default spec (realism on: random looks,
ground plane, key-light shadow map, GGX, environment light, camera effects, JPEG quality range) and the same
spec with ``REALISM_OFF`` applied (the frames as drawn before those settings existed). All four loops
alternate every --chunk frames (so a busy neighbour on a shared machine slows all alike); the totals give the
four rates, end-to-end / bare for each, and the realism cost: default end to end / realism-off end to end.
The end-to-end loops are also timed in CPU seconds of this process (llvmpipe's threads included; the writer's
encode threads too), a steadier figure than wall time when neighbours load the machine.
Then the render JOB, end to end, as `sim2cloud render` runs it: the prepared batch (assets reused) -> the
render processes (``render_workers``: the spec's ``auto`` unless --workers names counts; each process its own GL
context, see isaac_jobs/render_workers.py) -> a committed shard -> ``finalize`` into a dataset (no preview),
timed from the call to the finished dataset (worker start-up included) for --job-frames frames, default spec
and REALISM_OFF one after the other, each worker count in turn; it prints frames/s and the processes used.
The first line printed is the source line (bench/provenance.py): machine, date, load, command.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: OpenBLAS threads fight llvmpipe's

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.provenance import print_source_line  # noqa: E402
from isaac_jobs.backends.gl import GLRenderer  # noqa: E402
from isaac_jobs.dataset import ShardWriter, finalize, read_shard_marker  # noqa: E402
from isaac_jobs.prepare import PreparedBatch, prepare_batch  # noqa: E402
from isaac_jobs.shards import render_prepared  # noqa: E402
from isaac_jobs.spec import REALISM_OFF, SceneSpec, load_spec  # noqa: E402


def measure(
    renderers: list[GLRenderer], frames: range, class_names: list[str], out: Path, chunk: int
) -> list[tuple[float, float, float]]:
    """Seconds spent on (bare, end to end, end-to-end CPU) per renderer for the same frames, chunk by chunk."""
    times = [[0.0, 0.0, 0.0] for _ in renderers]
    writers = [
        ShardWriter(out / str(number), class_names=class_names, shard=0, shards=1, jpeg_quality=92)
        for number in range(len(renderers))
    ]
    for first in range(frames.start, frames.stop, chunk):
        part = range(first, min(first + chunk, frames.stop))
        for renderer, writer, spent in zip(renderers, writers, times, strict=True):
            with renderer.ctx:  # each renderer has its own GL context: make it current
                start = time.perf_counter()
                for frame_index in part:
                    renderer.render_image(frame_index)
                middle, cpu = time.perf_counter(), time.process_time()
                for frame_index in part:
                    plan = renderer.scene_plan(frame_index)
                    rgb, boxes = renderer.render_frame(plan)
                    writer.add_frame(frame_index, rgb, boxes, jpeg_quality=plan.realism.jpeg_quality)
                writer.wait()  # this chunk's encodes are counted for this renderer
                spent[0] += middle - start
                spent[1] += time.perf_counter() - middle
                spent[2] += time.process_time() - cpu
    for renderer, writer, spent in zip(renderers, writers, times, strict=True):
        start = time.perf_counter()
        writer.commit({"renderer": renderer.renderer_info})  # waits for the last encodes, renames, writes the marker
        spent[1] += time.perf_counter() - start
    return [(bare, end_to_end, cpu) for bare, end_to_end, cpu in times]


def measure_job(prepared: PreparedBatch, spec: SceneSpec, out: Path) -> tuple[float, int]:
    """Seconds from the render call to the finalized dataset, and the render processes the job used."""
    start = time.perf_counter()
    result = render_prepared(prepared, out / "shards", spec=spec, progress=False)
    finalize([result.path], out / "dataset", preview_frames=0)
    seconds = time.perf_counter() - start
    processes = int(read_shard_marker(result.path)["renderer"]["processes"])
    shutil.rmtree(out)
    return seconds, processes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", type=Path, default=REPO / "samples" / "meshes")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--job-frames", type=int, default=None, help="frames of the render-job runs (default --frames)")
    parser.add_argument("--workers", default="auto", help="render_workers of the job runs, comma-separated (auto, N)")
    args = parser.parse_args()
    print_source_line()

    size = {"width": args.size, "height": args.size, "frames": args.frames}
    spec = load_spec(overrides=size)
    realism_off = load_spec(overrides={**size, **REALISM_OFF})
    with tempfile.TemporaryDirectory(prefix="render-bench-") as folder:
        start = time.perf_counter()
        prepared = prepare_batch(args.meshes, Path(folder) / "assets", progress=False)
        prepared_s = time.perf_counter() - start
        for line in prepared.error_lines(args.meshes):
            print(f"skipped: {line}")
        start = time.perf_counter()
        meshes = prepared.load_meshes()
        renderer = GLRenderer(meshes, prepared.class_names, spec)
        loaded_s = time.perf_counter() - start
        baseline = GLRenderer(meshes, prepared.class_names, realism_off)
        frames = range(args.frames)
        triangles = sum(m.triangles for m in meshes)
        print(f"renderer: {renderer.renderer_info['gl_renderer']} | {renderer.renderer_info['gl_version']}")
        print(f"{len(meshes)} meshes ({triangles} triangles), {args.size}x{args.size}, {args.frames} frames per loop")
        print(f"meshes -> USD assets (once per batch): {prepared_s:.2f} s; USD -> GPU buffers (once per process): "
              f"{loaded_s:.2f} s")  # fmt: skip
        for warm in (renderer, baseline):  # shader compilation and first-use allocations
            with warm.ctx:
                warm.render_image(0)
                warm.render_frame(0)
        timed = measure([renderer, baseline], frames, prepared.class_names, Path(folder) / "shards", args.chunk)
        baseline.close()
        renderer.close()
        job_frames = args.frames if args.job_frames is None else args.job_frames
        jobs: list[tuple[str, str, int, float]] = []
        for workers in (w.strip() for w in args.workers.split(",") if job_frames > 0):
            setting = workers if workers == "auto" else int(workers)
            for name, overrides in (("default spec", {}), ("realism off", REALISM_OFF)):
                job_spec = load_spec(overrides={**size, **overrides, "frames": job_frames, "render_workers": setting})
                seconds, processes = measure_job(prepared, job_spec, Path(folder) / "job")
                jobs.append((name, workers, processes, job_frames / seconds))
    rates = [(len(frames) / bare_s, len(frames) / e2e_s, len(frames) / cpu_s) for bare_s, e2e_s, cpu_s in timed]
    for name, (bare, e2e, cpu) in zip(("default spec", "realism off"), rates, strict=True):
        print(f"{name}: bare render (draw + colour readback):        {bare:6.1f} frames/s")
        print(f"{name}: end to end (render + boxes + JPEG + labels): {e2e:6.1f} frames/s")
        print(f"{name}: end to end per CPU second (all threads):     {cpu:6.1f} frames")
        print(f"{name}: ratio end to end / bare:                     {e2e / bare:6.1%}")
    print(f"realism cost, wall:  default end to end / realism-off end to end: {rates[0][1] / rates[1][1]:6.1%}")
    print(f"realism cost, CPU:   default end to end / realism-off end to end: {rates[0][2] / rates[1][2]:6.1%}")
    for name, workers, processes, rate in jobs:
        print(f"{name}: render job end to end (render_workers {workers}: {processes} processes), meshes -> dataset: "
              f"{rate:6.1f} frames/s")  # fmt: skip
    for (_, workers, processes, default), (_, _, _, off) in zip(jobs[::2], jobs[1::2], strict=True):
        print(
            f"realism cost, render job ({workers}: {processes} processes): default / realism off: {default / off:6.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
