"""One render shard: batch folder -> meshes -> frames of this shard -> a committed shard folder.

``render_shard`` is what both ``sim2cloud render`` and the cloud shard job call. Bad mesh files are reported
(printed and recorded in the shard metadata) and skipped; with no valid mesh left it raises
NoValidMeshesError listing every reason. The shard is complete or absent (see dataset.ShardWriter).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from isaac_jobs.backends import BACKENDS, BackendUnavailableError
from isaac_jobs.dataset import ShardWriter, frames_for_shard
from isaac_jobs.mesh import Mesh, MeshError
from isaac_jobs.spec import SceneSpec, apply_batch_overrides, spec_to_dict
from sim2cloud import contract


class NoValidMeshesError(RuntimeError):
    """No mesh of the batch could be loaded; ``reasons`` lists one line per bad file (or why none was found)."""

    def __init__(self, meshes_dir: Path, reasons: Sequence[str]) -> None:
        self.meshes_dir = Path(meshes_dir)
        self.reasons = list(reasons) or [
            f"{meshes_dir}: no mesh files ({', '.join(contract.SUPPORTED_MESH_EXTENSIONS)})"
        ]
        super().__init__(f"no valid mesh in {meshes_dir}:\n" + "\n".join(f"  - {r}" for r in self.reasons))


@dataclass
class ShardResult:
    path: Path
    """The committed shard folder (``<out>/shard-KKKK``)."""
    frames: int
    errors: list[MeshError] = field(default_factory=list)
    """Per-file problems: those files were skipped, the rest rendered."""


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
    """Render this shard's frames of ``spec`` with the GL backend and commit them under ``out_dir``."""
    from tqdm import tqdm

    from isaac_jobs.backends.gl import GLRenderer

    frames = frames_for_shard(spec.frames, shard, shards)
    writer = ShardWriter(
        out_dir,
        class_names=class_names,
        shard=shard,
        shards=shards,
        image_format=spec.image_format,
        jpeg_quality=spec.jpeg_quality,
    )
    with writer:
        renderer = GLRenderer(meshes, class_names, spec)
        try:
            label = f"render {contract.shard_name(shard)}" if shards > 1 else "render"
            for frame_index in tqdm(frames, desc=label, unit="frame", disable=not progress, dynamic_ncols=True):
                rgb, boxes = renderer.render_frame(frame_index)
                writer.add_frame(frame_index, rgb, boxes)
            renderer_info = renderer.renderer_info
        finally:
            renderer.close()
        path = writer.commit(
            {
                "renderer": renderer_info,
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
    spec: SceneSpec,
    shard: int = 0,
    shards: int = 1,
    backend: str = "gl",
    progress: bool = True,
) -> ShardResult:
    """Render shard ``shard`` of ``shards`` of the batch in ``meshes_dir`` into ``out_dir/shard-KKKK``.

    The batch's ``batch.yaml`` render settings apply under the keys the spec set explicitly. Each bad file
    becomes a MeshError (printed, returned and recorded in the shard metadata); NoValidMeshesError when none
    loads. The GL backend renders here; ``isaac`` runs Isaac Sim's own Python on the Replicator script.
    """
    from isaac_jobs.batch import discover_batch, load_batch

    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    frames_for_shard(spec.frames, shard, shards)  # validates shard/shards before any work
    plan = discover_batch(Path(meshes_dir))
    spec = apply_batch_overrides(spec, plan.render_overrides)
    if backend == "isaac":
        return _render_shard_with_isaac(Path(meshes_dir), Path(out_dir), spec=spec, shard=shard, shards=shards)
    meshes, load_errors = load_batch(plan, progress=progress)
    errors = [*plan.errors, *load_errors]
    for error in errors:
        print(f"mesh skipped: {error}", file=sys.stderr)
    for mesh in meshes:
        for note in mesh.texture_notes:
            print(f"mesh texture: {mesh.source}: {note}", file=sys.stderr)
    if not meshes:
        raise NoValidMeshesError(Path(meshes_dir), [str(e) for e in errors])
    result = render_meshes_to_shard(
        meshes,
        plan.class_names,
        Path(out_dir),
        spec=spec,
        shard=shard,
        shards=shards,
        progress=progress,
        metadata={
            "mesh_errors": [{"path": e.path, "reason": e.reason} for e in errors],
            "batch": {"triangle_budget": plan.triangle_budget, "up_axis": plan.up_axis},
        },
    )
    result.errors = errors
    return result


def _render_shard_with_isaac(
    meshes_dir: Path, out_dir: Path, *, spec: SceneSpec, shard: int, shards: int
) -> ShardResult:
    from isaac_jobs.backends import isaac_replicator

    python = Path(isaac_replicator.ISAAC_PYTHON)
    if not python.is_file():
        raise BackendUnavailableError(
            f"--backend isaac needs NVIDIA Isaac Sim ({python} not found): run it in the Isaac Sim image built from "
            "containers/isaac-sim (an RTX GPU is required), or use --backend gl on this machine"
        )
    # The effective spec travels whole, so Isaac renders exactly what GL would have been asked to.
    with tempfile.TemporaryDirectory(prefix="isaac-spec-") as folder:
        config = Path(folder) / "spec.yaml"
        config.write_text(yaml.safe_dump(spec_to_dict(spec), sort_keys=False), encoding="utf-8")
        argv = isaac_replicator.command(meshes_dir, out_dir, shard=shard, shards=shards, config=config)
        completed = subprocess.run(argv, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"Isaac Sim shard {shard} failed with exit status {completed.returncode}")
    path = out_dir / contract.shard_name(shard)
    return ShardResult(path=path, frames=len(frames_for_shard(spec.frames, shard, shards)))
