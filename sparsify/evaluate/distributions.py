"""The test distributions evaluators score a model on: the clean evaluation split, each
corruption at each severity (sparsify.corruptions), and uniform input noise of radius ε.

Every distribution is the evaluation split transformed batch by batch, with draws fixed by
(seed, what, batch index): the same inputs at every level and in every re-evaluation, so a level
and its dense parent are always compared on identical images. Corrupted inputs are computed from
pixels (the normalisation undone, then redone); noise is added in the normalised input space, as
Lost in Pruning (Liebenwein et al. 2021) adds it. Small splits keep their transformed inputs in
memory for the whole run (`Inputs.budget_bytes`), so 95 corrupted copies of the digits are made
once, not once per level.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from sparsify.data.base import Loader
from sparsify.data.transforms import Stats
from sparsify.seeding import CORRUPTION_STREAM, NOISE_STREAM, seeded_generator

CLEAN = "clean"


@dataclass(frozen=True)
class Distribution:
    """One test distribution. `name`: "clean", "<corruption>/<severity>" or "noise/<ε>"."""

    name: str
    corruption: Optional[str] = None
    severity: Optional[int] = None
    eps: Optional[float] = None  # uniform noise radius, normalised units
    samples: int = 1  # noisy copies of each image (noise only), concatenated sample by sample
    shift: bool = False  # a released test set of its own (e.g. CIFAR-10.1), not the split

    @property
    def kind(self) -> str:
        if self.corruption is not None:
            return "corruption"
        if self.shift:
            return "shift"
        return "noise" if self.eps is not None else CLEAN


def clean() -> Distribution:
    return Distribution(CLEAN)


def corrupted(name: str, severity: int) -> Distribution:
    return Distribution(f"{name}/{severity}", corruption=name, severity=severity)


def noisy(eps: float, samples: int) -> Distribution:
    return Distribution(f"noise/{eps:g}", eps=float(eps), samples=samples)


def shifted(name: str) -> Distribution:
    return Distribution(name, shift=True)


class Inputs:
    """Batches `(x, y)` of each distribution over one evaluation loader, x normalised, both on
    `device` (corruptions run there). `preset`: the corruption parameter set (auto, cifar,
    imagenet)."""

    budget_bytes = 256 * 2**20  # transformed inputs kept in memory, all distributions together

    def __init__(
        self,
        loader: Loader,
        stats: Stats,
        seed: int,
        device: torch.device,
        preset: str = "auto",
    ) -> None:
        self.loader, self.seed, self.device, self.preset = loader, seed, device, preset
        self.mean = torch.tensor(stats.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(stats.std, device=device).view(1, -1, 1, 1)
        self._kept: dict[str, list[tuple[Tensor, Tensor]]] = {}
        self._kept_bytes = 0
        # released sets: a loader per shifted set's name, and one per corrupted distribution
        # when eval.corruptions.released replaces the generated corruptions
        self.shift_loaders: dict[str, Loader] = {}
        self.released: Optional[Callable[[Distribution], Loader]] = None

    def batches(self, dist: Distribution) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of `dist`, in the split's order (noise: sample 0 of every batch, then 1 ...
        within each batch)."""
        if dist.name in self._kept:
            yield from self._kept[dist.name]
            return
        made: list[tuple[Tensor, Tensor]] = []
        source, transform = self.loader, True
        if dist.kind == "shift":
            source, transform = self.shift_loaders[dist.name], False
        elif dist.kind == "corruption" and self.released is not None:
            source, transform = self.released(dist), False
        for k, (x, y) in enumerate(source.batches(0)):
            x, y = x.to(self.device), y.to(self.device)
            batch = self._transform(dist, k, x, y) if transform else (x, y)
            made.append(batch)
            yield batch
        size = sum(x.numel() * x.element_size() for x, _ in made)
        if dist.kind != CLEAN and self._kept_bytes + size <= self.budget_bytes:
            self._kept[dist.name] = made
            self._kept_bytes += size

    def _transform(self, dist: Distribution, k: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if dist.kind == CLEAN:
            return x, y
        if dist.kind == "noise":
            key = round(dist.eps * 1e6)
            copies = []
            for s in range(dist.samples):
                g = seeded_generator(NOISE_STREAM, self.seed, key, s, k)
                u = torch.rand(x.shape, generator=g).to(x.device)
                copies.append(x + dist.eps * (2 * u - 1))
            return torch.cat(copies), y.repeat(dist.samples)
        from sparsify.corruptions import ORDER, corrupt

        g = seeded_generator(
            CORRUPTION_STREAM, self.seed, ORDER.index(dist.corruption), dist.severity, k
        )
        pixels = (x * self.std + self.mean).clamp(0, 1)
        y_img = corrupt(pixels, dist.corruption, dist.severity, g, self.preset)
        return (y_img - self.mean) / self.std, y
