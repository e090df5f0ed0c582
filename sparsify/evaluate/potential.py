"""`prune_potential` (Lost in Pruning, Liebenwein et al. 2021): per test distribution D and
tolerance δ, the largest sparsity among the run's levels whose error on D stays within δ of the
dense parent's error on the same D:

    PP_δ(D) = max { sparsity(L) : err(L, D) <= err(dense, D) + δ }

(the maximum over all levels, not the first failure, as torchprune computes it; the dense parent
qualifies itself, so PP >= 0). The distributions are the clean split (`accuracy`), each
corruption at the mean error over its severities (`corruptions`), each released shifted set (`shift`) and
each uniform-noise radius (`fidelity`), whichever were evaluated. `lowest` gives, per δ, the distribution with the least
potential: the sparsity that is safe on every distribution evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparsify.checks import check_range
from sparsify.errors import UserError
from sparsify.evaluate.summary import NO_PARENT, SummaryInput, summary
from sparsify.records import LevelRecord


@dataclass
class PrunePotentialSettings:
    deltas: list[float] = field(default_factory=lambda: [0.005, 0.01, 0.02])  # error, absolute

    def check(self, where: str) -> None:
        if not self.deltas or len(set(self.deltas)) != len(self.deltas):
            raise UserError(f"{where}.deltas must list distinct tolerances, e.g. [0.005, 0.01]")
        for d in self.deltas:
            check_range(f"{where}.deltas", d, 0.0, 1.0)


def _column(table: dict, name: str) -> int:
    return list(table["columns"]).index(name)


def errors_by_distribution(lv: LevelRecord) -> dict[str, tuple[str, float]]:
    """{distribution: (kind, error)} of one evaluated level, from its scalars and tables."""
    out: dict[str, tuple[str, float]] = {}
    if isinstance(lv.metrics.get("accuracy"), (int, float)):
        out["clean"] = ("clean", 1.0 - lv.metrics["accuracy"])
    grid = lv.tables.get("corruptions/grid")
    if grid:
        mean = _column(grid, "mean")
        for row in grid["rows"]:
            out[str(row[0])] = ("corruption", 1.0 - row[mean])
    sets = lv.tables.get("shift/sets")
    if sets:
        acc = _column(sets, "accuracy")
        for row in sets["rows"]:
            out[str(row[0])] = ("shift", 1.0 - row[acc])
    noise = lv.tables.get("fidelity/noise")
    if noise:
        eps, acc = _column(noise, "eps"), _column(noise, "accuracy")
        for row in noise["rows"]:
            if row[eps] > 0:
                out[f"noise ε={row[eps]:g}"] = ("noise", 1.0 - row[acc])
    return out


def _section(inp):
    from sparsify.report.evaluation_parts import potential_section

    return potential_section(inp)


@summary("prune_potential", settings=PrunePotentialSettings, section=_section)
def prune_potential(inp: SummaryInput) -> dict[str, Any]:
    dense = inp.dense
    if dense is None:
        return {"skipped": NO_PARENT}
    deltas = sorted(inp.settings.deltas)
    ref = errors_by_distribution(dense)
    per_level = [(lv.sparsity, errors_by_distribution(lv)) for lv in inp.records]
    rows = []
    for name, (kind, ref_err) in ref.items():
        potential = []
        for delta in deltas:
            ok = [s for s, errs in per_level if name in errs and errs[name][1] <= ref_err + delta]
            potential.append(max(ok, default=0.0))
        rows.append([name, kind, ref_err, *potential])
    if not rows:
        return {"skipped": "no distribution was evaluated (accuracy, corruptions or fidelity)"}
    lowest = []
    for i, delta in enumerate(deltas):
        worst = min(rows, key=lambda r: r[3 + i])
        lowest.append({"delta": delta, "potential": worst[3 + i], "distribution": worst[0]})
    columns = ["distribution", "kind", "dense_error", *(f"delta={d:g}" for d in deltas)]
    return {"deltas": deltas, "table": {"columns": columns, "rows": rows}, "lowest": lowest}
