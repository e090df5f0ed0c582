"""The human-readable report of a run: a model of sections (model.py) built by report parts
(parts.py) and rendered as Markdown and HTML (render.py)."""

from sparsify.report.writer import build_report, write_report

__all__ = ["build_report", "write_report"]
