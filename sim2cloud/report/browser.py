"""Open a report in headless Chromium (Debian's chromium + chromium-driver, driven by selenium) and check it.

Used by the browser test and by ``scripts/report_screenshot.py`` (the README's picture). Selenium is pointed
at /usr/bin/chromedriver, so Selenium Manager never downloads a driver or a browser; the page is opened from
disk with the network off, so anything the report tried to fetch would show as a missing image or an error.
Needs the dev requirements (selenium) and scripts/bootstrap.sh's Debian packages (chromium, chromium-driver).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

CHROMEDRIVER = Path(os.environ.get("SIM2CLOUD_CHROMEDRIVER", "/usr/bin/chromedriver"))
"""``SIM2CLOUD_CHROMEDRIVER``: the chromedriver to use (Debian's by default)."""
CHROMIUM = Path(os.environ.get("SIM2CLOUD_CHROMIUM", "/usr/bin/chromium"))
"""``SIM2CLOUD_CHROMIUM``: the browser binary (Debian's by default)."""

_IMAGES_STATE = """
return Array.from(document.images).map(img => ({
  alt: img.alt, complete: img.complete, width: img.naturalWidth,
  inline: img.currentSrc.startsWith('data:')}));
"""


@dataclass
class PageCheck:
    images: int = 0
    missing_images: list[str] = field(default_factory=list)
    """alt text of each image that did not decode or was not inline."""
    console_errors: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    """ids of the page's sections, in order."""


def available() -> str | None:
    """None when the browser can run here, else why not."""
    for path in (CHROMEDRIVER, CHROMIUM):
        if not path.is_file():
            return f"{path} is missing (scripts/bootstrap.sh installs chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements-dev.txt)"
    return None


def check_page(
    page: Path, screenshot: Path | None = None, width: int = 1200, height: int = 900, scroll_to: str | None = None
) -> PageCheck:
    """Load ``page`` from disk offline; report broken images and console errors; optionally save a PNG of the
    window (scrolled to the element with id ``scroll_to`` first)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in containers and CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--proxy-server=127.0.0.1:9",  # offline: any fetch the page tried would fail and show up
        "--proxy-bypass-list=<-loopback>",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(page.resolve().as_uri())
        images = driver.execute_script(_IMAGES_STATE)
        check = PageCheck(
            images=len(images),
            missing_images=[i["alt"] for i in images if not (i["complete"] and i["width"] > 0 and i["inline"])],
            console_errors=[e["message"] for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")],
            sections=driver.execute_script("return Array.from(document.querySelectorAll('section')).map(s => s.id);"),
        )
        if screenshot is not None:
            if scroll_to:
                driver.execute_script("document.getElementById(arguments[0]).scrollIntoView();", scroll_to)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(screenshot))
        return check
    finally:
        driver.quit()
