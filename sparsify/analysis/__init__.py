"""Analyses over studies (runs sharing a study key), registered in ANALYSES."""

from sparsify.analysis import seeds  # noqa: F401  (registers)
from sparsify.analysis.base import ANALYSES, Study, analysis, collect, run_analysis

__all__ = ["ANALYSES", "Study", "analysis", "collect", "run_analysis"]
