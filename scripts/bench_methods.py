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
from sparsify.sparsity.supermask import ScoreMasks


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


def fastest(fn, reps: int) -> float:
    """Seconds of the fastest of `reps` calls: noise on a shared machine only adds time."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def mask_work(scores, frozen):
    """One step's mask work of a learnt-mask method: the masks and w·m of every layer, the
    straight-through backward to the scores (from a fixed upstream gradient) and the score
    optimizer step."""
    from sparsify.sparsity.supermask import _MaskedWeight

    opt = torch.optim.SGD(scores.parameters(), lr=0.1, momentum=0.9)
    weights = [frozen[n].detach() for n in scores.names]
    upstream = [torch.randn_like(w) for w in weights]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        effective = []
        for s, w, (m, dm_ds) in zip(scores.scores, weights, scores.train_masks()):
            effective.append(_MaskedWeight.apply(s, w, m, dm_ds, scores._scale(m)))
        torch.autograd.backward(effective, upstream)
        opt.step()

    return step


def substitution_overhead(model, scores, frozen) -> float:
    """Seconds functional_call adds to a forward: its cost is per parameter, not per sample, so
    it is the difference on a one-sample 8×8 input, where the convolutions cost little."""
    from torch.func import functional_call

    x = torch.randn(1, 3, 8, 8)
    effective = {n: frozen[n].detach() for n in scores.names}
    with torch.no_grad():
        called = fastest(lambda: functional_call(model, effective, (x,)), 200)
        plain = fastest(lambda: model(x), 200)
    return max(0.0, called - plain)


def whole_step_ratio(scores, model, x, y, block, args) -> float:
    """A learnt-mask step against a plain step: median of the ratios of adjacent blocks, which
    alternate in order. The learnt-mask path trains its own copy of the model, frozen as a run
    freezes it, so neither path toggles requires_grad between blocks."""
    import copy

    frozen = copy.deepcopy(model)
    scores.freeze(frozen)  # as a run freezes it
    score_opt = torch.optim.SGD(scores.parameters(), lr=0.1, momentum=0.9)

    def score_block() -> float:
        t = time.perf_counter()
        for _ in range(args.steps):
            score_opt.zero_grad(set_to_none=True)
            F.cross_entropy(scores.forward_model(frozen, x), y).backward()
            score_opt.step()
        return (time.perf_counter() - t) / args.steps

    score_block(), block(False)
    ratios = []
    for i in range(args.blocks):
        if i % 2 == 0:
            t_score, t_plain = score_block(), block(False)
        else:
            t_plain, t_score = block(False), score_block()
        ratios.append(t_score / t_plain)
    return statistics.median(ratios)


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

    # supermask / edgepopup: a step is the plain forward and backward with w·m substituted for
    # each weight, plus the mask work: masks sampled (Bernoulli) or selected (top-k per layer),
    # the straight-through backward to the scores and the optimizer step on them. The mask work
    # and the cost of substituting (functional_call) are timed on their own, as for the other
    # methods; the whole step against a plain one, blocks interleaved, is a noisy cross-check.
    learnt, crosscheck = {}, {}
    for method, kind in (("supermask", "bernoulli"), ("edgepopup", "topk")):
        scores = ScoreMasks({n: w.detach() for n, w in weights.items()}, kind, sparsity=0.5)
        t_masks = fastest(mask_work(scores, weights), 30)
        t_call = substitution_overhead(model, scores, weights)
        learnt[method] = (t_plain + t_masks + t_call) / t_plain
        crosscheck[method] = whole_step_ratio(scores, model, x, y, block, args)
        print(
            f"{method}: mask work {1000 * t_masks:.2f} ms, functional_call "
            f"{1000 * t_call:.2f} ms per step; whole step / plain step, median of paired blocks: "
            f"{crosscheck[method]:.3f} (noisy cross-check)"
        )

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
            ratio = learnt[method]  # plain step + mask work + substitution, each timed
        print(f"| {method} | {n} | {its} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
