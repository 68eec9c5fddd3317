"""One render shard: prepared batch (USD assets + plan) -> frames of this shard -> a committed shard folder.

``render_shard`` is what both ``sim2cloud render`` and the cloud shard job call: it prepares the batch once
(:func:`isaac_jobs.prepare.prepare_batch`, reused when already prepared) and renders the shard from the USD
assets with the chosen backend. This module is the ONE place where a shard is written: the backend only turns
frames into images and boxes, and the shard writer, its metadata (renderer, spec, sources, assets, errors,
batch.yaml's ``training:``) and the commit live here. Bad mesh files are reported (printed and recorded in
the shard metadata) and skipped; with no valid mesh left NoValidMeshesError lists every reason. The shard is
complete or absent (see dataset.ShardWriter).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isaac_jobs.backends import BACKENDS, BackendUnavailableError
from isaac_jobs.dataset import Box, ShardWriter, frames_for_shard
from isaac_jobs.mesh import Mesh
from isaac_jobs.prepare import PreparedBatch, prepare_batch
from isaac_jobs.scene import ScenePlan, SceneSampler
from isaac_jobs.spec import SceneSpec, apply_batch_overrides, spec_to_dict
from sim2cloud import contract


@dataclass
class ShardResult:
    path: Path
    """The committed shard folder (``<out>/shard-KKKK``)."""
    frames: int
    errors: list[str] = field(default_factory=list)
    """Per-file problems, one line each naming the file: those files were skipped, the rest rendered."""


def mesh_record(mesh: Mesh) -> dict[str, Any]:
    """What the manifest says about a source mesh (lineage: which bytes the dataset came from)."""
    return {
        "path": str(mesh.source),
        "class_name": mesh.class_name,
        "name": mesh.name,
        "bytes": mesh.source_bytes,
        "sha256": mesh.source_sha256,
        "triangles": mesh.triangles,
        "original_triangles": mesh.original_triangles,
        "texture_notes": mesh.texture_notes,
    }


def _shard_writer(out_dir: Path, class_names: Sequence[str], spec: SceneSpec, shard: int, shards: int) -> ShardWriter:
    return ShardWriter(
        out_dir,
        class_names=class_names,
        shard=shard,
        shards=shards,
        image_format=spec.image_format,
        jpeg_quality=spec.jpeg_quality[1],  # frames pass their plan's quality; this is the fallback
    )


def render_meshes_to_shard(
    meshes: Sequence[Mesh],
    class_names: Sequence[str],
    out_dir: Path,
    *,
    spec: SceneSpec,
    shard: int = 0,
    shards: int = 1,
    progress: bool = True,
    metadata: dict[str, Any] | None = None,
) -> ShardResult:
    """Render this shard's frames of ``spec`` with the GL backend and commit them under ``out_dir``.

    With ``spec.render_workers`` above one (or ``auto`` on a GPU host) the frames are rendered by several
    processes (:mod:`isaac_jobs.render_workers`); the shard is the same for any worker count.
    """
    from tqdm import tqdm

    from isaac_jobs.backends.gl import GLRenderer
    from isaac_jobs.render_workers import render_frames_in_workers, render_workers_for

    frames = frames_for_shard(spec.frames, shard, shards)
    writer = _shard_writer(out_dir, class_names, spec, shard, shards)
    label = f"render {contract.shard_name(shard)}" if shards > 1 else "render"
    with writer, tqdm(total=len(frames), desc=label, unit="frame", disable=not progress, dynamic_ncols=True) as bar:
        # One renderer here first: it renders the frames itself when one process is what the host calls for,
        # and tells ``auto`` whether this is a hardware GPU.
        renderer = GLRenderer(meshes, class_names, spec)
        try:
            renderer_info = renderer.renderer_info
            workers = render_workers_for(
                spec.render_workers, gl_renderer=renderer_info["gl_renderer"], frames=len(frames)
            )
            if workers == 1:
                for frame_index in frames:
                    plan = renderer.scene_plan(frame_index)
                    rgb, boxes = renderer.render_frame(plan)
                    writer.add_frame(frame_index, rgb, boxes, jpeg_quality=plan.realism.jpeg_quality)
                    bar.update()
        finally:
            renderer.close()
        if workers > 1:
            bar.set_description(f"{label} ({workers} processes)")

            def written(frame_index: int, boxes: list[Box]) -> None:
                writer.add_written_frame(frame_index, boxes)
                bar.update()

            renderer_info = render_frames_in_workers(
                meshes, class_names, spec, frames, folder=writer.temp_dir, workers=workers, on_frame=written
            )
        path = writer.commit(
            {
                "renderer": {**renderer_info, "processes": workers},
                "spec": spec_to_dict(spec),
                "source_meshes": [mesh_record(m) for m in meshes],
                **(metadata or {}),
            }
        )
    return ShardResult(path=path, frames=len(frames))


def render_shard(
    meshes_dir: Path,
    out_dir: Path,
    *,
    assets_dir: Path,
    spec: SceneSpec,
    shard: int = 0,
    shards: int = 1,
    backend: str = "gl",
    progress: bool = True,
) -> ShardResult:
    """Render shard ``shard`` of ``shards`` of the batch in ``meshes_dir`` into ``out_dir/shard-KKKK``.

    The batch is prepared into ``assets_dir`` first (or its earlier preparation reused). The batch's
    ``batch.yaml`` render settings apply under the keys the spec set explicitly. NoValidMeshesError when no
    mesh becomes an asset.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    frames_for_shard(spec.frames, shard, shards)  # validates shard/shards before any work
    prepared = prepare_batch(Path(meshes_dir), Path(assets_dir), progress=progress)
    errors = prepared.error_lines(Path(meshes_dir))
    for line in errors:
        print(f"mesh skipped: {line}", file=sys.stderr)
    for asset in prepared.assets:
        for note in asset.texture_notes:
            print(f"mesh texture: {Path(meshes_dir) / asset.source}: {note}", file=sys.stderr)
    result = render_prepared(
        prepared, Path(out_dir), spec=spec, shard=shard, shards=shards, backend=backend, progress=progress
    )
    result.errors = errors
    return result


def shard_metadata(prepared: PreparedBatch, *, assets_root: str | None = None) -> dict[str, Any]:
    """What every shard of a prepared batch records (finalize carries it into the manifest)."""
    return {
        "source_meshes": [
            {
                "path": a.source,
                "class_name": a.class_name,
                "name": a.name,
                "bytes": a.source_bytes,
                "sha256": a.source_sha256,
                "triangles": a.triangles,
                "original_triangles": a.original_triangles,
                "texture_notes": list(a.texture_notes),
            }
            for a in prepared.assets
        ],
        "mesh_errors": [{"path": e.path, "reason": e.reason} for e in prepared.errors],
        "batch": dict(prepared.settings),
        "assets": prepared.manifest_record(assets_root),
        contract.MANIFEST_TRAINING_FIELD: dict(prepared.training),
    }


def render_prepared(
    prepared: PreparedBatch,
    out_dir: Path,
    *,
    spec: SceneSpec,
    shard: int = 0,
    shards: int = 1,
    backend: str = "gl",
    progress: bool = True,
    assets_root: str | None = None,
) -> ShardResult:
    """Render one shard of a prepared batch with ``backend`` and commit it under ``out_dir``.

    ``assets_root`` names where the manifest says the assets are (an ``s3://`` URI in the cloud); default
    the local asset folder.
    """
    spec = apply_batch_overrides(spec, prepared.render_overrides)
    metadata = shard_metadata(prepared, assets_root=assets_root)
    if backend == "isaac":
        return _render_shard_with_isaac(
            prepared, out_dir, spec=spec, shard=shard, shards=shards, metadata=metadata, progress=progress
        )
    # USD -> GPU buffers once per process: the renderer uploads each asset once and draws it every frame.
    meshes = prepared.load_meshes()
    return render_meshes_to_shard(
        meshes,
        prepared.class_names,
        out_dir,
        spec=spec,
        shard=shard,
        shards=shards,
        progress=progress,
        metadata=metadata,
    )


def _render_shard_with_isaac(
    prepared: PreparedBatch,
    out_dir: Path,
    *,
    spec: SceneSpec,
    shard: int,
    shards: int,
    metadata: dict[str, Any],
    progress: bool,
) -> ShardResult:
    """Plans drawn here, rendered by Isaac Sim's Python (the Replicator script), converted and committed here."""
    from isaac_jobs.backends import isaac_replicator as isaac
    from isaac_jobs.basicwriter import convert_basicwriter_report, describe

    python = Path(isaac.ISAAC_PYTHON)
    if not python.is_file():
        raise BackendUnavailableError(
            f"--backend isaac needs NVIDIA Isaac Sim ({python} not found): run it in the Isaac Sim image built from "
            "containers/isaac-sim (an RTX GPU is required), or use --backend gl on this machine"
        )
    frames = frames_for_shard(spec.frames, shard, shards)
    plans = scene_plans(prepared, spec, frames)
    request = isaac_request(prepared, spec, plans)
    by_frame = {plan.frame_index: plan for plan in plans}
    writer = _shard_writer(out_dir, prepared.class_names, spec, shard, shards)
    with writer, tempfile.TemporaryDirectory(prefix=".isaac-work-", dir=out_dir) as folder:
        work = Path(folder)
        argv = isaac.command(isaac.write_request(work / "request.json", request), work, progress=progress)
        completed = subprocess.run(argv, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"Isaac Sim shard {shard} failed with exit status {completed.returncode}")
        report = convert_basicwriter_report(
            work / isaac.BASICWRITER_DIR,
            writer,
            class_names=prepared.class_names,
            spec=spec,
            frame_indices=[plan.frame_index for plan in plans],
            transform_rgb=lambda frame_index, rgb: isaac.finish_frame(rgb, by_frame[frame_index]),
            jpeg_quality=lambda frame_index: by_frame[frame_index].realism.jpeg_quality,
        )
        renderer = json.loads((work / isaac.RENDERER_INFO_NAME).read_text(encoding="utf-8"))
        path = writer.commit(
            {
                "renderer": renderer,
                "spec": spec_to_dict(spec),
                "replicator": {"rt_subframes": request.rt_subframes},
                "conversion": describe(report),
                **metadata,
            }
        )
    return ShardResult(path=path, frames=len(report.converted))


def scene_plans(prepared: PreparedBatch, spec: SceneSpec, frames: Sequence[int]) -> list[ScenePlan]:
    """The shared sampler's plans of these frames for a prepared batch (what any backend renders)."""
    sampler = SceneSampler(
        spec, [prepared.class_names.index(a.class_name) for a in prepared.assets], [a.traits() for a in prepared.assets]
    )
    return [sampler.plan(frame_index) for frame_index in frames]


def isaac_request(prepared: PreparedBatch, spec: SceneSpec, plans: Sequence[ScenePlan]) -> Any:
    """The Replicator script's input: resolution, the USD assets with their bounds, the plans."""
    from isaac_jobs.backends.isaac_replicator import RenderRequest, RequestAsset

    return RenderRequest(
        resolution=(spec.width, spec.height),
        assets=tuple(
            RequestAsset(str(prepared.asset_path(a).resolve()), a.center, a.longest_side) for a in prepared.assets
        ),
        plans=tuple(plans),
    )
