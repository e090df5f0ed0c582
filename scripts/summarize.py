"""Summarise a folder of sparsify runs as a markdown table: method × target sparsity, the last
level's accuracy as mean ± std over seeds (and the sparsity measured from the weights).

    python scripts/summarize.py runs/methods_table            # prints the table
    python scripts/summarize.py runs/methods_table --json out.json

The dense row is level 0 of the runs whose level 0 trains dense (results.json `dense_level`;
acdc's level 0 keeps some exact zeros and is left out), over every seed found. Methods without a
sparsity target (supermask learns its own) are shown in the first column with the sparsity they
reached.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

# results.json from before `dense_level` existed: the methods whose level 0 trains dense
LEGACY_DENSE_LEVEL0 = {"lth", "wr", "lrr", "finetune", "random", "magnitude"}


def _mean_std(xs: list[float]) -> str:
    mean = 100 * statistics.fmean(xs)
    std = 100 * statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}"


def collect(root: Path) -> tuple[dict, dict, list]:
    final = defaultdict(list)  # (method, target) -> [(seed, accuracy, sparsity)]
    dense = {}  # (seed, data, model) -> accuracy of a dense level 0 (identical across methods)
    for results_path in sorted(root.rglob("results.json")):
        results = json.loads(results_path.read_text())
        config = yaml.safe_load((results_path.parent / "config.yaml").read_text())
        method, last = results["method"], results["levels"][-1]
        target = config["prune"].get("sparsity")
        final[(method, target)].append(
            (results["seed"], last["metrics"]["accuracy"], last["sparsity"])
        )
        dense_level = results.get("dense_level", 0 if method in LEGACY_DENSE_LEVEL0 else None)
        if dense_level == 0 and method != "acdc":
            dense[(results["seed"], results["data"], results["model"])] = results["levels"][0][
                "metrics"
            ]["accuracy"]
    targets = sorted({t for _, t in final if t is not None})
    return final, dense, targets


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("root", type=Path)
    p.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = p.parse_args()
    final, dense, targets = collect(args.root)
    methods = sorted({m for m, _ in final})
    seeds = sorted({s for runs in final.values() for s, _, _ in runs})
    head = "| method | " + " | ".join(f"{100 * t:.0f}% target" for t in targets) + " |"
    lines = [head, "|---|" + "---|" * len(targets)]
    if dense:
        lines.append(
            f"| dense (level 0) | {_mean_std(list(dense.values()))} (n={len(dense)})"
            + " |" * len(targets)
        )
    out = {"seeds": seeds, "dense": list(dense.values()), "cells": {}}
    for m in methods:
        cells = []
        for t in targets:
            runs = final.get((m, t), [])
            if not runs and t == targets[0]:
                runs = final.get((m, None), [])  # a learnt sparsity, shown in the first column
            if not runs:
                cells.append("")
                continue
            accs = [a for _, a, _ in runs]
            sparsity = statistics.fmean(s for _, _, s in runs)
            cells.append(f"{_mean_std(accs)} ({100 * sparsity:.1f}%, n={len(runs)})")
            out["cells"][f"{m}@{t}"] = {"accuracy": accs, "sparsity": sparsity}
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
