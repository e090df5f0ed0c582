"""An HTML page in a real browser (Debian's headless Chromium, driven by Playwright), for the
report tests: what loaded, what the page says, and a screenshot kept beside it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH (.ci/run installs Debian's: apt-get install -y chromium)",
)


@dataclass
class Rendered:
    images: list[list]  # [src, complete, naturalWidth] per <img>
    headings: list[str]  # the text of every <h2>
    text: str  # the page's visible text
    errors: list[str]  # console errors


def render(page_path: Path, screenshot: Path) -> Rendered:
    """Open `page_path` in headless Chromium at 1000 × 800, wait for it to load, and save a
    full-page screenshot at `screenshot`."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(Path(page_path).as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all(
            "img", "els => els.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
        )
        headings = page.eval_on_selector_all("h2", "els => els.map(h => h.textContent)")
        text = page.inner_text("body")
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return Rendered(images, headings, text, errors)
