"""The report in a real headless browser (Debian's Chromium via selenium, offline): every picture loads from
the page itself and the console stays clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim2cloud.report import browser
from sim2cloud.report.collect import RunArtefacts, write_report
from sim2cloud.report.render import SECTIONS


def test_the_report_loads_in_chromium_with_every_image_and_no_console_error(
    artefacts: RunArtefacts, tmp_path: Path
) -> None:
    missing = browser.available()
    if missing:
        pytest.fail(f"the browser test cannot run: {missing}", pytrace=False)
    page = write_report(artefacts, tmp_path / "report.html")
    screenshot = tmp_path / "report.png"
    check = browser.check_page(page, screenshot=screenshot)
    assert check.images == 4
    assert check.missing_images == []
    assert check.console_errors == []
    assert check.sections == [key for key, _title in SECTIONS]
    assert screenshot.stat().st_size > 10_000  # something was drawn


def test_a_broken_picture_is_caught(artefacts: RunArtefacts, tmp_path: Path) -> None:
    # The check itself must see a picture that does not decode (else the test above proves nothing).
    page = write_report(artefacts, tmp_path / "report.html")
    text = page.read_text()
    page.write_text(text.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    check = browser.check_page(page)
    assert len(check.missing_images) == 1
