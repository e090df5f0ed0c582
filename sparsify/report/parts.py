"""Report parts: each turns a run's typed records into report sections (or none). The report is
the parts in registry order; an evaluator adds a section of its own through its `section`
(evaluate/base.py), which the `evaluators` part calls. Nothing here knows a metric by name: tables
and figures follow the evaluators' MetricSpecs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sparsify.analysis.intervals import format_wilson
from sparsify.evaluate.base import Evaluator, MetricSpec
from sparsify.records import LevelRecord, RunResults
from sparsify.registry import Registry
from sparsify.report.model import Figure, Section, Table, Text
from sparsify.report.plots import metric_vs_sparsity
from sparsify.rundir import RunDir


@dataclass
class ReportInput:
    rd: RunDir
    results: RunResults
    records: list[LevelRecord]  # with per-layer counts
    evaluators: list[Evaluator]  # the selected ones, in order
    specs: dict[str, MetricSpec]  # every selected evaluator's scalars
    summaries: list[Any] = field(default_factory=list)  # the selected summaries (Summary)

    @property
    def title(self) -> str:
        r = self.results
        return f"{r.method} · {r.model} · {r.data} · seed {r.seed}"


Part = Callable[[ReportInput], list[Section]]
REPORT_PARTS: Registry[Part] = Registry("report part")
ORDER: list[str] = []  # parts in the order they appear


def part(name: str) -> Callable[[Part], Part]:
    def decorate(fn: Part) -> Part:
        REPORT_PARTS.register(name)(fn)
        ORDER.append(name)
        return fn

    return decorate


def _sparsity(lv: LevelRecord) -> str:
    return f"{100 * lv.sparsity:.2f}%"


FIRST = "verdict"  # the summary the report opens with


@part("verdict")
def verdict(inp: ReportInput) -> list[Section]:
    """The verdict summary's section, first of all, when the run computed it."""
    return [s for e in inp.summaries if e.name == FIRST and e.section for s in e.section(inp)]


@part("levels")
def levels_table(inp: ReportInput) -> list[Section]:
    """One row per level: sparsity, weights, and every declared scalar a level has."""
    present = {k for lv in inp.records for k in lv.metrics}
    keys = [k for k in inp.specs if k in present]
    head = ["level", "sparsity", "nonzero / prunable weights", *(inp.specs[k].label for k in keys)]
    rows = [
        [
            str(lv.level),
            _sparsity(lv),
            f"{lv.nonzero_params:,} / {lv.prunable_params:,}",
            *(_cell(inp, k, lv.metrics.get(k)) for k in keys),
        ]
        for lv in inp.records
    ]
    blocks: list = [Table(head, rows)]
    n = inp.results.eval_images
    if n and any(inp.specs[k].binomial for k in keys):
        blocks.append(
            Text(
                f"Accuracies carry their Wilson 95% interval on the {n} {inp.results.split} "
                f"images (one image is {100 / n:.2f} points): levels whose intervals overlap may "
                "differ by test-set noise alone."
            )
        )
    return [Section("Levels", blocks)]


def _cell(inp: ReportInput, key: str, value: Any) -> str:
    """A level's metric as the table shows it: accuracies with their Wilson interval."""
    spec = inp.specs[key]
    text = spec.format(value)
    if spec.binomial and isinstance(value, float) and 0.0 <= value <= 1.0:
        text += format_wilson(value, inp.results.eval_images)
    return text


@part("evaluators")
def evaluator_sections(inp: ReportInput) -> list[Section]:
    """The sections the selected evaluators contribute, in their order."""
    out: list[Section] = []
    for entry in inp.evaluators:
        if entry.section is not None:
            out += entry.section(inp)
    return out


@part("summaries")
def summary_sections(inp: ReportInput) -> list[Section]:
    """The other summaries' sections (prune potential), in their order."""
    return [s for e in inp.summaries if e.name != FIRST and e.section for s in e.section(inp)]


@part("layers")
def layer_sparsity(inp: ReportInput) -> list[Section]:
    """The per-layer sparsity of the last level."""
    if not inp.records or not inp.records[-1].layers:
        return []
    last = inp.records[-1]
    rows = [
        [name, f"{c.nonzero:,} / {c.total:,}", f"{100 * c.sparsity:.2f}%"]
        for name, c in last.layers.items()
    ]
    head = ["weight", "nonzero / total", "sparsity"]
    return [Section(f"Per-layer sparsity, level {last.level}", [Table(head, rows)])]


@part("figures")
def figures(inp: ReportInput) -> list[Section]:
    """One figure per scalar whose spec says `plot`, against sparsity."""
    out = []
    for key, spec in inp.specs.items():
        if not spec.plot or not any(key in lv.metrics for lv in inp.records):
            continue
        name = f"{key}_vs_sparsity"
        title = f"{spec.label[:1].upper()}{spec.label[1:]} against sparsity"
        path = inp.rd.plot_path(name)
        r = inp.results
        metric_vs_sparsity(
            inp.records, key, spec, inp.title, path, r.split, r.dense_level, r.eval_images
        )
        out.append(Section(title, [Figure(inp.rd.plot_path(name).name, title.lower())]))
    return out


def speed_section(inp: ReportInput) -> list[Section]:
    """The `speed` evaluator's section: each timed level, kernels against torch."""
    timed = [lv for lv in inp.records if "speed/setup" in lv.tables]
    if not timed:
        return []
    device, batch, dtype, _ = timed[0].tables["speed/setup"]["rows"][0]
    spec = inp.specs
    rows = [
        [
            str(lv.level),
            _sparsity(lv),
            *(spec[k].format(lv.metrics[k]).removesuffix(" ms") for k in ("torch_ms", "triton_ms")),
            spec["speedup"].format(lv.metrics["speedup"]),
        ]
        for lv in timed
    ]
    head = ["level", "sparsity", "torch ms", "kernels ms", "speed-up"]
    title = f"Speed on {device} (forward pass, batch {batch}, {dtype})"
    return [Section(title, [Table(head, rows)])]


def kernels_section(inp: ReportInput) -> list[Section]:
    """The `kernels` evaluator's section: the kernel each layer ran on, level by level."""
    levels = [lv for lv in inp.records if "kernels/layers" in lv.tables]
    if not levels:
        return []
    chosen = [dict(map(tuple, lv.tables["kernels/layers"]["rows"])) for lv in levels]
    layers = list(dict.fromkeys(n for c in chosen for n in c))
    head = ["layer", *(f"level {lv.level}" for lv in levels)]
    rows = [[n, *(c.get(n, "torch") for c in chosen)] for n in layers]
    return [Section("Kernels per layer", [Table(head, rows)])]
