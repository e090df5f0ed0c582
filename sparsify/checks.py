"""The two checks most settings need, each ending in a one-line UserError that says what would
be valid. Used by validate.py and by the config dataclasses' own `check()` methods."""

from __future__ import annotations

from typing import Any

from sparsify.errors import UserError


def check_range(
    key: str, value: Any, lo: float, hi: float | None, lo_open: bool = False, hi_open: bool = True
) -> None:
    """`lo <= value < hi` by default; `lo_open` / `hi_open` exclude or include the ends."""
    ok = (value > lo if lo_open else value >= lo) and (
        hi is None or (value < hi if hi_open else value <= hi)
    )
    if not ok:
        left = "(" if lo_open else "["
        right = "∞)" if hi is None else (f"{hi})" if hi_open else f"{hi}]")
        raise UserError(f"{key}={value} is out of range; valid: {left}{lo}, {right}")


def check_choice(key: str, value: Any, valid: tuple[Any, ...] | list[Any]) -> None:
    if value not in valid:
        raise UserError(
            f"{key}={value!r} is not valid; choose one of: {', '.join(map(str, valid))}"
        )
