"""A read-only view of a run's saved levels, for the methods planning a level and the evaluators
scoring one: every read is checked against the model (names, shapes), so a damaged or foreign
file is a one-line UserError, never a wrong result."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from sparsify.records import LevelRecord
from sparsify.rundir import RunDir
from sparsify.sparsity.mask import Mask

StateDict = dict[str, Tensor]


class RunView:
    """`init`, `prunable`, and per level `final(level)`, `mask(level)`, `snapshot(level, name)`,
    `record(level)` and `model(level, device)`."""

    def __init__(
        self,
        rd: RunDir,
        init: StateDict,
        prunable: list[str],
        build: Callable[[], nn.Module],
    ) -> None:
        self.rd, self.init, self.prunable, self._build = rd, init, prunable, build

    def final(self, level: int) -> StateDict:
        """The state_dict at the end of `level` (final.pt)."""
        return self.rd.load_final(level, self.init)

    def mask(self, level: int) -> Mask:
        return self.rd.load_mask(level, {n: self.init[n] for n in self.prunable})

    def snapshot(self, level: int, name: str) -> StateDict:
        """Weights saved during `level` at a named iteration (e.g. `rewind`)."""
        return self.rd.load_snapshot(level, name, self.init)

    def record(self, level: int) -> LevelRecord:
        """What the level's training left (sparsity, counts, iterations)."""
        return self.rd.training_record(level)

    def trained_levels(self) -> list[int]:
        """The levels whose training finished, in order (stops at the first unfinished one)."""
        out = []
        while self.rd.level_trained(len(out)):
            out.append(len(out))
        return out

    def build(self) -> nn.Module:
        """A fresh model of the run's architecture, built without touching the global RNG that
        training draws from."""
        with torch.random.fork_rng(devices=[]):
            return self._build()

    def model(self, level: int, device: torch.device) -> nn.Module:
        """The model with `level`'s final weights on `device`, in eval mode."""
        model = self.build()
        model.load_state_dict(self.final(level))
        return model.to(device).eval()
