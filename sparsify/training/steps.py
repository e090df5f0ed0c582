"""Step arithmetic in one place: durations and points in training are written `160ep`, `500it`
or `2ep100it` and converted to iterations here, given the iterations per epoch."""

from __future__ import annotations

import re

from sparsify.errors import UserError

_STEP = re.compile(r"^\s*(?:(\d+)\s*ep)?\s*(?:(\d+)\s*it)?\s*$")


def check_step(text: str, key: str) -> None:
    """Raise a UserError if `text` is not a valid step string (used when validating config)."""
    m = _STEP.match(str(text))
    if not text or m is None or (m.group(1) is None and m.group(2) is None):
        raise UserError(
            f"{key}={text!r} is not a step; write it as epochs and/or iterations, "
            "e.g. '160ep', '500it' or '2ep100it'"
        )


def to_iterations(text: str, iterations_per_epoch: int, key: str = "step") -> int:
    """Iterations that `text` stands for (`'2ep'` with 50 iterations per epoch → 100)."""
    check_step(text, key)
    assert iterations_per_epoch > 0
    m = _STEP.match(str(text))
    assert m is not None
    epochs = int(m.group(1) or 0)
    its = int(m.group(2) or 0)
    return epochs * iterations_per_epoch + its
