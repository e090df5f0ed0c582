"""Exact top-k masks of rows that change a little between calls (edge-popup's scores).

A full top-k of half of each layer's scores is most of edge-popup's cost per step on a CPU, yet
from one step to the next only a few scores cross the cut: on the embedded default at most 27
per layer. `TrackedTopK` keeps, for each row, a bracket [lo, hi] of values around the previous
cut, about `margin` entries wide on each side. Next call, the entries above `hi` are kept for
sure, and the cut is found among the few inside the bracket by a top-k of about `margin`
entries. When the bracket no longer holds the cut (more than `margin` entries crossed it) or the
cut falls on a tie, the call falls back to the full top-k and rebuilds the bracket. Either way
the mask is exactly that of `torch.topk`: the k largest entries of each row, ties broken as
`torch.topk` breaks them.
"""

from __future__ import annotations

import torch
from torch import Tensor


class TrackedTopK:
    """Float 0/1 masks keeping the `k` largest entries of each row of a (rows, n) tensor."""

    def __init__(self, k: int, margin: int = 32) -> None:
        assert k >= 1 and margin >= 1
        self.k, self.margin = k, margin
        self.lo: Tensor | None = None  # (rows, 1): the bracket around the last cut
        self.hi: Tensor | None = None

    def __call__(self, a: Tensor) -> Tensor:
        assert a.dim() == 2 and self.k <= a.shape[1]
        if self.k == a.shape[1]:
            return torch.ones_like(a)
        # On a GPU the full top-k is cheap and the tracked path's checks would wait on the device.
        track = a.device.type == "cpu"
        if track and self.lo is not None and self.lo.shape[0] == a.shape[0]:
            mask = self._tracked(a)
            if mask is not None:
                return mask
        return self._full(a, track)

    def _full(self, a: Tensor, track: bool = True) -> Tensor:
        """torch.topk, and the bracket: the values `margin` ranks above and below the cut."""
        k, n, margin = self.k, a.shape[1], self.margin
        top = a.topk(k, dim=1, sorted=False)
        mask = torch.zeros_like(a).scatter_(1, top.indices, 1.0)
        if not track:
            return mask
        if k > margin:  # the (margin + 1)-th smallest kept value: rank k - margin
            self.hi = top.values.kthvalue(margin + 1, dim=1, keepdim=True).values
        else:
            self.hi = top.values.amax(dim=1, keepdim=True)
        rest = a.masked_fill(mask.bool(), float("-inf"))
        below = min(margin, n - k)  # the largest values left out, down to rank k + margin
        self.lo = rest.topk(below, dim=1, sorted=False).values.amin(dim=1, keepdim=True)
        return mask

    def _tracked(self, a: Tensor) -> Tensor | None:
        """The mask from the entries inside the bracket; None where they cannot give it."""
        assert self.lo is not None and self.hi is not None
        if bool(a.isnan().any()):
            return None  # torch.topk ranks NaN highest; comparisons cannot
        above = a > self.hi  # kept whatever the cut
        band = (a >= self.lo) & ~above
        need = self.k - above.sum(dim=1, keepdim=True)  # to take from the band, largest first
        in_band = band.sum(dim=1, keepdim=True)
        if not bool(((need >= 1) & (need <= in_band) & (need <= 4 * self.margin)).all()):
            return None
        width = int(torch.minimum(need + self.margin, in_band).max())
        top = a.masked_fill(~band, float("-inf")).topk(width, dim=1).values  # descending
        cut = top.gather(1, need - 1)
        after = top.gather(1, need.clamp(max=width - 1))  # the next value down, inside the band
        if bool(((after == cut) & (need < in_band)).any()):
            return None  # a tie at the cut: torch.topk decides which entries stay
        # New bracket: `margin` ranks either side of the cut where the band reaches that far,
        # else the old bound.
        up = need - 1 - self.margin
        self.hi = torch.where(up >= 0, top.gather(1, up.clamp(min=0)), self.hi)
        down = need - 1 + self.margin
        reach = down < in_band.clamp(max=width)
        self.lo = torch.where(reach, top.gather(1, down.clamp(max=width - 1)), self.lo)
        return (a >= cut).to(a.dtype)
