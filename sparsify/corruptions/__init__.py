"""Hendrycks & Dietterich's common corruptions, batched in torch (see base.py for the contract).

`corrupt(x, name, severity, generator)` corrupts a batch; CORRUPTIONS lists the 19 registered
ones; BENCHMARK the 15 of mCE, EXTRA the 4 held out; ORDER the order reports use.
"""

from __future__ import annotations

from sparsify.corruptions import blur, color, digital, noise, weather  # noqa: F401  (registers)
from sparsify.corruptions.base import (
    BENCHMARK,
    CORRUPTIONS,
    EXTRA,
    FAMILIES,
    ORDER,
    PRESETS,
    SEVERITIES,
    corrupt,
    preset_for,
)

__all__ = [
    "BENCHMARK",
    "CORRUPTIONS",
    "EXTRA",
    "FAMILIES",
    "ORDER",
    "PRESETS",
    "SEVERITIES",
    "corrupt",
    "preset_for",
]
