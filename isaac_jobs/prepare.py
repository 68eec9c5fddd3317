"""The preparation step: a batch folder -> one validated USD asset per accepted mesh + the batch plan, once per batch.

``prepare_batch(meshes_dir, assets_dir)`` reads ``batch.yaml`` once (``batch.discover_batch``), loads and
checks every mesh, converts each accepted one to a USD asset (``usd_export.write_usd``: class label as
``UsdSemantics.LabelsAPI``), validates it with usd-core's validators, and stores::

    <assets_dir>/<class>/<name>.usd            (+ <name>_basecolor.png beside it when textured)
    <assets_dir>/batch-plan.json               (contract.ASSET_PLAN_NAME, written last)

The plan (:class:`PreparedBatch`) is the batch resolved into data every later step reads instead of the
batch folder: class names (ids are indices), the assets with their hashes and bounds, the per-file errors,
``batch.yaml``'s render overrides and its ``training:`` section. Nothing reads ``batch.yaml`` again.

Once per batch: the plan records a fingerprint of the batch folder's bytes. A later call with the same
fingerprint reuses the assets as they are (no conversion), so shards rendered into one output share one
preparation; in the cloud the assets live under ``assets/<batch>/`` (``contract.asset_plan_key`` last) and
every shard downloads them instead of converting again (see ``isaac_jobs.cloud``). A changed batch
(another mesh, an edited batch.yaml) changes the fingerprint and the assets are written again.
The asset folder is written aside and renamed into place, so it is complete or absent.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from isaac_jobs.appearance import MESH_LOOK_KEY, AssetTraits, Look, apply_look, has_own_appearance
from isaac_jobs.batch import BatchPlan, discover_batch, load_batch
from isaac_jobs.dataset import replace_folder
from isaac_jobs.mesh import Mesh, load_mesh
from sim2cloud import contract

PLAN_FORMAT: Final = 2
"""Version of batch-plan.json; a plan of another version is prepared again rather than trusted."""


class NoValidMeshesError(RuntimeError):
    """No mesh of the batch could be loaded; ``reasons`` lists one line per bad file (or why none was found)."""

    def __init__(self, meshes_dir: Path, reasons: Sequence[str]) -> None:
        self.meshes_dir = Path(meshes_dir)
        self.reasons = list(reasons) or [
            f"{meshes_dir}: no mesh files ({', '.join(contract.SUPPORTED_MESH_EXTENSIONS)})"
        ]
        super().__init__(f"no valid mesh in {meshes_dir}:\n" + "\n".join(f"  - {r}" for r in self.reasons))


class AssetFolderError(RuntimeError):
    """The asset folder holds something this step did not write: it is never overwritten."""


@dataclass(frozen=True)
class AssetFile:
    path: str
    """Relative to the asset folder, POSIX (``mug/mug_sam3d.usd``); the S3 key adds ``assets/<batch>/``."""
    sha256: str
    bytes: int


@dataclass(frozen=True)
class AssetRecord:
    """One accepted mesh as a USD asset."""

    class_name: str
    name: str
    """Unique within its class; the asset is ``<class>/<name>.usd``."""
    path: str
    """The USD file, relative to the asset folder."""
    sha256: str
    bytes: int
    files: tuple[AssetFile, ...]
    """The USD file and its companions (texture), each with its hash."""
    source: str
    """The mesh file it came from, relative to the batch folder."""
    source_sha256: str
    source_bytes: int
    triangles: int
    original_triangles: int
    bounds: tuple[tuple[float, float, float], tuple[float, float, float]]
    """Axis-aligned bounds (min, max) in metres, Z-up: what a backend places the asset by."""
    texture_notes: tuple[str, ...] = ()
    """How each texture the mesh names was found (a fallback) or that it is still missing (mesh.TextureResolver)."""
    own_appearance: bool = False
    """A texture or vertex colours of its own: kept (colour jitter only), never given a random look."""
    look: dict[str, Any] | None = None
    """The class look from batch.yaml applied to it (``appearance.Look`` fields), also in its USD material."""

    def traits(self) -> AssetTraits:
        """What the scene sampler knows of this asset (the GL backend derives the same from the mesh)."""
        low, high = self.bounds
        return AssetTraits(
            extents=(high[0] - low[0], high[1] - low[1], high[2] - low[2]),
            own_appearance=self.own_appearance,
            look=None if self.look is None else Look.from_mapping(self.look),
        )

    @property
    def center(self) -> tuple[float, float, float]:
        low, high = self.bounds
        return (
            (low[0] + high[0]) / 2,
            (low[1] + high[1]) / 2,
            (low[2] + high[2]) / 2,
        )

    @property
    def longest_side(self) -> float:
        low, high = self.bounds
        return max(max(h - lo for lo, h in zip(low, high, strict=True)), 1e-9)


@dataclass(frozen=True)
class FileError:
    path: str
    """Relative to the batch folder."""
    reason: str


@dataclass
class PreparedBatch:
    """The resolved, validated batch plan: what every render step reads (never batch.yaml again)."""

    assets_dir: Path
    class_names: list[str]
    """Sorted classes with at least one asset (ids are indices). A class whose every mesh failed is dropped
    with an error saying so; the plan is made once per batch, so every shard agrees on the ids."""
    assets: list[AssetRecord]
    errors: list[FileError]
    render_overrides: dict[str, Any]
    """batch.yaml ``render:`` plus its top-level ``frames``: scene-spec settings under explicit ones."""
    training: dict[str, Any]
    """batch.yaml ``training:``: carried into every shard's metadata and the manifest."""
    settings: dict[str, Any]
    """The batch-wide mesh settings used (triangle budget, up axis, scale, ...)."""
    fingerprint: str
    """sha256 over the batch folder's files (relative path and content)."""
    format: int = PLAN_FORMAT
    reused: bool = field(default=False, compare=False)
    """True when this call found the assets already prepared (not stored)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("assets_dir")
        data.pop("reused")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], assets_dir: Path) -> PreparedBatch:
        assets = [
            AssetRecord(
                **{
                    **item,
                    "files": tuple(AssetFile(**f) for f in item["files"]),
                    "bounds": (tuple(item["bounds"][0]), tuple(item["bounds"][1])),
                    "texture_notes": tuple(item.get("texture_notes", ())),
                }
            )
            for item in data["assets"]
        ]
        return cls(
            assets_dir=Path(assets_dir),
            class_names=list(data["class_names"]),
            assets=assets,
            errors=[FileError(**e) for e in data["errors"]],
            render_overrides=dict(data["render_overrides"]),
            training=dict(data["training"]),
            settings=dict(data["settings"]),
            fingerprint=str(data["fingerprint"]),
            format=int(data["format"]),
        )

    @classmethod
    def read(cls, assets_dir: Path) -> PreparedBatch:
        path = Path(assets_dir) / contract.ASSET_PLAN_NAME
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")), Path(assets_dir))

    def asset_path(self, asset: AssetRecord) -> Path:
        return self.assets_dir / asset.path

    def error_lines(self, meshes_dir: Path | None = None) -> list[str]:
        """One line per skipped file, naming it (under ``meshes_dir`` when given)."""
        return [f"{Path(meshes_dir) / e.path if meshes_dir else e.path}: {e.reason}" for e in self.errors]

    def load_meshes(self) -> list[Mesh]:
        """The assets read back from USD (geometry, normals, UVs, colours, preview-surface diffuse), in order."""
        meshes = []
        for asset in self.assets:
            mesh = load_mesh(
                self.asset_path(asset),
                class_name=asset.class_name,
                # The asset is already within the budget: this only guards against a hand-edited file.
                triangle_budget=max(asset.triangles, 4),
                max_triangles=max(asset.triangles, 4),
                up_axis="auto",
            )
            mesh.name = asset.name
            if asset.look is not None:
                mesh.extra[MESH_LOOK_KEY] = Look.from_mapping(asset.look).to_json()
            meshes.append(mesh)
        return meshes

    def manifest_record(self, root: str | None = None) -> dict[str, Any]:
        """What the manifest says about the assets: where they are and each file with its hash."""
        return {
            "root": root if root is not None else str(self.assets_dir),
            "plan": contract.ASSET_PLAN_NAME,
            "fingerprint": self.fingerprint,
            "files": [
                {
                    "class_name": a.class_name,
                    "name": a.name,
                    "path": a.path,
                    "sha256": a.sha256,
                    "bytes": a.bytes,
                    "source": a.source,
                    "source_sha256": a.source_sha256,
                    "companions": [asdict(f) for f in a.files if f.path != a.path],
                }
                for a in self.assets
            ],
        }


def batch_fingerprint(batch_dir: Path) -> str:
    """sha256 over every (non-hidden) file of the batch: relative path and content hash, plus the plan format."""
    root = Path(batch_dir)
    digest = hashlib.sha256(f"sim2cloud-batch-plan:{PLAN_FORMAT}\n".encode())
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            digest.update(f"{relative.as_posix()}\0{contract.file_sha256(path)}\n".encode())
    return digest.hexdigest()


def read_prepared(assets_dir: Path) -> PreparedBatch | None:
    """The plan in ``assets_dir`` if there is a readable one of this format, else None."""
    try:
        prepared = PreparedBatch.read(assets_dir)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return prepared if prepared.format == PLAN_FORMAT else None


def _relative(path: str | Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def prepare_batch(meshes_dir: Path, assets_dir: Path, *, progress: bool = True) -> PreparedBatch:
    """Prepare the batch in ``meshes_dir`` into ``assets_dir``, or reuse what is there for the same bytes.

    Raises BatchConfigError for a broken batch.yaml, MeshError when ``meshes_dir`` is not a folder,
    AssetFolderError when ``assets_dir`` holds foreign files and NoValidMeshesError (every reason listed)
    when no mesh becomes an asset. Per-file problems are returned in ``errors``; the rest is prepared.
    """
    meshes_dir, assets_dir = Path(meshes_dir), Path(assets_dir)
    fingerprint = batch_fingerprint(meshes_dir)
    existing = read_prepared(assets_dir)
    if existing is not None and existing.fingerprint == fingerprint:
        existing.reused = True
        return existing
    if existing is None and assets_dir.exists() and any(assets_dir.iterdir()):
        raise AssetFolderError(f"{assets_dir} is not empty and holds no {contract.ASSET_PLAN_NAME}: choose another")
    batch = discover_batch(meshes_dir)
    meshes, load_errors = load_batch(batch, progress=progress)
    assets_dir.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{assets_dir.name}.tmp-", dir=assets_dir.parent))
    try:
        assets, errors = _write_assets(meshes, meshes_dir, build, progress=progress, looks=batch.looks)
        errors = [FileError(_relative(e.path, meshes_dir), e.reason) for e in load_errors] + errors
        if assets:
            errors += dropped_classes(batch.class_names, assets)
        prepared = _plan(batch, assets_dir, assets, errors, fingerprint)
        if not assets:
            raise NoValidMeshesError(meshes_dir, prepared.error_lines(meshes_dir))
        (build / contract.ASSET_PLAN_NAME).write_text(json.dumps(prepared.to_dict(), indent=2), encoding="utf-8")
        replace_folder(build, assets_dir)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return prepared


def dropped_classes(discovered: list[str], assets: list[AssetRecord]) -> list[FileError]:
    """One error per discovered class none of whose meshes became an asset: the class is dropped (a class
    with no rendered instance would only teach the model that it never appears), the others go on."""
    kept = {asset.class_name for asset in assets}
    return [
        FileError(name, f"class {name!r} dropped: none of its meshes could be used (their errors are listed above)")
        for name in discovered
        if name not in kept
    ]


def _plan(
    batch: BatchPlan, assets_dir: Path, assets: list[AssetRecord], errors: list[FileError], fingerprint: str
) -> PreparedBatch:
    kept = {asset.class_name for asset in assets}
    return PreparedBatch(
        assets_dir=assets_dir,
        class_names=[name for name in batch.class_names if name in kept] if assets else list(batch.class_names),
        assets=assets,
        errors=errors,
        render_overrides=dict(batch.render_overrides),
        training=dict(batch.config.get(contract.MANIFEST_TRAINING_FIELD) or {}),
        settings={
            "triangle_budget": batch.triangle_budget,
            "max_triangles": batch.max_triangles,
            "up_axis": batch.up_axis,
            "scale": batch.scale,
            "usd_labels": batch.usd_labels,
        },
        fingerprint=fingerprint,
    )


def _write_assets(
    meshes: Sequence[Mesh], meshes_dir: Path, out_dir: Path, *, progress: bool, looks: dict[str, Look] | None = None
) -> tuple[list[AssetRecord], list[FileError]]:
    """Write and validate one asset per mesh; a mesh whose asset fails validation becomes a per-file error."""
    from tqdm import tqdm

    from isaac_jobs.usd_export import TEXTURE_SUFFIX, asset_path, validate_usd, write_usd

    assets: list[AssetRecord] = []
    errors: list[FileError] = []
    for mesh in tqdm(meshes, desc="meshes -> USD", unit="asset", disable=not progress):
        usd = asset_path(out_dir, mesh)
        look = (looks or {}).get(mesh.class_name)
        if look is not None and not apply_look(mesh, look, meshes_dir):
            look = None  # the mesh keeps its own texture or vertex colours
        try:
            write_usd(mesh, usd, look)
            problems = validate_usd(usd)
        except Exception as exc:  # a writer bug on one mesh must not take the batch down with it
            problems = [f"{type(exc).__name__}: {exc}"]
        texture = usd.with_name(usd.stem + TEXTURE_SUFFIX)
        if problems:
            usd.unlink(missing_ok=True)
            texture.unlink(missing_ok=True)
            details = "; ".join(p.replace(str(out_dir) + "/", "") for p in problems)
            reason = f"its USD asset failed validation: {details}"
            errors.append(FileError(_relative(mesh.source, meshes_dir), reason))  # reported with the others
            continue
        files = tuple(
            AssetFile(p.relative_to(out_dir).as_posix(), contract.file_sha256(p), p.stat().st_size)
            for p in (usd, texture)
            if p.is_file()
        )
        low, high = mesh.bounds
        assets.append(
            AssetRecord(
                class_name=mesh.class_name,
                name=mesh.name,
                path=files[0].path,
                sha256=files[0].sha256,
                bytes=files[0].bytes,
                files=files,
                source=_relative(mesh.source, meshes_dir),
                source_sha256=mesh.source_sha256,
                source_bytes=mesh.source_bytes,
                triangles=mesh.triangles,
                original_triangles=mesh.original_triangles,
                own_appearance=has_own_appearance(mesh),
                look=None if look is None else asdict(look),
                bounds=(
                    (float(low[0]), float(low[1]), float(low[2])),
                    (float(high[0]), float(high[1]), float(high[2])),
                ),
                texture_notes=tuple(mesh.texture_notes),
            )
        )
    return assets, errors
