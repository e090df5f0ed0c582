"""Which weights can be pruned: every conv and linear weight by default (biases and norms never),
minus the ones whose state_dict name matches a pattern in `exclude`."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from torch import nn

from sparsify.errors import UserError

_PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def prunable_weights(model: nn.Module, exclude: Sequence[str] = ()) -> dict[str, nn.Parameter]:
    """{state_dict name: weight} of the prunable weights of `model`, in module order.

    `exclude` holds fnmatch patterns (e.g. 'conv1.weight', 'fc.*', '*.downsample.*'); a pattern
    that matches no conv or linear weight is a UserError, since it is almost surely a typo.
    """
    candidates = {
        f"{name}.weight" if name else "weight": module.weight
        for name, module in model.named_modules()
        if isinstance(module, _PRUNABLE_TYPES)
    }
    for pattern in exclude:
        if not any(fnmatchcase(name, pattern) for name in candidates):
            names = ", ".join(list(candidates)[:8]) + (", ..." if len(candidates) > 8 else "")
            raise UserError(
                f"prune.exclude pattern {pattern!r} matches no conv or linear weight; "
                f"the prunable weights are named like: {names}"
            )
    return {
        name: weight
        for name, weight in candidates.items()
        if not any(fnmatchcase(name, pattern) for pattern in exclude)
    }
