"""The `corruptions` evaluator's report section: accuracy drop against sparsity per corruption
family, error against severity for the dense parent and the sparsest level, and the corruption x
severity table."""

from __future__ import annotations

from sparsify.corruptions.base import FAMILIES
from sparsify.records import LevelRecord
from sparsify.report.model import Figure, Section, Table, Text
from sparsify.report.plots import pyplot, save_png

GRID = "corruptions/grid"


def _grid(lv: LevelRecord) -> tuple[list[str], dict[str, tuple[str, list[float], float]]]:
    """(severity labels, {corruption: (family, accuracy per severity, mean)})."""
    table = lv.tables[GRID]
    severities = [int(c) for c in table["columns"][2:-1]]
    rows = {r[0]: (r[1], list(r[2:-1]), r[-1]) for r in table["rows"]}
    return severities, rows


def _family_means(lv: LevelRecord) -> dict[str, float]:
    _, rows = _grid(lv)
    out = {}
    for family in FAMILIES:
        values = [mean for fam, _, mean in rows.values() if fam == family]
        if values:
            out[family] = sum(values) / len(values)
    return out


def _save(inp, name: str, fig, alt: str) -> Figure:
    save_png(fig, inp.rd.plot_path(name))
    return Figure(inp.rd.plot_path(name).name, alt)


def corruption_section(inp) -> list[Section]:
    levels = [lv for lv in inp.records if GRID in lv.tables]
    if not levels:
        return []
    dense_level = inp.results.dense_level
    dense = next((lv for lv in levels if lv.level == dense_level), None)
    last = levels[-1]
    plt = pyplot()

    # accuracy (drop) against sparsity: clean and each family
    series: dict[str, list[float]] = {"clean": []}
    for lv in levels:
        series["clean"].append(lv.metrics.get("accuracy", float("nan")))
        for family, value in _family_means(lv).items():
            series.setdefault(family, []).append(value)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    xs = [100 * lv.sparsity for lv in levels]
    ref_index = levels.index(dense) if dense is not None else None
    for name, ys in series.items():
        base = ys[ref_index] if ref_index is not None else 0.0
        ax.plot(xs, [100 * (y - base) for y in ys], marker="o", label=name)
    ax.axhline(0, color="gray", linewidth=1, linestyle="--")
    ax.set_xlabel("sparsity (% of prunable weights zero)")
    what = "accuracy − dense accuracy" if dense is not None else "accuracy"
    ax.set_ylabel(f"{what} (points)")
    ax.set_title("Accuracy against sparsity, clean and per corruption family")
    ax.legend(fontsize=8)
    blocks = [_save(inp, "corruption_accuracy_drop", fig, "accuracy drop per corruption family")]

    # error against severity, dense vs the sparsest level
    severities, last_rows = _grid(last)
    families = [f for f in FAMILIES if any(r[0] == f for r in last_rows.values())]
    fig, axes = plt.subplots(
        1, len(families), figsize=(3 * len(families), 3), dpi=110, squeeze=False
    )
    shown = [lv for lv in (dense, last) if lv is not None]
    for ax, family in zip(axes[0], families):
        for lv, style in zip(shown, ("--", "-")):
            _, rows = _grid(lv)
            per = [accs for fam, accs, _ in rows.values() if fam == family]
            err = [100 * (1 - sum(a[i] for a in per) / len(per)) for i in range(len(severities))]
            ax.plot(severities, err, style, marker="o", label=f"level {lv.level}")
        ax.set_title(family)
        ax.set_xlabel("severity")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("error (%)")
    axes[0][-1].legend(fontsize=7)
    blocks.append(_save(inp, "corruption_error_vs_severity", fig, "error against severity"))

    # the table: per corruption, the sparsest level's accuracy per severity, dense mean and CE
    head = ["corruption", "family", *(f"sev {s}" for s in severities), "mean"]
    if dense is not None:
        head += ["dense mean", "CE"]
        _, dense_rows = _grid(dense)
    rows = []
    for name, (family, accs, mean) in last_rows.items():
        row = [name, family, *(f"{100 * a:.1f}" for a in accs), f"{100 * mean:.1f}"]
        if dense is not None:
            ref = dense_rows[name][2]
            ce = (1 - mean) / (1 - ref) if ref < 1 else float("nan")
            row += [f"{100 * ref:.1f}", f"{ce:.2f}"]
        rows.append(row)
    blocks.append(
        Text(
            f"Accuracy (%) under each corruption at level {last.level} ({100 * last.sparsity:.2f}% sparse):"
        )
    )
    blocks.append(Table(head, rows))
    return [Section("Robustness to common corruptions", blocks)]
