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

import torch
from masked_step import MaskedStep  # scripts/masked_step.py, beside this script

from sparsify.allocator import keep_freed_memory


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
    allocator = keep_freed_memory()  # as python -m sparsify runs
    print(f"allocator: {allocator} (SPARSIFY_MALLOC=system for glibc's own behaviour)")

    bench = MaskedStep(
        args.model, args.image_size, args.batch, args.sparsity, args.device, args.steps
    )
    d, m, ratio = bench.paired(args.blocks)
    enforce = bench.mask_work(20)  # the mask work alone: what the ratio should reflect
    device = bench.device
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
        "allocator": allocator,
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
