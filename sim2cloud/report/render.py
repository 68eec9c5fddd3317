"""The run report as one self-contained HTML page, from a plain document of its parts (stdlib only).

Pictures arrive as ``data:`` URIs and the training curves are drawn here as inline SVG, so the page needs no
network, no server and no other file: it opens from disk or from S3 as it is, and this module runs wherever
the parts are (the demo, ``sim2cloud report``, a Lambda without numpy or matplotlib). Every text taken from
the run (class names, paths, settings) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PICTURE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}

CURVE_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("losses (train)", ("box_loss", "cls_loss", "dfl_loss")),
    ("mAP (Ultralytics' val each epoch)", ("mAP50", "mAP50-95")),
    ("precision / recall", ("precision", "recall")),
)
CURVE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c")
LEGEND_HEIGHT = 18

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;padding:1rem 2rem;
color:#1d2327;background:#fff}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
th{background:#f3f4f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:.5rem 0}figcaption{color:#50575e;font-size:.9rem;margin-top:.3rem}
img{max-width:100%;height:auto;border:1px solid #ddd}.plots{display:flex;flex-wrap:wrap;gap:1rem}
#samples img{max-width:640px}
.plots figure{flex:1 1 45%}.pass{color:#0a7d32;font-weight:bold}.fail{color:#b32d2e;font-weight:bold}
.muted{color:#50575e}.bar{display:inline-block;height:.8rem;background:#2271b1}
.swatch{display:inline-block;width:1rem;height:.8rem;border:2px solid;margin:0 .3rem -.1rem .6rem}
pre{background:#f6f7f7;padding:.6rem;overflow:auto;font-size:.85rem}code{font-size:.9rem}
"""


def data_uri(path: Path) -> str:
    """The file as a ``data:`` URI (PNG, JPEG or SVG by its suffix)."""
    kind = PICTURE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: not a picture the report embeds ({', '.join(PICTURE_TYPES)})")
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else _e(value if value is not None else "-")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{_number(cell)}</td>'
            if i >= numeric_from and isinstance(cell, float)
            else f"<td>{_e(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pairs(rows: Sequence[Sequence[Any]]) -> str:
    """A two-column table of names and values, no header."""
    body = "".join(f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in rows)
    return f"<table><tbody>{body}</tbody></table>"


def _figure(uri: str, alt: str, caption: str) -> str:
    return f'<figure><img src="{_e(uri)}" alt="{_e(alt)}"><figcaption>{caption}</figcaption></figure>'


def curves_svg(history: Sequence[Mapping[str, float]], gate: float | None, gate_value: float | None) -> str:
    """One SVG panel per metric group against the epoch; the gate's threshold dashed across the mAP panel and
    the gated number (the exported model's, measured after training) marked at the last epoch."""
    entries = [e for e in history if "epoch" in e]
    if not entries:
        return '<p class="muted">no epoch history</p>'
    width, height, pad = 330, 210, 34
    epochs = [float(e["epoch"]) for e in entries]
    x_min, x_max = min(epochs), max(max(epochs), min(epochs) + 1)
    panels = []
    for title, names in CURVE_PANELS:
        series = {n: [(float(e["epoch"]), float(e[n])) for e in entries if n in e] for n in names}
        values = [v for points in series.values() for _, v in points]
        if title.startswith("mAP") and gate is not None:
            values.append(gate)
        if title.startswith("mAP") and gate_value is not None:
            values.append(gate_value)
        if not values:
            continue
        y_min = 0.0 if min(values) >= 0 else min(values)
        y_max = max(max(values), y_min + 1e-6) * (1.0 if title.startswith(("mAP", "prec")) else 1.05)
        if title.startswith(("mAP", "prec")):
            y_max = max(y_max, 0.05)

        def x(v: float) -> float:
            return pad + (v - x_min) / (x_max - x_min) * (width - pad - 8)

        def y(v: float, y_min: float = y_min, y_max: float = y_max) -> float:
            return height - pad + 8 - (v - y_min) / (y_max - y_min) * (height - pad - 8 - 18)

        parts = [f'<text x="{width / 2}" y="13" text-anchor="middle" font-size="12">{_e(title)}</text>']
        parts.append(
            f'<line x1="{pad}" y1="{height - pad + 8}" x2="{width - 8}" y2="{height - pad + 8}" stroke="#999"/>'
            f'<line x1="{pad}" y1="18" x2="{pad}" y2="{height - pad + 8}" stroke="#999"/>'
            f'<text x="{pad - 3}" y="{y(y_max) + 4:.1f}" text-anchor="end" font-size="9">{y_max:.3g}</text>'
            f'<text x="{pad - 3}" y="{y(y_min) + 3:.1f}" text-anchor="end" font-size="9">{y_min:.3g}</text>'
            f'<text x="{x(x_min):.1f}" y="{height - pad + 20}" font-size="9">{x_min:g}</text>'
            f'<text x="{x(x_max):.1f}" y="{height - pad + 20}" text-anchor="end" font-size="9">{x_max:g}</text>'
            f'<text x="{width / 2}" y="{height - 4}" text-anchor="middle" font-size="10">epoch</text>'
        )
        legend_x = float(pad)  # the legend is a row under the panel: it never hides a curve
        for colour, (name, points) in zip(CURVE_COLOURS, series.items(), strict=False):
            if not points:
                continue
            path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in points)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{path}"/>')
            parts.append(
                f'<line x1="{legend_x:.0f}" y1="{height + 8}" x2="{legend_x + 14:.0f}" y2="{height + 8}" '
                f'stroke="{colour}" stroke-width="2"/><text x="{legend_x + 17:.0f}" y="{height + 12}" '
                f'font-size="10">{_e(name)}</text>'
            )
            legend_x += 30 + 6 * len(name)
        if title.startswith("mAP") and gate is not None:
            parts.append(
                f'<line x1="{pad}" y1="{y(gate):.1f}" x2="{width - 8}" y2="{y(gate):.1f}" stroke="#b32d2e" '
                f'stroke-dasharray="5,3"/><text x="{pad + 4}" y="{y(gate) - 3:.1f}" font-size="10" fill="#b32d2e">'
                f"quality gate mAP50 {gate:.3g}</text>"
            )
        if title.startswith("mAP") and gate_value is not None:
            parts.append(
                f'<circle cx="{x(epochs[-1]):.1f}" cy="{y(gate_value):.1f}" r="4" fill="none" stroke="#000" '
                f'stroke-width="1.5"/><text x="{x(epochs[-1]) - 6:.1f}" y="{y(gate_value) + 14:.1f}" '
                f'text-anchor="end" font-size="10">gated: {gate_value:.3f}</text>'
            )
        panels.append(
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + LEGEND_HEIGHT}" role="img" '
            f'aria-label="{_e(title)}">{"".join(parts)}</svg>'
        )
    return '<div class="plots">' + "".join(panels) + "</div>"


def _timeline(stages: Sequence[Mapping[str, Any]]) -> str:
    total = sum(float(s.get("seconds") or 0) for s in stages) or 1.0
    rows = []
    for stage in stages:
        seconds = float(stage.get("seconds") or 0)
        bar = f'<span class="bar" style="width:{max(1, round(300 * seconds / total))}px"></span>'
        rows.append(f'<tr><td>{_e(stage["stage"])}</td><td class="n">{seconds:.1f} s</td><td>{bar}</td></tr>')
    rows.append(f'<tr><th>total</th><th class="n">{total:.1f} s</th><th></th></tr>')
    return (
        "<table><thead><tr><th>stage</th><th>duration</th><th></th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _dataset(dataset: Mapping[str, Any]) -> str:
    names = list(dataset.get("class_names", []))
    counts: Mapping[str, Mapping[str, int]] = dataset.get("boxes", {})
    images: Mapping[str, int] = dataset.get("images", {})
    splits = list(counts) or list(images)
    rows: list[list[Any]] = [[name, *(counts.get(s, {}).get(name, 0) for s in splits)] for name in names]
    rows.append(["images", *(images.get(s, 0) for s in splits)])
    return _table(["class (boxes)", *splits], rows)


def _ap_tables(measurements: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> str:
    if not measurements:
        return '<p class="muted">no measurement found</p>'
    header = ["class", *(f"{m['label']} AP50" for m in measurements), *(f"{m['label']} AP50-95" for m in measurements)]
    rows: list[list[Any]] = []
    for name in class_names:
        cells50 = [m.get("per_class", {}).get(name, {}).get("AP50") for m in measurements]
        cells = [m.get("per_class", {}).get(name, {}).get("AP50-95") for m in measurements]
        rows.append(
            [name, *(c if c is not None else "-" for c in cells50), *(c if c is not None else "-" for c in cells)]
        )
    rows.append(["all (mAP)", *(m.get("mAP50") for m in measurements), *(m.get("mAP50-95") for m in measurements)])
    sources = "".join(
        f"<li><b>{_e(m['label'])}</b>: model file <code>{_e(m.get('model_file', '?'))}</code>, split "
        f"<code>{_e(m.get('split', '?'))}</code>, {_e(m.get('images', '?'))} images, "
        f"through {_e(m.get('via', '?'))}</li>"
        for m in measurements
    )
    definition = next((m.get("definition") for m in measurements if m.get("definition")), "")
    return (
        _table(header, rows)
        + f"<ul>{sources}</ul>"
        + (f'<p class="muted">One definition for every number: {_e(definition)}.</p>' if definition else "")
    )


def _detections(detections: Mapping[str, Any]) -> str:
    legend = '<span class="swatch" style="border-color:#fff;background:#444"></span>ground truth (thin white)'
    for name, colour in detections.get("legend", {}).items():
        legend += f'<span class="swatch" style="border-color:rgb{tuple(colour)}"></span>{_e(name)} (prediction)'
    caption = _e(detections.get("caption", "")) + f"<br>{legend}"
    return _figure(detections["image"], "detections on val images", caption)


def _gate(gate: Mapping[str, Any]) -> str:
    decision = str(gate.get("decision", "unknown"))
    css = "pass" if decision in ("pass", "Approved") else "fail"
    rows = [
        ["decision", f"{decision} -> {gate.get('approval_status', '?')}"],
        ["why", gate.get("reason", "")],
        ["metric", f"{gate.get('metric', 'mAP50')} = {_number(gate.get('value'))} (threshold {gate.get('threshold')})"],
        ["measured on", gate.get("measured_on", "")],
        ["model package", gate.get("model_package_arn", "")],
    ]
    return f'<p class="{css}">{_e(decision)}</p>' + _pairs(rows)


def _cost(cost: Mapping[str, Any]) -> str:
    rows = [
        [
            line["what"],
            line["instance_type"],
            line["seconds"],
            f"${line['usd_per_hour']:.4f}",
            "spot" if line["spot"] else "on-demand",
            f"${line['usd']:.4f}",
            line.get("note", ""),
        ]
        for line in cost.get("lines", [])
    ]
    prices = cost.get("prices", {})
    return (
        f"<p>Estimated <b>${cost.get('total_usd', 0):.4f}</b> for this run ({_e(cost.get('basis', ''))}).</p>"
        + _table(["what", "instance", "seconds", "per hour", "capacity", "cost", "note"], rows)
        + f'<p class="muted">{_e(prices.get("kind", ""))}, {_e(prices.get("region", ""))}, as of '
        f"{_e(prices.get('as_of', ''))} (sim2cloud/pricing.py, with the source page of each price).</p>"
    )


def _lineage(lineage: Mapping[str, Any]) -> str:
    meshes = lineage.get("source_meshes") or []
    mesh_rows = [[m.get("key") or m.get("path", ""), m.get("sha256") or m.get("etag", "")] for m in meshes]
    chain = [
        ["meshes", f"{len(meshes)} files (below)"],
        ["dataset", f"run {lineage.get('dataset_run', '?')}, manifest sha256 {lineage.get('manifest_sha256', '?')}"],
        [
            "model",
            f"version {lineage.get('model_version', '?')} (sha256 of model.onnx), "
            f"job {lineage.get('training_job', '?')}",
        ],
        ["package", lineage.get("model_package_arn", "") or "-"],
    ]
    return _pairs(chain) + _table(["mesh", "hash (sha256 or S3 ETag)"], mesh_rows, numeric_from=9)


SECTIONS = (
    ("timeline", "Stage timeline"),
    ("samples", "Sample renders with ground truth"),
    ("dataset", "Dataset"),
    ("curves", "Training curves"),
    ("plots", "Ultralytics' plots (final validation of best.pt)"),
    ("ap", "Average precision per class"),
    ("detections", "Detections on val images"),
    ("gate", "Quality gate"),
    ("lineage", "Lineage"),
    ("settings", "Settings"),
    ("cost", "Cost of the run"),
)


def render_html(report: Mapping[str, Any]) -> str:
    """The page for a report document (see sim2cloud.report.collect for its fields); missing parts say so."""
    body: list[str] = []
    for key, title in SECTIONS:
        part = report.get(key)
        body.append(f'<section id="{key}"><h2>{_e(title)}</h2>')
        if not part:
            body.append('<p class="muted">not available for this run</p></section>')
            continue
        if key == "timeline":
            body.append(_timeline(part))
        elif key == "samples":
            body.append(_figure(part["image"], "sample renders", _e(part.get("caption", ""))))
        elif key == "dataset":
            body.append(_dataset(part))
        elif key == "curves":
            body.append(curves_svg(part.get("history", []), part.get("gate"), part.get("gate_value")))
            body.append(f'<p class="muted">{_e(part.get("caption", ""))}</p>')
        elif key == "plots":
            body.append(
                '<p class="muted">Ultralytics\' own validation of best.pt: it pads each batch by half a stride '
                "(rect), so the numbers inside these plots can differ a little from the table below, which measures "
                "the exported model.onnx as it is served.</p>"
            )
            body.append(
                '<div class="plots">'
                + "".join(_figure(p["image"], p["title"], _e(p["title"])) for p in part)
                + "</div>"
            )
        elif key == "ap":
            body.append(_ap_tables(part, report.get("dataset", {}).get("class_names", [])))
        elif key == "detections":
            body.append(_detections(part))
        elif key == "gate":
            body.append(_gate(part))
        elif key == "lineage":
            body.append(_lineage(part))
        elif key == "settings":
            for name, value in part.items():
                text = _e(json.dumps(value, indent=2, sort_keys=True, default=str))
                body.append(f"<details><summary>{_e(name)}</summary><pre>{text}</pre></details>")
        elif key == "cost":
            body.append(_cost(part))
        body.append("</section>")
    run = _e(report.get("run", ""))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Sim-to-Cloud run {run}</title><style>{STYLE}</style></head><body>"
        f"<h1>Sim-to-Cloud run {run}</h1>"
        f'<p class="muted">generated {_e(report.get("generated_at", ""))} by {_e(report.get("generated_by", ""))}</p>'
        + "".join(body)
        + "</body></html>\n"
    )
