"""report.html in a real browser (Debian's headless Chromium, driven by Playwright): every image
loads, the page is not blank, and a screenshot is kept beside the report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sparsify.compose import compose
from sparsify.run import run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH (.ci/run installs Debian's: apt-get install -y chromium)",
)
def test_report_html_renders_with_every_image_loaded(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra)")
    run_dir = tmp_path / "run"
    run(compose(["train.epochs=1", "prune.levels=1", "train.batch_size=128", "eval=full"]), run_dir)
    shot = run_dir / "report_screenshot.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto((run_dir / "report.html").as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all(
            "img", "els => els.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
        )
        headings = page.eval_on_selector_all("h2", "els => els.map(h => h.textContent)")
        text = page.inner_text("body")
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert len(images) >= 9, images
    broken = [src for src, complete, width in images if not complete or width == 0]
    assert not broken, broken
    assert headings[0] == "Verdict" and "Safe sparsity" in text
    assert len(text) > 500 and not errors, errors
    assert Path(shot).stat().st_size > 20_000
