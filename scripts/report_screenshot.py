"""The README's picture of the run report: open a report.html in headless Chromium (the browser test's code
path, sim2cloud/report/browser.py), check it, and save a small PNG of it (from its top or from one section).

    .venv/bin/python scripts/report_screenshot.py --report out/demo/report.html --section curves \
        --out docs/images/run-report.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image

from sim2cloud.report import browser

MAX_BYTES = 300_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--report", type=Path, required=True, help="a report.html")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--height", type=int, default=2200, help="page height captured, CSS px (default: %(default)s)")
    parser.add_argument("--width", type=int, default=760, help="width of the saved picture (default: %(default)s)")
    parser.add_argument("--section", help="start at this section id (e.g. curves); default: the top of the page")
    args = parser.parse_args(argv)
    missing = browser.available()
    if missing:
        raise SystemExit(f"report_screenshot: {missing}")
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "page.png"
        check = browser.check_page(args.report, screenshot=raw, width=1150, height=args.height, scroll_to=args.section)
        if check.missing_images or check.console_errors:
            raise SystemExit(f"report_screenshot: the page is broken: {check}")
        with Image.open(raw) as page:
            scale = args.width / page.width
            small = page.convert("RGB").resize((args.width, round(page.height * scale)), Image.Resampling.LANCZOS)
    small = small.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    small.save(args.out, optimize=True)
    size = args.out.stat().st_size
    print(f"{args.out}: {small.width}x{small.height}, {size} bytes, {check.images} images checked")
    return 0 if size <= MAX_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
