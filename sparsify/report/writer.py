"""report.md and report.html: a table per level, the per-layer sparsity of the last level, and
the accuracy-against-sparsity plot beside them."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from sparsify.io import save_text
from sparsify.report.plots import accuracy_vs_sparsity

PLOT = "accuracy_vs_sparsity.png"


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, float) and "accuracy" in key:
        return f"{100 * value:.2f}%"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _tables(
    results: dict[str, Any], records: list[dict[str, Any]]
) -> list[tuple[str, list[str], list[list[str]]]]:
    levels = results["levels"]
    keys = list(dict.fromkeys(k for lv in levels for k in lv["metrics"]))
    head = ["level", "sparsity", "nonzero / prunable weights", *keys]
    rows = [
        [
            str(lv["level"]),
            f"{100 * lv['sparsity']:.2f}%",
            f"{lv['nonzero_params']:,} / {lv['prunable_params']:,}",
            *(_fmt(k, lv["metrics"].get(k, "")) for k in keys),
        ]
        for lv in levels
    ]
    tables = [("Levels", head, rows)]
    timed = [lv for lv in levels if "speed" in lv]
    if timed:  # backend=triton on a GPU: each level's forward pass, kernels against torch
        s0 = timed[0]["speed"]
        tables.append(
            (
                f"Speed on {s0['device']} (forward pass, batch {s0['batch']}, {s0['dtype']})",
                ["level", "sparsity", "torch ms", "kernels ms", "speed-up"],
                [
                    [
                        str(lv["level"]),
                        f"{100 * lv['sparsity']:.2f}%",
                        f"{lv['speed']['torch_ms']:.3f}",
                        f"{lv['speed']['triton_ms']:.3f}",
                        f"{lv['speed']['speedup']:.2f}x",
                    ]
                    for lv in timed
                ],
            )
        )
    last = records[-1] if records else None
    if last and "layers" in last:
        layer_rows = [
            [
                name,
                f"{c['nonzero']:,} / {c['total']:,}",
                f"{100 * (1 - c['nonzero'] / c['total']):.2f}%",
            ]
            for name, c in last["layers"].items()
        ]
        tables.append(
            (
                f"Per-layer sparsity, level {last['level']}",
                ["weight", "nonzero / total", "sparsity"],
                layer_rows,
            )
        )
    return tables


def write_report(
    run_dir: Path, results: dict[str, Any], records: list[dict[str, Any]], config: dict[str, Any]
) -> None:
    """Write report.md, report.html and the plot into `run_dir`."""
    title = f"{results['method']} · {results['model']} · {results['data']} · seed {results['seed']}"
    accuracy_vs_sparsity(
        [lv for lv in results["levels"] if "accuracy" in lv["metrics"]],
        title,
        Path(run_dir) / PLOT,
        config["eval"]["split"],
    )
    tables = _tables(results, records)
    md = [
        f"# {title}",
        "",
        f"Evaluated on the `{config['eval']['split']}` split. Sparsity is counted from the saved weights.",
        "",
    ]
    for name, head, rows in tables:
        md += [f"## {name}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        md.append("")
    md += ["## Accuracy against sparsity", "", f"![accuracy against sparsity]({PLOT})", ""]
    save_text("\n".join(md), Path(run_dir) / "report.md")

    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
        "</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for name, head, rows in tables:
        parts.append(
            f"<h2>{e(name)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
        )
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
    parts.append(
        f"<h2>Accuracy against sparsity</h2><img src='{PLOT}' alt='accuracy against sparsity'>"
    )
    parts.append("</body></html>")
    save_text("\n".join(parts), Path(run_dir) / "report.html")
