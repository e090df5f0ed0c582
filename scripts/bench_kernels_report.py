"""The report side of scripts/bench_kernels.py: its results as the markdown table that
docs/performance.md shows (with the command, machine and date), and that table written between
the `bench_kernels` markers of a docs file."""

from __future__ import annotations

from pathlib import Path

from sparsify.io import save_text


def markdown(result: dict) -> str:
    """The table docs/performance.md shows, with its provenance."""
    env = result["environment"]
    lines = [
        f"`{result['command']}` on {env['device']} ({env['date']}; torch {env['torch']}, "
        f"triton {env['triton']}, {result['dtype']}). Speed-up = torch time / ours (> 1: ours "
        "faster); torch runs the masked weight densely. Error: max |out − fp64| / max |fp64|.",
        "",
        "| layer | batch | kind | sparsity | ms | TFLOP/s | % peak | speed-up | error (torch) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["layers"]:
        peak = "" if r["peak_percent"] is None else f"{r['peak_percent']:.1f}"
        lines.append(
            f"| {r['layer']} | {r['batch']} | {r['kind']} | {r['sparsity']:.2f} | {r['ms']:.4f} "
            f"| {r['tflops']:.2f} | {peak} | {r['speedup']:.2f} | {r['error']:.1e} "
            f"({r['torch_error']:.1e}) |"
        )
    m = result["model"]
    lines += [
        "",
        f"End to end: {m['model']}, batch {m['batch']}, {100 * m['block_sparsity']:.0f}% of "
        f"{result['block']}×{result['block']} blocks pruned ({100 * m['weight_sparsity']:.1f}% of "
        f"weights), through `convert` (kernels chosen: {m['kernels']}; measured slower than "
        f"torch and kept on it: {len(m['kept_on_torch'])}): {m['ms']:.3f} ms against "
        f"{m['torch_ms']:.3f} ms on torch, **{m['speedup']:.2f}×**; error {m['error']:.1e} "
        f"(torch {m['torch_error']:.1e}).",
    ]
    if result.get("not_measured"):
        lines += [
            "",
            "Not measured (past --time-limit): " + ", ".join(result["not_measured"]) + ".",
        ]
    return "\n".join(lines)


BEGIN, END = "<!-- bench_kernels:begin -->", "<!-- bench_kernels:end -->"


def check_docs(path: Path) -> str:
    """The text of `path`; SystemExit (before any measurement) unless it holds both markers."""
    try:
        text = path.read_text()
    except OSError as e:
        raise SystemExit(f"--docs {path}: cannot read it ({e.strerror})") from None
    if BEGIN not in text or END not in text:
        raise SystemExit(
            f"--docs {path} has no {BEGIN} ... {END} markers to write the table between"
        )
    return text


def write_docs(path: Path, table: str) -> None:
    """Replace the text between the bench_kernels markers of `path` with `table`."""
    head, rest = check_docs(path).split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    save_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", path)
