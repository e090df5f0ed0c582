"""`python -m sparsify.analysis PATH [PATH ...] [--analysis NAME] [--out DIR]`: group the runs at
or below the PATHs into studies (runs that differ only in their seed) and run an analysis over
each (default `seeds`: every level's sparsity and metrics as mean ± std over the seeds, with the
half-width of the 95% interval of the mean). Results are cached under DIR/analysis/ (default:
the first PATH, or its parent when it is a run); `seeds` is also printed as a table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sparsify.errors import UserError, exit_with


def _cell(stats: dict[str, Any], percent: bool) -> str:
    scale = 100 if percent else 1
    digits = 2 if percent else 4
    text = f"{scale * stats['mean']:.{digits}f}"
    if stats["std"] is not None:
        text += f" ± {scale * stats['std']:.{digits}f}"
    return text + ("%" if percent else "")


def seeds_table(result: dict[str, Any]) -> list[str]:
    """The `seeds` result as Markdown lines: a row per level, mean ± std per metric."""
    from sparsify.evaluate import EVALUATORS

    specs = {k: s for n in EVALUATORS.names() for k, s in EVALUATORS.get(n).metrics.items()}
    keys = list(dict.fromkeys(k for lv in result["levels"] for k in lv["metrics"]))
    head = ["level", "sparsity", *(specs[k].label if k in specs else k for k in keys)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lv in result["levels"]:
        cells = [str(lv["level"]), _cell(lv["sparsity"], True)]
        for k in keys:
            stats = lv["metrics"].get(k)
            cells.append("" if stats is None else _cell(stats, k in specs and specs[k].percent))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    from sparsify.analysis import ANALYSES, collect, run_analysis

    parser = argparse.ArgumentParser(prog="python -m sparsify.analysis", description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help="run directories or folders of runs")
    parser.add_argument("--analysis", default="seeds", help=f"one of: {', '.join(ANALYSES)}")
    parser.add_argument("--out", type=Path, help="where analysis/ goes")
    args = parser.parse_args(argv)
    try:
        ANALYSES.get(args.analysis)
        studies, left_out = collect(args.paths)
        if not studies:
            raise UserError(f"no finished sparsify run under {', '.join(map(str, args.paths))}")
        first = args.paths[0]
        out = args.out or (first.parent if (first / "config.yaml").is_file() else first)
        for name, study in studies.items():
            result = run_analysis(args.analysis, study, out)
            print(f"## {name} (seeds {', '.join(map(str, study.seeds))})\n")
            if args.analysis == "seeds":
                print("\n".join(seeds_table(result)) + "\n")
            else:
                print(json.dumps(result, indent=2) + "\n")
        for path, why in left_out:
            print(f"not included: {path} ({why})", file=sys.stderr)
    except UserError as e:
        exit_with(e)


if __name__ == "__main__":
    main()
