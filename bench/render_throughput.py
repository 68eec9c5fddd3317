"""Render throughput of the GL backend (not a test): end-to-end frames/s beside the bare render rate.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/render_throughput.py [--frames 300] [--size 640]

Both loops render the same frames of the same scene spec (same seed, same meshes: samples/meshes):
  * bare (GLRenderer.render_image): what a renderer of images alone would do. Sample the scene, draw the
    background and every object into a colour + depth framebuffer (no object-id target), read the RGB
    image back. No id target, no alone-coverage draws, no labels, no JPEG, no files.
  * end to end (GLRenderer.render_frame + ShardWriter, what `sim2cloud render` does per shard): the same
    draw into colour + object-id targets, the alone-coverage draws of objects something may hide (counted by
    occlusion queries), readback of the RGB image and the id image, tight boxes from the id image and the
    drop rule, then JPEG encoding and the image + label files written on the writer's thread, and finally
    the shard committed (waits for every pending encode, renames the shard into place, writes the marker).
The two alternate every --chunk frames (so a busy neighbour on a shared machine slows both alike) and the
totals give the two rates and their ratio end-to-end / bare. The first line printed is the source line
(bench/provenance.py): machine, date, load, command.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: OpenBLAS threads fight llvmpipe's

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.provenance import print_source_line  # noqa: E402
from isaac_jobs.backends.gl import GLRenderer  # noqa: E402
from isaac_jobs.batch import discover_batch, load_batch  # noqa: E402
from isaac_jobs.dataset import ShardWriter  # noqa: E402
from isaac_jobs.spec import load_spec  # noqa: E402


def measure(renderer: GLRenderer, frames: range, class_names: list[str], out: Path, chunk: int) -> tuple[float, float]:
    """Seconds spent on (bare, end to end) for the same frames, alternating chunk by chunk."""
    bare = end_to_end = 0.0
    writer = ShardWriter(out, class_names=class_names, shard=0, shards=1, jpeg_quality=renderer.spec.jpeg_quality)
    for first in range(frames.start, frames.stop, chunk):
        part = range(first, min(first + chunk, frames.stop))
        start = time.perf_counter()
        for frame_index in part:
            renderer.render_image(frame_index)
        middle = time.perf_counter()
        for frame_index in part:
            rgb, boxes = renderer.render_frame(frame_index)
            writer.add_frame(frame_index, rgb, boxes)
        bare, end_to_end = bare + middle - start, end_to_end + time.perf_counter() - middle
    start = time.perf_counter()
    writer.commit({"renderer": renderer.renderer_info})  # waits for the last encodes, renames, writes the marker
    return bare, end_to_end + time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", type=Path, default=REPO / "samples" / "meshes")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--chunk", type=int, default=10)
    args = parser.parse_args()
    print_source_line()

    spec = load_spec(overrides={"width": args.size, "height": args.size, "frames": args.frames})
    plan = discover_batch(args.meshes)
    meshes, errors = load_batch(plan, progress=False)
    for error in errors:
        print(f"skipped: {error}")
    renderer = GLRenderer(meshes, plan.class_names, spec)
    frames = range(args.frames)
    triangles = sum(m.triangles for m in meshes)
    print(f"renderer: {renderer.renderer_info['gl_renderer']} | {renderer.renderer_info['gl_version']}")
    print(f"{len(meshes)} meshes ({triangles} triangles), {args.size}x{args.size}, {args.frames} frames per loop")
    renderer.render_image(0)  # warm up shader compilation and first-use allocations
    renderer.render_frame(0)
    with tempfile.TemporaryDirectory(prefix="render-bench-") as folder:
        bare_s, e2e_s = measure(renderer, frames, plan.class_names, Path(folder), args.chunk)
    renderer.close()
    bare, e2e = len(frames) / bare_s, len(frames) / e2e_s
    print(f"bare render (draw + colour readback):        {bare:6.1f} frames/s")
    print(f"end to end (render + boxes + JPEG + labels): {e2e:6.1f} frames/s")
    print(f"ratio end to end / bare:                     {e2e / bare:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
