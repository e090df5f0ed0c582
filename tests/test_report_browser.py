"""report.html in a real browser (Debian's headless Chromium, driven by Playwright): every image
loads, the page is not blank, and a screenshot is kept beside the report."""

from __future__ import annotations

from pathlib import Path

from sparsify.compose import compose
from sparsify.run import run
from tests.browser import needs_chromium, render


@needs_chromium
def test_report_html_renders_with_every_image_loaded(tmp_path):
    run_dir = tmp_path / "run"
    run(compose(["train.epochs=1", "prune.levels=1", "train.batch_size=128", "eval=full"]), run_dir)
    shot = run_dir / "report_screenshot.png"
    page = render(run_dir / "report.html", shot)
    images, headings, text, errors = page.images, page.headings, page.text, page.errors
    assert len(images) >= 9, images
    broken = [src for src, complete, width in images if not complete or width == 0]
    assert not broken, broken
    assert headings[0] == "Verdict" and "Safe sparsity" in text
    assert len(text) > 500 and not errors, errors
    assert Path(shot).stat().st_size > 20_000
