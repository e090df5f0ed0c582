"""Channel pruning against torch.nn.utils.prune.ln_structured (the review's check 2): with
`prune.allocation=layerwise prune.granularity=channel`, one shot at 0.3, every ResNet-20 layer's
mask is torch's, ranked by the L1 norm (`prune.channel_norm=l1`, the default) or by the L2 norm
(`l2`), which the review found differing in 20 of 22 layers while only L1 existed."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from sparsify.compose import compose
from sparsify.config import ModelConfig
from sparsify.errors import UserError
from sparsify.models import build_model
from sparsify.sparsity import Mask, prunable_weights, prune_mask


def _torch_channel_mask(weight: torch.Tensor, amount: float, norm: int) -> torch.Tensor:
    holder = nn.Module()
    holder.weight = nn.Parameter(weight.clone())
    torch_prune.ln_structured(holder, "weight", amount=amount, n=norm, dim=0)
    return holder.weight_mask.bool()


@pytest.mark.parametrize("channel_norm, norm", [("l1", 1), ("l2", 2)])
def test_channel_masks_are_torchs_ln_structured_in_every_resnet20_layer(channel_norm, norm):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="resnet20"), 10, 3, 32)
    weights = {n: p.detach() for n, p in prunable_weights(model).items()}
    assert len(weights) == 22
    ours = prune_mask(
        weights,
        Mask.ones_like(weights),
        0.3,
        "layerwise",
        granularity="channel",
        channel_norm=channel_norm,
    )
    same = [
        n for n, w in weights.items() if torch.equal(ours[n], _torch_channel_mask(w, 0.3, norm))
    ]
    assert len(same) == 22


def test_l1_and_l2_rank_channels_differently():
    # channel 0: one large weight (L1 4, L2 4); channel 1: spread out (L1 6, L2 3)
    w = torch.tensor([[4.0, 0.0, 0.0, 0.0], [1.5, 1.5, 1.5, 1.5]])
    kept = {
        norm: prune_mask({"w": w}, Mask.ones_like({"w": w}), 0.5, "layerwise", "channel",
                         channel_norm=norm)["w"][:, 0].tolist()
        for norm in ("l1", "l2")
    }  # fmt: skip
    assert kept == {"l1": [False, True], "l2": [True, False]}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["prune.channel_norm=l3"], "choose one of: l1, l2"),
        (["prune.channel_norm=l2"], "needs prune.granularity=channel, not unstructured"),
    ],
)
def test_bad_channel_norm_is_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        compose(["prune=lth", *overrides])
