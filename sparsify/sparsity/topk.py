"""Exact top-k masks of rows that change a little between calls (edge-popup's scores).

A full top-k of half of each layer's scores is most of edge-popup's cost per step on a CPU, yet
from one step to the next only a few scores cross the cut: on the embedded default at most 27
per layer. `TrackedTopK` keeps, for each row, a bound `hi` about `margin` ranks above the
previous cut. Next call, the entries above `hi` are kept for sure, and the cut is found among
the largest entries at or below `hi` by a top-k of about `margin` + (entries that crossed)
values. The bound then moves to `margin` ranks above the new cut: found among those same values
when the cut fell, and among the smallest entries above the old bound when the cut rose to
within `margin / 2` ranks of it. When the entries above the bound number k or more (the cut
rose past it) or leave more than 4 `margin` to find below it, when the cut falls on a tie, or
when a row holds NaN or an infinity, that group falls back to the full top-k, which rebuilds
its bound. Either way the mask is exactly that of `torch.topk`: the k largest entries of each
row, ties broken as `torch.topk` breaks them.

One tracker serves several groups of rows at once (a model's layers, grouped by size), so the
per-row bookkeeping is a handful of operations for the whole model rather than per layer; and
every pass over the entries writes float 0/1, never bool, since on CPUs torch's bool
comparisons, masked_fill and where are several times slower than float arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor


def _fill(dtype: torch.dtype) -> float:
    """Below every value: the entries above `hi` become this before the top-k of those below.
    Finite, so that 0 · fill is 0 (an infinity would make it NaN)."""
    return -torch.finfo(dtype).max


class TrackedTopK:
    """Float 0/1 masks keeping the `ks[g]` largest entries of each row of group g, a (rows, n_g)
    tensor, for groups of rows given together at every call. Counters, per group and call:
    `answered` from the bound, `full` by the full top-k, `raised` bounds found above the old
    one (the cut rose to `raise_at` ranks of it)."""

    def __init__(self, ks: Sequence[int], margin: int = 32) -> None:
        assert all(k >= 1 for k in ks) and margin >= 1
        self.ks, self.margin = list(ks), margin
        self.hi: list[Optional[Tensor]] = [None] * len(self.ks)  # per group, (rows, 1)
        self._shapes: Optional[tuple] = None  # the groups' shapes when the bracket was built
        self.answered = self.full = self.raised = 0
        self.raise_at = margin // 2

    def __call__(self, groups: Sequence[Tensor], out: Optional[Sequence[Tensor]] = None):
        """The masks of `groups`, written into `out` (float tensors of the same shapes) when
        given; returns them."""
        assert len(groups) == len(self.ks)
        for a, k in zip(groups, self.ks):
            assert a.dim() == 2 and 1 <= k <= a.shape[1], (tuple(a.shape), k)
        masks = list(out) if out is not None else [torch.empty_like(a) for a in groups]
        ranked = []  # the groups keeping fewer than all their entries
        for g, (a, k, m) in enumerate(zip(groups, self.ks, masks)):
            if k == a.shape[1]:
                m.fill_(1.0)
            else:
                ranked.append(g)
        # On a GPU the full top-k is cheap and the tracked path's checks would wait on the device.
        track = all(a.device.type == "cpu" for a in groups)
        shapes = tuple(a.shape for a in groups)
        if track and self._shapes == shapes:
            ranked = self._tracked(groups, masks, ranked)
        else:
            self.hi = [None] * len(self.ks)
        for g in ranked:
            self.hi[g] = self._full(groups[g], self.ks[g], masks[g], track)
            self.full += 1
        self._shapes = shapes if track else None
        return masks

    def _full(self, a: Tensor, k: int, mask: Tensor, track: bool) -> Optional[Tensor]:
        """torch.topk into `mask`; returns the bracket: the value `margin` ranks above the cut."""
        top = a.topk(k, dim=1, sorted=False)
        mask.zero_().scatter_(1, top.indices, 1.0)
        if not track:
            return None
        if k > self.margin:  # the (margin + 1)-th smallest kept value
            return top.values.kthvalue(self.margin + 1, dim=1, keepdim=True).values
        return top.values.amax(dim=1, keepdim=True)

    def _tracked(self, groups: Sequence[Tensor], masks: list[Tensor], ranked: list[int]):
        """The masks of the groups `ranked` from the entries just below their bound, where these
        give them; returns the groups they could not."""
        if not ranked:
            return []
        below, need, finite = [], [], []
        for g in ranked:
            a, hi = groups[g], self.hi[g]
            assert hi is not None
            b = torch.le(a, hi, out=torch.empty_like(a))  # 0 where kept whatever the cut
            below.append(b)
            # counts exact however many entries a row has, whatever the dtype of the entries:
            # float32 sums are up to 2^24 (float16's only to 2048)
            exact = torch.float64 if a.shape[1] >= 2**24 else torch.float32
            n_below = b.sum(1, keepdim=True, dtype=exact).double()
            need.append(n_below + (self.ks[g] - a.shape[1]))  # k - (entries above hi)
            finite.append(a.sum(1, keepdim=True).isfinite())  # no NaN, no infinity in the row
        # torch.topk ranks NaN highest, comparisons cannot; inf · 0 would make NaN below
        rows = [groups[g].shape[0] for g in ranked]
        need_t = torch.cat(need)
        ok = (need_t >= 1) & (need_t <= 4 * self.margin) & torch.cat(finite)
        flags = torch.cat([ok.double(), need_t], dim=1).tolist()  # (ok, need) per row
        answer, width, at = [], 0, 0  # the groups all of whose rows can be answered
        for i, r in enumerate(rows):
            if all(f[0] for f in flags[at : at + r]):
                answer.append(i)
                width = max(width, int(max(f[1] for f in flags[at : at + r])) + self.margin)
            at += r
        tops = []
        for i in answer:
            a, b = groups[ranked[i]], below[i]
            fill = _fill(a.dtype)
            c = torch.addcmul(b.sub(1.0).mul_(-fill), a, b)  # entries <= hi, the rest fill
            top = c.topk(min(width, a.shape[1]), dim=1).values  # largest first
            if top.shape[1] < width:
                top = torch.nn.functional.pad(top, (0, width - top.shape[1]), value=fill)
            tops.append(top)
        left = [g for i, g in enumerate(ranked) if i not in answer]
        if not answer:
            return left
        # need <= (entries <= hi) - 1, since k < n: the need-th value and the next are real
        top, n = torch.cat(tops), torch.cat([need[i] for i in answer]).long()
        cut = top.gather(1, n - 1)
        # the new bound: `margin` ranks above the cut, where that is below the old one; where
        # the cut came within half a margin of the old bound, it is found above (_raise)
        up = n - 1 - self.margin
        old = torch.cat([self.hi[ranked[i]] for i in answer])
        hi = torch.where(up >= 0, top.gather(1, up.clamp(min=0)), old)
        tie = top.gather(1, n) == cut
        flags = torch.cat([tie, n <= self.raise_at], dim=1).tolist()  # per row
        at = 0
        for i in answer:
            g, r = ranked[i], rows[i]
            if any(f[0] for f in flags[at : at + r]):  # a tie at the cut: torch.topk decides
                left.append(g)
            else:
                torch.ge(groups[g], cut[at : at + r], out=masks[g])
                self.hi[g] = hi_g = hi[at : at + r]
                if self.ks[g] > self.margin and any(f[1] for f in flags[at : at + r]):
                    self.raised += 1
                    raised = self._raise(groups[g], below[i], n[at : at + r])
                    self.hi[g] = torch.where(n[at : at + r] <= self.raise_at, raised, hi_g)
                self.answered += 1
            at += r
        return left

    def _raise(self, a: Tensor, below: Tensor, need: Tensor) -> Tensor:
        """The bound `margin` ranks above the cut when the cut has risen close to the old bound
        (`need`, taken from below it, at most margin): the (margin - need + 1)-th smallest of
        the k - need entries above the old bound, which exist since k > margin."""
        fill = -_fill(a.dtype)  # the largest finite value, for the entries at or below
        c = torch.addcmul(below * fill, a, 1.0 - below)
        low = c.topk(self.margin, dim=1, largest=False).values  # smallest first
        return low.gather(1, (self.margin - need).clamp(min=0))
