"""Binomial intervals for accuracies measured on a finite test set.

On the digits one test image is 0.28 points: whether two levels differ or merely zig-zag is a
question of the test set's size. `wilson` gives the Wilson score interval (Wilson 1927) of a
proportion p measured on n independent examples, which stays inside [0, 1] and keeps its
coverage near 0 and 1, where the normal approximation p ± z·sqrt(p(1 − p)/n) does not.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the two-sided 95% quantile of the standard normal


def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (lo, hi) of a proportion `p` in [0, 1] observed on `n` >= 1
    examples: (p + z²/2n ± z·sqrt(p(1 − p)/n + z²/4n²)) / (1 + z²/n)."""
    assert n >= 1 and 0.0 <= p <= 1.0, (p, n)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def format_wilson(p: float, n: int | None) -> str:
    """` [lo, hi]` in percent (one decimal) for an accuracy `p` on `n` images, or "" without n."""
    if not n:
        return ""
    lo, hi = wilson(p, n)
    return f" [{100 * lo:.1f}, {100 * hi:.1f}]"
