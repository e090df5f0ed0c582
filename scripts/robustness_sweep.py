"""Prune potential on clean and corrupted data across a sweep of one-shot runs (docs/evaluators.md,
"What the digits show"): for each seed, the dense parent is the runs' shared level 0 and every
run's level 1 is one pruned point; prune potential per distribution and δ is computed over those
points as the `prune_potential` summary computes it within a run, then averaged over seeds.

    python -m sparsify -m prune=magnitude prune.sparsity=0.5,0.7,0.8,0.9,0.95,0.97,0.98,0.99 \\
        seed=0,1,2 hydra.sweep.dir=runs/robustness
    python scripts/robustness_sweep.py runs/robustness
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from sparsify.corruptions import CORRUPTIONS, FAMILIES
from sparsify.evaluate.potential import errors_by_distribution
from sparsify.records import RunResults

DELTAS = (0.005, 0.01, 0.02)


def _runs(folder: Path) -> dict[int, list[RunResults]]:
    by_seed: dict[int, list[RunResults]] = defaultdict(list)
    for path in sorted(folder.rglob("results.json")):
        r = RunResults.from_json(json.loads(path.read_text()), str(path))
        by_seed[r.seed].append(r)
    return by_seed


def potential(runs: list[RunResults]) -> dict[str, dict[float, float]]:
    """{distribution: {δ: prune potential}} of one seed's runs."""
    dense = errors_by_distribution(runs[0].levels[0])
    for r in runs[1:]:  # the same seed trains the same dense level in every run
        assert errors_by_distribution(r.levels[0]) == dense, r.run
    points = [(r.levels[1].sparsity, errors_by_distribution(r.levels[1])) for r in runs]
    out = {}
    for name, (_, ref) in dense.items():
        out[name] = {
            d: max((s for s, e in points if e[name][1] <= ref + d), default=0.0) for d in DELTAS
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("folder", type=Path)
    args = p.parse_args()
    by_seed = _runs(args.folder)
    per_seed = {seed: potential(runs) for seed, runs in sorted(by_seed.items())}
    seeds = sorted(per_seed)
    names = list(per_seed[seeds[0]])
    print(f"{len(seeds)} seeds, {len(by_seed[seeds[0]])} sparsities each\n")
    print(
        "| distribution | dense error | "
        + " | ".join(f"PP δ={100 * d:g} pt" for d in DELTAS)
        + " |"
    )
    print("|---" * (2 + len(DELTAS)) + "|")
    for name in names:
        ref = statistics.mean(
            errors_by_distribution(by_seed[s][0].levels[0])[name][1] for s in seeds
        )
        cells = []
        for d in DELTAS:
            values = [100 * per_seed[s][name][d] for s in seeds]
            cells.append(f"{statistics.mean(values):.1f} ± {statistics.pstdev(values):.1f}")
        print(f"| {name} | {100 * ref:.1f}% | " + " | ".join(cells) + " |")
    print(
        "\nlowest prune potential per family (mean over seeds of the family's minimum), δ = 1 pt:"
    )
    for family in ("clean", *FAMILIES):
        members = [
            n
            for n in names
            if n == family or (n in CORRUPTIONS and CORRUPTIONS.get(n).family == family)
        ]
        if members:
            lows = [min(100 * per_seed[s][n][0.01] for n in members) for s in seeds]
            print(f"  {family:<8} {statistics.mean(lows):.1f}%  ({', '.join(members)})")


if __name__ == "__main__":
    main()
