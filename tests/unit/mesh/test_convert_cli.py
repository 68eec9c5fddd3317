"""``sim2cloud convert``: USD assets and a per-file report without rendering."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import trimesh

from isaac_jobs.usd_export import validate_usd
from sim2cloud import contract
from sim2cloud.cli import main


def test_convert_writes_valid_assets_and_a_per_file_report(tmp_path: Path, capsys) -> None:
    batch = tmp_path / "meshes"
    (batch / "crate").mkdir(parents=True)
    trimesh.creation.box(extents=(0.3, 0.2, 0.2)).export(batch / "crate" / "crate.stl")
    (batch / "crate" / "broken.glb").write_bytes(b"glTF\x02\x00\x00\x00garbage")
    out = tmp_path / "assets"
    assert main(["convert", "--meshes", str(batch), "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "1 USD assets" in captured.out and "broken.glb" in captured.err
    report = json.loads((out / "report.json").read_text())
    by_source = {item["source"]: item for item in report["files"]}
    assert by_source["crate/broken.glb"]["status"] == "skipped" and by_source["crate/broken.glb"]["reason"]
    converted = by_source["crate/crate.stl"]
    assert converted["status"] == "converted" and converted["asset"] == "crate/crate.usd"
    asset = out / converted["asset"]
    assert hashlib.sha256(asset.read_bytes()).hexdigest() == converted["sha256"]
    assert validate_usd(asset) == []
    assert (out / contract.ASSET_PLAN_NAME).is_file()
    # Unchanged input: nothing is converted again.
    assert main(["convert", "--meshes", str(batch), "--out", str(out), "--no-progress"]) == 0
    assert "already up to date" in capsys.readouterr().out


def test_convert_with_no_usable_file_exits_1_with_the_reasons(tmp_path: Path, capsys) -> None:
    batch = tmp_path / "meshes"
    (batch / "junk").mkdir(parents=True)
    (batch / "junk" / "empty.usda").write_text("#usda 1.0\n")
    out = tmp_path / "assets"
    assert main(["convert", "--meshes", str(batch), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "no valid mesh" in err and "empty.usda" in err and "no UsdGeom.Mesh" in err
    assert not out.exists()
