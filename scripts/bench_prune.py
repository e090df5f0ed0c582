"""Global magnitude pruning of a ResNet-50 (about 25 M prunable weights), measured in one run:
sparsify's pruning (radix-narrowed exact selection) against the plain torch reference
(torch.kthvalue over all scores). Both produce the same mask; the script checks that.

    python scripts/bench_prune.py            # target: ours <= 0.5 s on 2 CPU cores
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sparsify.config import ModelConfig
from sparsify.models import build_model
from sparsify.sparsity import Mask, prunable_weights, prune_mask
from sparsify.sparsity.criteria import magnitude_scores


def reference_global_prune(
    weights: dict[str, torch.Tensor], target: float
) -> dict[str, torch.Tensor]:
    """Plain torch: one kthvalue over all |w|, ties broken by position as sparsify does."""
    flat = torch.cat([w.detach().abs().reshape(-1) for w in weights.values()])
    n_prune = round(target * flat.numel())
    threshold = torch.kthvalue(flat, n_prune).values
    keep = flat > threshold
    deficit = (flat.numel() - n_prune) - int(keep.sum())
    if deficit > 0:
        ties = (flat == threshold).nonzero().flatten()
        keep[ties[-deficit:]] = True
    parts = keep.split([w.numel() for w in weights.values()])
    return {n: p.view_as(w) for (n, w), p in zip(weights.items(), parts)}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="resnet50")
    p.add_argument("--sparsity", type=float, default=0.8)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    torch.manual_seed(0)
    model = build_model(ModelConfig(name=args.model), 1000, 3, 224)
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}
    dense = Mask.ones_like(weights)
    n = sum(w.numel() for w in weights.values())

    ours_t, ref_t = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        ours = prune_mask(magnitude_scores(weights), dense, args.sparsity)
        ours_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        ref = reference_global_prune(weights, args.sparsity)
        ref_t.append(time.perf_counter() - t)
    assert all(torch.equal(ours[k], ref[k]) for k in weights), "masks differ"
    o, r = statistics.median(ours_t), statistics.median(ref_t)
    print(
        f"global magnitude pruning of {args.model} ({n / 1e6:.1f} M weights) to "
        f"{100 * args.sparsity:.0f}% on {torch.get_num_threads()} threads: sparsify {o:.3f} s, "
        f"torch.kthvalue reference {r:.3f} s, ratio {o / r:.2f} (target: sparsify <= 0.5 s)"
    )


if __name__ == "__main__":
    main()
