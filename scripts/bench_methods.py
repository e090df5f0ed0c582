"""Each method's extra work as a fraction of plain training, measured in one run on the CPU.

Every method trains with plain steps plus its own extra work: the mask enforced around every
optimizer step, a mask-schedule lookup before every step (gmp, acdc), and the pruning of masks
(once per level for the retraining family; at every update for gmp; at every compressed phase for
acdc). The script times, in one run, a plain training step, the mask work of one step, the
lookup, and one mask computation of the model, and charges each method its parts over a level
of the composed config's schedule (default: the embedded digits default, 210 iterations per
level). The masked/plain ratio of interleaved step blocks is printed as a cross-check; on a
shared machine its noise exceeds the cost measured. Target: every method <= 1.05 x plain.

    python scripts/bench_methods.py
    python scripts/bench_methods.py --model resnet20 --image-size 32 train=cifar
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from masked_step import MaskedStep  # scripts/masked_step.py, beside this script

from sparsify.compose import compose
from sparsify.methods import METHODS
from sparsify.methods.base import prune_by
from sparsify.sparsity import Mask
from sparsify.sparsity.scoring import magnitude_scores


def prunes_per_level(method: str, cfg, ipe: int, total: int) -> tuple[int, int]:
    """(mask computations, iterations) of the method's costliest level."""
    from sparsify.methods.base import Context

    ctx = Context(
        init={},
        prunable=[],
        iterations_per_epoch=ipe,
        total=total,
        schedule=None,
        final=None,
        mask=None,
        snapshot=None,
    )
    m = METHODS.get(method)(cfg.prune)
    if method == "dense":
        return 0, total
    if method == "gmp":
        return len(m.updates(ctx)), total
    if method == "acdc":
        phases = m.phases(ctx)
        return sum(1 for _, compressed in phases[:-1] if compressed), phases[-1][0]
    if method in ("supermask", "edgepopup"):
        return 0, total  # their cost is in every step: timed separately
    if method == "magnitude":
        return 1, ctx.steps(cfg.prune.finetune, "prune.finetune")
    return 1, m.budget(ctx)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="resnet20")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--blocks", type=int, default=12)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument(
        "overrides", nargs="*", help="config overrides giving the schedule (e.g. train=cifar)"
    )
    args = p.parse_args()

    cfg = compose(args.overrides)
    bench = MaskedStep(args.model, args.image_size, args.batch, 0.9, steps=args.steps)
    model, weights, block, x, y = bench.model, bench.weights, bench.block, bench.x, bench.y
    t_plain, _, paired = bench.paired(args.blocks)
    # The mask work alone, timed on its own: step-to-step noise on a shared machine is larger
    # than this cost, so each method is charged what it adds, each part measured here.
    t_enforce = bench.mask_work(50)

    updates = {21: 0.5}
    t = time.perf_counter()
    for it in range(10_000):
        updates.get(it)
    t_lookup = (time.perf_counter() - t) / 10_000

    prunes = []
    for _ in range(3):
        t = time.perf_counter()
        prune_by(cfg.prune, magnitude_scores(weights), Mask.ones_like(weights), 0.9)
        prunes.append(time.perf_counter() - t)
    t_prune = statistics.median(prunes)

    # supermask / edgepopup: a step is forward with sampled or top-k masks, backward to the
    # scores and an optimizer step on them; timed against the plain step, blocks interleaved.
    from sparsify.sparsity.supermask import ScoreMasks

    learnt = {}
    for method, kind in (("supermask", "bernoulli"), ("edgepopup", "topk")):
        scores = ScoreMasks({n: w.detach() for n, w in weights.items()}, kind, sparsity=0.5)
        score_opt = torch.optim.SGD(scores.parameters(), lr=0.1, momentum=0.9)

        def score_block(scores=scores, score_opt=score_opt) -> float:
            t = time.perf_counter()
            for _ in range(args.steps):
                score_opt.zero_grad(set_to_none=True)
                F.cross_entropy(scores.forward_model(model, x), y).backward()
                score_opt.step()
            return (time.perf_counter() - t) / args.steps

        model.requires_grad_(False)
        score_block()
        score_times, plain_times = [], []
        for i in range(args.blocks):
            for score_first in (True, False) if i % 2 == 0 else (False, True):
                model.requires_grad_(not score_first)
                (score_times if score_first else plain_times).append(
                    score_block() if score_first else block(False)
                )
        model.requires_grad_(True)
        # The fastest block of each: noise on a shared machine only ever adds time, so the
        # minimum is the steadier estimate of what a step costs.
        learnt[method] = min(score_times) / min(plain_times)

    ipe = -(-1294 // cfg.train.batch_size) if cfg.data.name == "digits" else 391
    total = cfg.train.epochs * ipe
    print(
        f"{args.model} {args.image_size}x{args.image_size} batch {args.batch}, "
        f"{torch.get_num_threads()} threads: plain step {1000 * t_plain:.1f} ms, mask work "
        f"{1000 * t_enforce:.3f} ms per step (masked/plain step, paired blocks: {paired:.3f}), "
        f"schedule lookup {1e6 * t_lookup:.2f} us, one mask computation {1000 * t_prune:.1f} ms; "
        f"schedule: {cfg.train.epochs} epochs x {ipe} it"
    )
    print("| method | prunes per level | level iterations | cost / plain training |")
    print("|---|---|---|---|")
    for method in METHODS.names():
        n, its = prunes_per_level(method, compose([*args.overrides, f"prune={method}"]), ipe, total)
        extra = 0.0 if method == "dense" else t_enforce
        extra += t_lookup if method in ("gmp", "acdc") else 0.0
        ratio = (its * (t_plain + extra) + n * t_prune) / (its * t_plain)
        if method in learnt:
            ratio = learnt[method]  # measured step against step, fastest blocks
        print(f"| {method} | {n} | {its} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
