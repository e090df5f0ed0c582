"""Report sections of the evaluators and summaries beyond accuracy: the verdict (first in the
report), prune potential, calibration, per-class recall and CKA. Each reads only the records and
results.json's summary, and draws its PNGs beside the report."""

from __future__ import annotations

from typing import Any

from sparsify.records import LevelRecord
from sparsify.report.model import Figure, Section, Table, Text
from sparsify.report.plots import pyplot, save_png


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _figure(inp, name: str, fig, alt: str) -> Figure:
    save_png(fig, inp.rd.plot_path(name))
    return Figure(inp.rd.plot_path(name).name, alt)


def verdict_section(inp) -> list[Section]:
    v: dict[str, Any] = inp.results.summary.get("verdict", {})
    if not v:
        return []
    if "skipped" in v:
        return [Section("Verdict", [Text(f"No verdict: {v['skipped']}.")])]
    tol = ", ".join(f"{name} {value:g}" for name, value in v["tolerances"].items())
    lines = [
        Text(
            f"Safe sparsity: {_pct(v['safe_sparsity'])} (level {v['safe_level']}): the "
            f"sparsest level within every tolerance ({tol})."
        )
    ]
    b = v.get("binding")
    if b:
        lines.append(
            Text(
                f"Binding metric: `{b['metric']}` (tolerance `{b['tolerance']}`): at level "
                f"{b['level']} ({_pct(b['sparsity'])} sparse) it is {b['excess']:.4f} from the "
                f"dense parent, beyond the limit {b['limit']:g}."
            )
        )
    else:
        lines.append(Text("No level sparser than it fails a tolerance: no metric binds yet."))
    for w in v.get("warnings", []):
        lines.append(Text(f"Caution: {w}."))
    return [Section("Verdict", lines)]


def potential_section(inp) -> list[Section]:
    pp: dict[str, Any] = inp.results.summary.get("prune_potential", {})
    if not pp or "skipped" in pp:
        return []
    deltas, rows = pp["deltas"], pp["table"]["rows"]
    head = ["distribution", "dense error", *(f"PP at δ={100 * d:g} pt" for d in deltas)]
    table = [[r[0], _pct(r[2]), *(_pct(x) for x in r[3:])] for r in rows]
    lowest = "; ".join(
        f"δ={100 * e['delta']:g} pt: {_pct(e['potential'])} ({e['distribution']})"
        for e in pp["lowest"]
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(rows)), 4), dpi=110)
    width = 0.8 / len(deltas)
    for i, d in enumerate(deltas):
        xs = [j + i * width for j in range(len(rows))]
        ax.bar(xs, [100 * r[3 + i] for r in rows], width, label=f"δ = {100 * d:g} pt")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))])
    ax.set_xticklabels([r[0] for r in rows], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("prune potential (% of weights)")
    ax.set_title("Prune potential per distribution")
    ax.legend(fontsize=8)
    fig_block = _figure(inp, "prune_potential", fig, "prune potential per distribution")
    return [
        Section(
            "Prune potential",
            [
                Text(
                    "The largest sparsity whose error on each distribution stays within δ of "
                    f"the dense parent's (Lost in Pruning). Lowest over distributions: {lowest}."
                ),
                fig_block,
                Table(head, table),
            ],
        )
    ]


def _with(inp, key: str) -> list[LevelRecord]:
    return [lv for lv in inp.records if key in lv.tables]


def calibration_section(inp) -> list[Section]:
    levels = _with(inp, "calibration/reliability")
    if not levels:
        return []
    shown = [levels[0], levels[-1]] if len(levels) > 1 else levels
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1, label="perfect calibration")
    for lv in shown:
        rows = [r for r in lv.tables["calibration/reliability"]["rows"] if r[2]]
        ax.plot(
            [r[3] for r in rows],
            [r[4] for r in rows],
            marker="o",
            label=f"level {lv.level} ({_pct(lv.sparsity)} sparse)",
        )
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram")
    ax.legend(fontsize=8)
    return [Section("Calibration", [_figure(inp, "reliability", fig, "reliability diagram")])]


def per_class_section(inp) -> list[Section]:
    levels = _with(inp, "per_class/recall")
    if not levels or levels[0].tables["per_class/recall"]["rows"][0][3] is None:
        return []
    classes = [r[0] for r in levels[0].tables["per_class/recall"]["rows"]]
    grid = [[100 * r[3] for r in lv.tables["per_class/recall"]["rows"]] for lv in levels]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(levels) + 2), dpi=110)
    span = max(1e-9, max(abs(v) for row in grid for v in row))
    im = ax.imshow(grid, cmap="RdBu", vmin=-span, vmax=span, aspect="auto")
    ax.set_yticks(range(len(levels)))
    ax.set_yticklabels([f"{lv.level}: {_pct(lv.sparsity)}" for lv in levels], fontsize=7)
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels(classes, fontsize=7)
    ax.set_xlabel("class")
    ax.set_ylabel("level: sparsity")
    ax.set_title("Recall change against the dense parent (points)")
    fig.colorbar(im, ax=ax)
    last = levels[-1].tables["per_class/recall"]["rows"]
    hurt = sorted(last, key=lambda r: r[3])[:5]
    table = [[str(r[0]), _pct(r[2]), _pct(r[1]), f"{100 * r[3]:+.2f}"] for r in hurt]
    return [
        Section(
            "Per-class recall",
            [
                _figure(inp, "per_class_recall", fig, "per-class recall change heat map"),
                Text(f"Most-hurt classes at level {levels[-1].level}:"),
                Table(["class", "dense recall", "recall", "change (points)"], table),
            ],
        )
    ]


def cka_section(inp) -> list[Section]:
    levels = _with(inp, "cka/layers")
    if not levels:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    names = [r[0] for r in levels[0].tables["cka/layers"]["rows"]]
    for lv in levels:
        values = [r[1] for r in lv.tables["cka/layers"]["rows"]]
        ax.plot(range(len(values)), values, marker="o", label=f"{_pct(lv.sparsity)}")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("linear CKA with the dense parent")
    ax.set_title("Representation similarity per layer")
    ax.legend(title="sparsity", fontsize=7)
    return [Section("CKA per layer", [_figure(inp, "cka_layers", fig, "CKA per layer")])]
