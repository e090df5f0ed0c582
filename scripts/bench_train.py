"""Masked training step vs dense training step of the same model, measured in one run.

The masked step is what sparsify runs for a pruned level: forward, backward, gradients of pruned
weights zeroed, optimizer step, pruned weights zeroed again. The dense step is the same loop with
no mask work. Blocks of steps alternate between the two so drift in machine load hits both alike;
the ratio of medians is printed (target: masked <= 1.05 x dense).

    python scripts/bench_train.py                 # resnet20, 32x32, batch 64, CPU
    python scripts/bench_train.py --model resnet50 --image-size 64 --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from sparsify.config import ModelConfig
from sparsify.models import build_model
from sparsify.sparsity import Mask, MaskEnforcer, prunable_weights, prune_mask
from sparsify.sparsity.scoring import magnitude_scores


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="resnet20")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--blocks", type=int, default=16, help="alternating block pairs")
    p.add_argument("--steps", type=int, default=3, help="steps per block")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=args.model), 10, 3, args.image_size).to(device)
    weights = prunable_weights(model)
    mask = prune_mask(magnitude_scores(weights), Mask.ones_like(weights), args.sparsity)
    mask.apply_(model)
    enforcer = MaskEnforcer(model, mask)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)

    def step(masked: bool) -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        if masked:
            enforcer.mask_grads()
        opt.step()
        if masked:
            enforcer.mask_weights()

    def block(masked: bool) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(args.steps):
            step(masked)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t) / args.steps

    for masked in (False, True):  # warm-up
        block(masked)
    # Adjacent dense/masked blocks form a pair; the median of the pairs' ratios cancels the slow
    # drift of a shared machine better than a ratio of two medians.
    dense, masked, ratios = [], [], []
    for i in range(args.blocks):
        order = (False, True) if i % 2 == 0 else (True, False)
        times = {m: block(m) for m in order}
        dense.append(times[False])
        masked.append(times[True])
        ratios.append(times[True] / times[False])
    d, m = statistics.median(dense), statistics.median(masked)
    ratio = statistics.median(ratios)
    # The mask work alone, timed on its own: what the ratio should reflect.
    t = time.perf_counter()
    for _ in range(20):
        enforcer.mask_grads()
        enforcer.mask_weights()
    enforce = (time.perf_counter() - t) / 20
    figures = {
        "model": args.model,
        "image_size": args.image_size,
        "batch": args.batch,
        "sparsity": args.sparsity,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "dense_step_s": d,
        "masked_step_s": m,
        "ratio": ratio,
        "mask_work_s": enforce,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    print(
        f"{args.model} {args.image_size}x{args.image_size} batch {args.batch} on {device} "
        f"({torch.get_num_threads()} threads): dense step {1000 * d:.1f} ms, masked step "
        f"({100 * args.sparsity:.0f}% sparse) {1000 * m:.1f} ms, ratio {ratio:.3f} (target <= 1.05)"
    )
    print(
        f"mask work alone (grads + weights): {1000 * enforce:.2f} ms = {100 * enforce / d:.2f}% of the dense step"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
