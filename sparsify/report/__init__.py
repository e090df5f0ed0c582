"""The human-readable report of a run."""

from sparsify.report.writer import write_report

__all__ = ["write_report"]
