"""Several GL render processes for one shard: a GPU host's cores drive its GPU together.

One Python process feeds a GPU with only a few hundred frames/s: per frame the scene sampling, the draw calls
and uniforms, the readback, the camera effects, the boxes and the JPEG encoding are CPU work, and the GPU waits.
A render job therefore renders its shard's frames with ``workers`` processes, each with its own EGL context
(one :class:`~isaac_jobs.backends.gl.GLRenderer`) and its own JPEG encoder threads. The frames are handed out in
small chunks (a worker that finishes takes the next), each worker writes its frames' image and label files
straight into the shard writer's temporary folder, and the parent records them with the shard writer, shows
progress and commits the shard as before (complete or absent). A frame depends only on ``(seed, frame index)``,
so the dataset is the same for any worker count.

How many: the scene spec's ``render_workers`` (``auto`` or a number; ``sim2cloud render --workers``). ``auto``
(:func:`auto_render_workers`) uses half the CPUs this process may run on when the GL renderer is a hardware
GPU (the other half encode JPEG and run the driver's threads), but at most ``MAX_AUTO_WORKERS`` (the GPU
driver time-slices the processes' contexts: on the H200 host 4 processes rendered more frames/s than 8 or 12)
and at most one per ``MIN_FRAMES_PER_WORKER`` frames (a worker's start, about a second, must pay off); and one
process on a software rasteriser (llvmpipe already spreads each frame over every core; a second context would
only compete).
Workers are started with ``spawn``: a fresh interpreter per worker, nothing of the parent's GL or thread state.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isaac_jobs.dataset import Box, write_frame_files, yolo_label_text
from isaac_jobs.mesh import Mesh
from isaac_jobs.spec import AUTO_WORKERS, SceneSpec

MAX_AUTO_WORKERS = 4
"""``auto`` starts at most this many workers (H200, 16 cores, 3000 frames, default spec: 4 processes 372 frames/s,
8 processes 332, 12 processes 333; bench/render_throughput.py --workers auto,4,12)."""
MIN_FRAMES_PER_WORKER = 32
"""``auto`` starts at most one worker per this many frames (a worker costs about a second to start)."""
MAX_CHUNK_FRAMES = 16
"""Frames per task handed to a worker: small enough to balance the workers and to show progress often."""
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "swiftshader", "lavapipe")
"""GL_RENDERER names of rasterisers that run on the CPU (matched case-insensitively, as substrings)."""


class RenderWorkerError(RuntimeError):
    """A render worker process failed; the message names the frames it was rendering and the cause."""


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: taskset and container cpusets count, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def is_software_renderer(gl_renderer: str) -> bool:
    """Whether a GL_RENDERER string names a CPU rasteriser (Mesa llvmpipe and the like)."""
    name = gl_renderer.lower()
    return any(software in name for software in SOFTWARE_RENDERERS)


def auto_render_workers(*, cpus: int, software_renderer: bool, frames: int) -> int:
    """The ``auto`` worker count from the facts: see the module docstring."""
    if software_renderer:
        return 1
    return max(1, min(cpus // 2, MAX_AUTO_WORKERS, frames // MIN_FRAMES_PER_WORKER))


def render_workers_for(setting: int | str, *, gl_renderer: str, frames: int, cpus: int | None = None) -> int:
    """The worker count a shard of ``frames`` frames renders with: the spec's number (at most one per frame), or
    ``auto`` decided from the renderer and the usable CPUs."""
    if setting == AUTO_WORKERS:
        return auto_render_workers(
            cpus=usable_cpus() if cpus is None else cpus,
            software_renderer=is_software_renderer(gl_renderer),
            frames=frames,
        )
    return max(1, min(int(setting), frames))


def chunks(frames: Sequence[int], workers: int) -> list[list[int]]:
    """The shard's frames in consecutive chunks: about four per worker, at most MAX_CHUNK_FRAMES frames each."""
    size = max(1, min(MAX_CHUNK_FRAMES, math.ceil(len(frames) / (4 * workers))))
    return [list(frames[start : start + size]) for start in range(0, len(frames), size)]


@dataclass(frozen=True)
class _WorkerSetup:
    meshes: Sequence[Mesh]
    class_names: Sequence[str]
    spec: SceneSpec
    folder: Path  # the shard writer's temporary folder (images/, labels/)
    encoder_threads: int


_setup: _WorkerSetup | None = None
_renderer: Any = None
_encoder: ThreadPoolExecutor | None = None


def _init_worker(setup: _WorkerSetup) -> None:
    """Runs once in each worker process; the renderer is created with the first chunk, so that a failure to
    create it reaches the parent as that chunk's error (an initializer's error would only break the pool)."""
    global _setup
    _setup = setup


def _render_chunk(frames: list[int]) -> tuple[dict[str, str], list[tuple[int, list[Box]]]]:
    """In a worker: render ``frames``, write their image and label files; returns the renderer info and each
    frame's kept boxes. Returns once every file of the chunk is written."""
    global _renderer, _encoder
    from isaac_jobs.backends.gl import GLRenderer

    assert _setup is not None, "render worker used before its set-up"
    setup = _setup
    if _renderer is None:
        _renderer = GLRenderer(setup.meshes, setup.class_names, setup.spec)
        _encoder = ThreadPoolExecutor(max_workers=setup.encoder_threads, thread_name_prefix="worker-encode")
    assert _encoder is not None
    spec = setup.spec
    pending: list[Future[None]] = []
    results: list[tuple[int, list[Box]]] = []
    for frame_index in frames:
        plan = _renderer.scene_plan(frame_index)
        rgb, boxes = _renderer.render_frame(plan)
        label = yolo_label_text(boxes, spec.width, spec.height)
        pending.append(
            _encoder.submit(
                write_frame_files,
                setup.folder,
                frame_index,
                rgb,
                label,
                image_format=spec.image_format,
                quality=plan.realism.jpeg_quality,
            )
        )
        results.append((frame_index, boxes))
    for future in pending:
        future.result()
    return _renderer.renderer_info, results


def render_frames_in_workers(
    meshes: Sequence[Mesh],
    class_names: Sequence[str],
    spec: SceneSpec,
    frames: Sequence[int],
    *,
    folder: Path,
    workers: int,
    on_frame: Callable[[int, list[Box]], None],
) -> dict[str, str]:
    """Render ``frames`` with ``workers`` processes into ``folder`` (a shard writer's temporary folder);
    ``on_frame(frame_index, boxes)`` is called in this process for each frame once its files are written.
    Returns the workers' renderer info. RenderWorkerError names the frames of a worker that failed or died;
    the other workers are stopped (queued chunks cancelled) before it is raised."""
    setup = _WorkerSetup(
        meshes=list(meshes),
        class_names=list(class_names),
        spec=spec,
        folder=Path(folder),
        encoder_threads=max(1, (usable_cpus() - workers) // workers),
    )
    renderer_info: dict[str, str] = {}
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(setup,),
    )
    try:
        running = {pool.submit(_render_chunk, chunk): chunk for chunk in chunks(frames, workers)}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                chunk = running.pop(future)
                try:
                    renderer_info, results = future.result()
                except BrokenProcessPool as err:
                    raise RenderWorkerError(
                        f"a render worker process died while frames {_span(chunk)} were being rendered ({err}); "
                        "nothing of this shard was committed"
                    ) from err
                except Exception as err:
                    raise RenderWorkerError(
                        f"render worker failed on frames {_span(chunk)}: {type(err).__name__}: {err}"
                    ) from err
                for frame_index, boxes in results:
                    on_frame(frame_index, boxes)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return renderer_info


def _span(chunk: Sequence[int]) -> str:
    return f"{chunk[0]}-{chunk[-1]}" if len(chunk) > 1 else str(chunk[0])
