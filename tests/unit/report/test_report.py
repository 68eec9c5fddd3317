from __future__ import annotations

import html
import re
from pathlib import Path

from sim2cloud.report.collect import RunArtefacts, build_report, write_report
from sim2cloud.report.render import SECTIONS, render_html

from .conftest import CLASS_NAMES, GATE_THRESHOLD


def test_every_section_is_filled_from_a_complete_run(artefacts: RunArtefacts, tmp_path: Path) -> None:
    page = write_report(artefacts, tmp_path / "report.html").read_text()
    for key, title in SECTIONS:
        section = page.split(f'<section id="{key}">', 1)[1].split("</section>", 1)[0]
        assert "not available for this run" not in section, title
    assert page.count("<img ") == 4  # preview, 2 Ultralytics plots, detections of the served model
    assert "quality gate mAP50 0.5" in page  # the gate's threshold drawn across the mAP curve
    assert "gated: 0.610" in page


def test_the_page_is_self_contained(artefacts: RunArtefacts) -> None:
    page = render_html(build_report(artefacts))
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(source.startswith("data:image/") for source in sources)
    assert not re.search(r'(href|src)="(https?:)?//', page)  # no network: no remote link, script or style
    assert "<script" not in page


def test_run_text_is_escaped_not_markup(artefacts: RunArtefacts) -> None:
    page = render_html(build_report(artefacts))
    assert "coffee &lt;mug&gt;" in page and "book &amp; co" in page
    assert "<mug>" not in page
    assert "run-&lt;1&gt;" in page


def test_each_number_says_which_model_file_and_split(artefacts: RunArtefacts) -> None:
    report = build_report(artefacts)
    labels = [(m["label"], m["model_file"], m["split"]) for m in report["ap"]]
    assert labels == [
        ("training job (gate)", "model.onnx", "val"),
        ("sim2cloud evaluate", "model.onnx (model.tar.gz)", "val"),
    ]
    page = render_html(report)
    ap_section = page.split('<section id="ap">', 1)[1].split("</section>", 1)[0]
    assert all(f"<td>{html.escape(name)}</td>" in ap_section for name in CLASS_NAMES)
    assert "0.610" in ap_section and "0.600" in ap_section and "<code>val</code>" in ap_section


def test_gate_decision_reason_and_lineage(artefacts: RunArtefacts) -> None:
    report = build_report(artefacts)
    assert report["gate"]["decision"] == "pass"
    assert report["gate"]["threshold"] == GATE_THRESHOLD
    assert "meets the quality gate" in report["gate"]["reason"]
    page = render_html(report)
    lineage = page.split('<section id="lineage">', 1)[1].split("</section>", 1)[0]
    for fact in ("ab" * 32, "ef" * 32, "0123456789abcdef", "model-package/g/1"):
        assert fact in lineage  # mesh hash -> dataset manifest -> model version -> package


def test_cost_lines_and_price_date(artefacts: RunArtefacts) -> None:
    page = render_html(build_report(artefacts))
    cost = page.split('<section id="cost">', 1)[1].split("</section>", 1)[0]
    assert "$1.4080" in cost  # one billable hour of ml.g5.xlarge at the table's list price
    assert "as of 20" in cost


def test_a_run_with_only_its_dataset_still_gets_a_report(artefacts: RunArtefacts, tmp_path: Path) -> None:
    page = write_report(RunArtefacts(dataset=artefacts.dataset), tmp_path / "report.html").read_text()
    assert page.count("not available for this run") == 7  # timeline, curves, plots, ap, detections, gate, cost
    assert '<section id="dataset">' in page
