"""The training step the benchmarks compare: a model with a mask, stepped with or without the
mask work (gradients of pruned weights zeroed before the optimizer step, weights re-zeroed
after). Shared by bench_train.py and bench_methods.py, which run from this folder."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from sparsify.config import ModelConfig
from sparsify.models import build_model
from sparsify.sparsity import Mask, MaskEnforcer, prunable_weights, prune_mask
from sparsify.sparsity.criteria import magnitude_scores


class MaskedStep:
    """A `model_name` at `sparsity` (global magnitude) with SGD, on one random batch."""

    def __init__(
        self,
        model_name: str,
        image_size: int,
        batch: int,
        sparsity: float,
        device: str = "cpu",
        steps: int = 3,
    ) -> None:
        self.device, self.steps = torch.device(device), steps
        torch.manual_seed(0)
        self.model = build_model(ModelConfig(name=model_name), 10, 3, image_size).to(self.device)
        self.weights = prunable_weights(self.model)
        self.mask = prune_mask(
            magnitude_scores(self.weights), Mask.ones_like(self.weights), sparsity
        )
        self.mask.apply_(self.model)
        self.enforcer = MaskEnforcer(self.model, self.mask)
        self.opt = torch.optim.SGD(
            self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4
        )
        self.x = torch.randn(batch, 3, image_size, image_size, device=self.device)
        self.y = torch.randint(0, 10, (batch,), device=self.device)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def block(self, masked: bool) -> float:
        """Seconds per step over `steps` training steps, with or without the mask work."""
        self._sync()
        t = time.perf_counter()
        for _ in range(self.steps):
            self.opt.zero_grad(set_to_none=True)
            F.cross_entropy(self.model(self.x), self.y).backward()
            if masked:
                self.enforcer.mask_grads()
            self.opt.step()
            if masked:
                self.enforcer.mask_weights()
        self._sync()
        return (time.perf_counter() - t) / self.steps

    def paired(self, blocks: int) -> tuple[float, float, float]:
        """(median plain step, median masked step, median masked/plain ratio) over `blocks`
        adjacent pairs, alternating which goes first: pairing cancels the slow drift of a
        shared machine better than a ratio of two medians."""
        self.block(False), self.block(True)  # warm-up
        plain, masked, ratios = [], [], []
        for i in range(blocks):
            times = {m: self.block(m) for m in ((False, True) if i % 2 == 0 else (True, False))}
            plain.append(times[False])
            masked.append(times[True])
            ratios.append(times[True] / times[False])
        return statistics.median(plain), statistics.median(masked), statistics.median(ratios)

    def mask_work(self, reps: int = 50) -> float:
        """Seconds of the mask work of one step, timed on its own."""
        self._sync()
        t = time.perf_counter()
        for _ in range(reps):
            self.enforcer.mask_grads()
            self.enforcer.mask_weights()
        self._sync()
        return (time.perf_counter() - t) / reps
