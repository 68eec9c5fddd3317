"""Conversion time of the preparation step (meshes -> validated USD assets), beside loading the meshes alone.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/usd_conversion.py [--repeats 3] [--triangles 300000]

Two batches, each prepared from scratch ``--repeats`` times (the best time is kept):
  * the sample batch (samples/meshes);
  * one SAM 3D Objects-style GLB made here: a dense, lumpy closed surface of ``--triangles`` triangles with
    vertex colours, Y-up (what SAM 3D writes), which the step decimates to the triangle budget.
Per batch it prints the first preparation's time (the first one in the process also loads usd-core's plugins
and validators, as ``sim2cloud convert`` or a shard job does once), then the best time of ``prepare_batch``
(load + decimate + write USD + usd-core validation + plan) beside the time of loading the same meshes alone
(``batch.load_batch``, what rendering needed before USD assets existed), and the ratio prepare / load, i.e.
what writing and validating USD adds. Both are measured alternately in the same run, so a busy neighbour
slows both alike.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.provenance import print_source_line  # noqa: E402
from isaac_jobs.batch import discover_batch, load_batch  # noqa: E402
from isaac_jobs.prepare import prepare_batch  # noqa: E402


def sam3d_style_glb(path: Path, triangles: int) -> Path:
    """A lumpy, vertex-coloured surface of at least ``triangles`` triangles, Y-up, written as GLB."""
    import numpy as np
    import trimesh

    subdivisions = 0
    while 20 * 4 ** (subdivisions + 1) <= triangles:
        subdivisions += 1
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.08)
    if len(sphere.faces) < triangles:  # top up with a second, smaller part (SAM 3D meshes are not always one piece)
        extra = trimesh.creation.icosphere(subdivisions=max(subdivisions - 1, 0), radius=0.03)
        extra.apply_translation([0.0, 0.1, 0.0])
        while len(sphere.faces) < triangles:
            sphere = trimesh.util.concatenate([sphere, extra])
            extra = extra.copy()
            extra.apply_translation([0.02, 0.0, 0.0])
    rng = np.random.default_rng(0)
    vertices = np.asarray(sphere.vertices)
    lumps = 1.0 + 0.15 * np.sin(vertices @ rng.normal(size=(3, 4)) * 40.0).sum(axis=1) / 4.0
    sphere.vertices = vertices * lumps[:, None] * np.array([1.0, 1.3, 0.9])  # taller along Y: Y is up
    colors = np.clip((vertices - vertices.min(0)) / np.ptp(vertices, axis=0) * 255, 0, 255).astype(np.uint8)
    sphere.visual = trimesh.visual.ColorVisuals(
        sphere, vertex_colors=np.hstack([colors, np.full((len(colors), 1), 255)])
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    sphere.export(path)
    return path


def best_of(repeats: int, first: Callable[[], object], second: Callable[[], object]) -> tuple[float, float]:
    """Best seconds of each of two callables, run alternately."""
    a = b = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        first()
        middle = time.perf_counter()
        second()
        a, b = min(a, middle - start), min(b, time.perf_counter() - middle)
    return a, b


def measure(name: str, batch: Path, repeats: int, scratch: Path) -> None:
    counter = iter(range(10**6))

    def prepare() -> object:
        return prepare_batch(batch, scratch / f"assets-{next(counter)}", progress=False)

    def load() -> object:
        return load_batch(discover_batch(batch), progress=False)

    start = time.perf_counter()
    prepared = prepare_batch(batch, scratch / "assets-check", progress=False)
    first_s = time.perf_counter() - start
    triangles = sum(a.original_triangles for a in prepared.assets)
    kept = sum(a.triangles for a in prepared.assets)
    prepare_s, load_s = best_of(repeats, prepare, load)
    print(f"{name}: {len(prepared.assets)} assets, {triangles} triangles in, {kept} kept")
    print(f"  first prepare in this process:           {first_s:7.2f} s (includes loading usd-core's plugins once)")
    print(f"  prepare (load + USD write + validation): {prepare_s:7.2f} s")
    print(f"  load alone (the pre-USD pipeline):       {load_s:7.2f} s")
    print(f"  ratio prepare / load:                    {prepare_s / load_s:7.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", type=Path, default=REPO / "samples" / "meshes")
    parser.add_argument("--triangles", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print_source_line()
    with tempfile.TemporaryDirectory(prefix="usd-conversion-bench-") as folder:
        scratch = Path(folder)
        measure("sample batch", args.meshes, args.repeats, scratch)
        glb = sam3d_style_glb(scratch / "sam3d" / "object" / "sam3d_object.glb", args.triangles)
        measure(
            f"SAM 3D-style GLB ({args.triangles} triangles, Y-up, vertex colours)",
            glb.parents[1],
            args.repeats,
            scratch,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
