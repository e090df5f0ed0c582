"""What an evaluator sees of the level it scores: read-only, built by the evaluation stage.

The models are loaded from the level's saved files when first asked for, once per level for all
evaluators, so an evaluator whose result is already on disk costs nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from sparsify.data.base import DataBundle, Loader
from sparsify.evaluate.distributions import Distribution, Inputs
from sparsify.evaluate.outputs import Outputs, compute_outputs
from sparsify.records import LevelRecord
from sparsify.runview import RunView
from sparsify.seeding import EVAL_STREAM, seeded_generator
from sparsify.sparsity.mask import Mask


class LevelModels:
    """The models of one level, shared by its evaluators: the torch model with the level's final
    weights, and (backend=triton) the same converted to the kernels."""

    def __init__(
        self,
        run: RunView,
        level: int,
        device: torch.device,
        convert: Optional[Callable[[nn.Module], nn.Module]],
    ) -> None:
        self.run, self.level, self.device, self._convert = run, level, device, convert

    @cached_property
    def torch_model(self) -> nn.Module:
        return self.run.model(self.level, self.device)

    @cached_property
    def kernel_model(self) -> Optional[nn.Module]:
        return None if self._convert is None else self._convert(self.torch_model).eval()

    @cached_property
    def mask(self) -> Mask:
        return self.run.mask(self.level)

    @cached_property
    def _outputs(self) -> dict[str, Outputs]:
        return {}

    def outputs(self, inputs: Inputs, dist: Distribution) -> Outputs:
        """The level's model's (as the backend runs it) outputs on `dist`, once per level."""
        if dist.name not in self._outputs:
            model = self.torch_model if self.kernel_model is None else self.kernel_model
            self._outputs[dist.name] = compute_outputs(model, inputs, dist)
        return self._outputs[dist.name]


class EvalContext:
    """One evaluator at one level.

    - `level`, `record` (its training record: sparsity, counts), `mask`;
    - `model`: the model as the backend runs it, in eval mode (the kernel-converted model under
      backend=triton, else the torch model); `torch_model`: the plain torch model beside it;
      `kernel_model`: the converted one or None; `trainable_model()`: a copy to train;
    - `data` (every split), `split` and `loader` (the split evaluated, `eval.split`), `device`;
    - `settings`: the evaluator's own settings (its dataclass, `eval.<name>.*`), or None;
    - `run`: the run's saved levels (RunView); `dense()`: the dense parent (the reference
      level, `dense_level`), or None;
    - `outputs(dist)` / `dense_outputs(dist)`: the level's / the dense parent's outputs on a test
      distribution (evaluate/distributions.py), computed once per level / once per run and
      shared by all evaluators; `corrupted()`: the corrupted distributions `eval.corruptions`
      selects (names x severities), for any evaluator that scores corrupted data;
    - `generator(*keys)`: seeded by (seed, level, the evaluator's key, *keys);
    - `artifact_dir`: the evaluator's own folder for files beyond its result (created on demand).
    """

    def __init__(
        self,
        *,
        level: int,
        record: LevelRecord,
        models: LevelModels,
        data: DataBundle,
        split: str,
        device: torch.device,
        settings: Any,
        run: RunView,
        dense: Callable[[], Optional[nn.Module]],
        dense_outputs: Callable[[Distribution], Optional[Outputs]],
        dense_level: Optional[int],
        inputs: Inputs,
        corrupted: list[Distribution],
        artifact_dir: Path,
        seed: int,
        key: str,
        backend: Any,
    ) -> None:
        self.level, self.record, self._models = level, record, models
        self.data, self.split, self.device = data, split, device
        self.settings, self.run, self._dense = settings, run, dense
        self._dense_outputs, self.dense_level = dense_outputs, dense_level
        self.inputs, self._corrupted = inputs, corrupted
        self._artifact_dir, self.seed, self.key, self.backend = artifact_dir, seed, key, backend

    @property
    def loader(self) -> Loader:
        loader = self.data.test if self.split == "test" else self.data.val
        assert loader is not None, "eval.split=val without a validation split passed validation"
        return loader

    @property
    def mask(self) -> Mask:
        return self._models.mask

    @property
    def torch_model(self) -> nn.Module:
        return self._models.torch_model

    @property
    def kernel_model(self) -> Optional[nn.Module]:
        return self._models.kernel_model

    @property
    def model(self) -> nn.Module:
        kernel = self._models.kernel_model
        return self._models.torch_model if kernel is None else kernel

    def trainable_model(self) -> nn.Module:
        """A copy of the torch model in train mode, every parameter trainable: train it freely,
        the level's own model stays as saved."""
        return copy.deepcopy(self.torch_model).train().requires_grad_(True)

    def dense(self) -> Optional[nn.Module]:
        """The dense reference model (the method's dense level) in eval mode, loaded once per
        run; None for methods without one (an evaluator that needs it declares `dense`)."""
        return self._dense()

    def outputs(self, dist: Distribution) -> Outputs:
        return self._models.outputs(self.inputs, dist)

    def dense_outputs(self, dist: Distribution) -> Optional[Outputs]:
        """The dense parent's outputs on `dist`, or None without a dense parent."""
        return self._dense_outputs(dist)

    @property
    def is_dense(self) -> bool:
        """Whether this level is the dense parent itself."""
        return self.level == self.dense_level

    def corrupted(self) -> list[Distribution]:
        return list(self._corrupted)

    def generator(self, *keys: int) -> torch.Generator:
        """A generator of this evaluator at this level: the same draws on every re-evaluation."""
        digest = int(self.key.rsplit("-", 1)[-1], 16)
        return seeded_generator(EVAL_STREAM, self.seed, self.level, digest, *keys)

    @property
    def artifact_dir(self) -> Path:
        self._artifact_dir.mkdir(parents=True, exist_ok=True)
        return self._artifact_dir
