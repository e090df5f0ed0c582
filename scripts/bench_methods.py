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

from sparsify.allocator import keep_freed_memory
from sparsify.compose import compose
from sparsify.methods import METHODS
from sparsify.methods.base import prune_by
from sparsify.sparsity import Mask
from sparsify.sparsity.criteria import magnitude_scores
from sparsify.sparsity.score_masks import ScoreMasks


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


def call_times(fn, reps: int) -> list[float]:
    """Seconds of each of `reps` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def typical(fn, reps: int) -> float:
    """Seconds of the median of `reps` calls."""
    return statistics.median(call_times(fn, reps))


def fastest(fn, reps: int) -> float:
    """Seconds of the fastest of `reps` calls: noise on a shared machine only adds time (used
    for a difference of two small times)."""
    return min(call_times(fn, reps))


def mask_work(scores, model, grads):
    """One step's mask work of a learnt-mask method: the masks and w·m of every layer, the
    straight-through backward to the scores (from `grads`, a real gradient of the loss with
    respect to the weights, so the scores move as far per step as in training) and the score
    optimizer step."""
    opt = torch.optim.SGD(scores.parameters(), lr=0.1, momentum=0.9)
    upstream = [grads[n] for n in scores.names]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(list(scores.masked_weights(model).values()), upstream)
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


def whole_step_ratio(scores, model, x, y, args) -> tuple[float, float, float]:
    """A learnt-mask step against a plain step: (median, lower and upper quartile) of the ratios
    of adjacent blocks, which alternate in order. Each path trains its own copy of the model (the
    learnt-mask one frozen as a run freezes it), so neither toggles requires_grad between blocks
    and both read weights copied the same way."""
    import copy

    frozen, plain = copy.deepcopy(model), copy.deepcopy(model)
    scores.freeze(frozen)  # as a run freezes it
    score_opt = torch.optim.SGD(scores.parameters(), lr=0.1, momentum=0.9)
    plain_opt = torch.optim.SGD(plain.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def block(forward, opt) -> float:
        """Seconds per step over `args.steps` training steps."""
        t = time.perf_counter()
        for _ in range(args.steps):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(forward(x), y).backward()
            opt.step()
        return (time.perf_counter() - t) / args.steps

    def score_block() -> float:
        return block(lambda inputs: scores.forward_model(frozen, inputs), score_opt)

    def plain_block() -> float:
        return block(plain, plain_opt)

    score_block(), plain_block()
    ratios = []
    for i in range(args.blocks):
        if i % 2 == 0:
            t_score, t_plain = score_block(), plain_block()
        else:
            t_plain, t_score = plain_block(), score_block()
        ratios.append(t_score / t_plain)
    low, median, high = statistics.quantiles(ratios, n=4)
    return median, low, high


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
    if args.blocks < 2:
        p.error("--blocks must be at least 2 (the cross-check reports quartiles of block pairs)")
    allocator = keep_freed_memory()  # as python -m sparsify runs
    print(f"allocator: {allocator} (SPARSIFY_MALLOC=system for glibc's own behaviour)")

    cfg = compose(args.overrides)
    bench = MaskedStep(args.model, args.image_size, args.batch, 0.9, steps=args.steps)
    model, weights, x, y = bench.model, bench.weights, bench.x, bench.y
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
    F.cross_entropy(model(x), y).backward()  # one real gradient for the mask work's backward
    grads = {n: w.grad.detach().clone() for n, w in weights.items()}
    model.zero_grad(set_to_none=True)
    for method, kind in (("supermask", "bernoulli"), ("edgepopup", "topk")):
        prune = compose([*args.overrides, f"prune={method}"]).prune
        settings = (
            {"sparsity": prune.sparsity}
            if kind == "topk"
            else {
                "rescale": prune.rescale,  # the YAML's: rescaled, the factor differentiated
                "rescale_gradient": prune.rescale_gradient,
            }
        )
        scores = ScoreMasks({n: w.detach() for n, w in weights.items()}, kind, **settings)
        t_masks = typical(mask_work(scores, model, grads), 30)
        t_call = substitution_overhead(model, scores, weights)
        learnt[method] = (t_plain + t_masks + t_call) / t_plain
        crosscheck[method] = whole_step_ratio(scores, model, x, y, args)
        print(
            f"{method}: mask work {1000 * t_masks:.2f} ms, functional_call "
            f"{1000 * t_call:.2f} ms per step; whole step / plain step, paired blocks: median "
            "{:.3f}, quartiles {:.3f}-{:.3f} (noisy cross-check)".format(*crosscheck[method])
        )
        if kind == "topk":  # how often the tracked cut answered (sparsify/sparsity/topk.py)
            top = scores._topk
            print(
                f"edgepopup top-k, per layer size and call: {top.answered} from the tracked "
                f"bound, {top.full} full top-k, {top.raised} bounds raised"
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
