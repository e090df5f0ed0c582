"""`sampled_masks` (automatic for `prune=supermask`): test accuracy averaged over fresh Bernoulli
samples of the learnt mask, as Zhou et al. (2019) report supermasks (`train_supermask.py`: the
mean over 10 samples), and the expected sparsity 1 - sum(sigmoid(s)) / n, their density's
complement.

The level's own model (final.pt, and the `accuracy` evaluator) is sample 0; samples 1 ..
`eval.sampled_masks.samples` - 1 are drawn from seeds 1, 2, .. by the same rule
(`ScoreMasks.sampled_mask`), from the scores and frozen weights the level saved in `scores.pt`,
with the run's weight rescaling. Keys: sampled_accuracy (mean), sampled_accuracy_std (sample
standard deviation over the samples, 0 for one), expected_sparsity; table `sampled_masks/samples`:
each sample's accuracy and sparsity. A level trained before scores.pt was saved (2026-12-03)
reports none of them.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from sparsify.checks import check_range
from sparsify.errors import UserError
from sparsify.evaluate.base import EvalResult, MetricSpec, evaluator
from sparsify.evaluate.context import EvalContext
from sparsify.evaluate.distributions import clean
from sparsify.evaluate.outputs import compute_outputs
from sparsify.io import load_torch
from sparsify.sparsity.score_masks import ScoreMasks

METRICS = {
    "sampled_accuracy": MetricSpec(
        "accuracy, mean over sampled masks",
        percent=True,
        higher_is_better=True,
        plot=True,
        binomial=True,  # each sample's accuracy is on the split's images
    ),
    "sampled_accuracy_std": MetricSpec("std of accuracy over sampled masks", percent=True),
    "expected_sparsity": MetricSpec("expected sparsity 1 - mean sigmoid(s)", percent=True),
}


@dataclass
class SampledMasksSettings:
    samples: int = 10  # masks drawn (seeds 0 .. samples - 1); Zhou et al. report 10

    def check(self, where: str) -> None:
        check_range(f"{where}.samples", self.samples, 1, 1000, hi_open=False)


def load_scores(path, total: int) -> dict:
    """scores.pt, checked: {"scores", "frozen": flat tensors of `total` values, "rescale"}."""
    saved = load_torch(path, "supermask scores")
    ok = (
        isinstance(saved, dict)
        and set(saved) == {"scores", "frozen", "rescale"}
        and all(
            isinstance(saved[k], torch.Tensor) and tuple(saved[k].shape) == (total,)
            for k in ("scores", "frozen")
        )
    )
    if not ok:
        raise UserError(
            f"{path} does not hold this run's supermask scores ({total} scores and frozen "
            "weights); delete the level's folder to re-run it"
        )
    return saved


@evaluator(
    "sampled_masks",
    metrics=METRICS,
    settings=SampledMasksSettings,
    needs=("scores",),
    automatic=True,
)
def sampled_masks(ctx: EvalContext) -> EvalResult:
    run = ctx.run
    names = list(run.prunable)
    total = sum(run.init[n].numel() for n in names)
    path = run.rd.artifact_path(ctx.level, "scores")
    if not path.exists():  # a level trained before sparsify saved scores.pt: nothing to sample
        return EvalResult()
    saved = load_scores(path, total)
    masks = ScoreMasks({n: run.init[n] for n in names}, "bernoulli", rescale=saved["rescale"])
    with torch.no_grad():
        masks.scores.copy_(saved["scores"])
    model, state = run.build().to(ctx.device), run.final(ctx.level)
    rows, accuracies = [], []
    for seed in range(ctx.settings.samples):
        m = masks.sampled_mask(seed)
        state.update(masks.weights_with(saved["frozen"], m))
        model.load_state_dict(state)
        acc = compute_outputs(model, ctx.inputs, clean()).accuracy
        accuracies.append(acc)
        rows.append([seed, acc, 1.0 - float(m.mean())])
    expected = 1.0 - float(torch.sigmoid(saved["scores"].double()).mean())
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    return EvalResult(
        scalars={
            "sampled_accuracy": statistics.fmean(accuracies),
            "sampled_accuracy_std": std,
            "expected_sparsity": expected,
        },
        tables={"samples": {"columns": ["seed", "accuracy", "sparsity"], "rows": rows}},
    )
