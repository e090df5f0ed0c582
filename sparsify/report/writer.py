"""report.md and report.html: the report parts (parts.py) rendered, the plots beside them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sparsify.evaluate.base import Evaluator
from sparsify.evaluate.stage import metric_specs
from sparsify.io import save_text
from sparsify.records import LevelRecord, RunResults
from sparsify.report.model import Report, Text
from sparsify.report.parts import ORDER, REPORT_PARTS, ReportInput
from sparsify.report.render import to_html, to_markdown
from sparsify.rundir import RunDir


def build_report(inp: ReportInput) -> Report:
    """The report model of a run (writes the plots it refers to)."""
    intro = [
        Text(
            f"Evaluated on the `{inp.results.split}` split. Sparsity is counted from the "
            "saved weights."
        )
    ]
    sections = [s for name in ORDER for s in REPORT_PARTS.get(name)(inp)]
    return Report(inp.title, intro, sections)


def write_report(
    rd: RunDir,
    results: RunResults,
    records: list[LevelRecord],
    evaluators: list[Evaluator],
    summaries: Sequence[Any] = (),
) -> None:
    """Write report.md, report.html and the plots into the run directory."""
    inp = ReportInput(rd, results, records, evaluators, metric_specs(evaluators), list(summaries))
    report = build_report(inp)
    save_text(to_markdown(report), rd.report_path("md"))
    save_text(to_html(report), rd.report_path("html"))
