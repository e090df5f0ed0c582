"""`python -m sparsify.sweep PATH [PATH ...] [--out DIR] [--vary KEY ...]`: turn a sweep folder,
a sweep's manifest folder (`<sweep dir>/sweeps/<name>`, what one `-m` command made) or any set
of run directories into sweep_report.md, sweep_report.html, sweep_report.json and plots
(docs/sweeps.md). Runs may differ only in the seed and in what was swept; `--vary KEY` (a
dotted key, wildcards allowed) accepts another difference as a compared setting."""

from __future__ import annotations

import argparse
from pathlib import Path

from sparsify.errors import UserError, exit_with
from sparsify.sweep.manifest import MANIFEST


def default_out(paths: list[Path]) -> Path:
    """The first path if it is a folder of runs or a manifest folder, else (a run) its parent."""
    first = Path(paths[0])
    if (first / "config.yaml").is_file() and not (first / MANIFEST).is_file():
        return first.parent
    return first


def write_sweep_report(paths: list[Path], out: Path, vary: list[str] = ()) -> Path:
    """Collect, check and report; returns the path of sweep_report.md."""
    from sparsify.sweep.collect import collect_sweep
    from sparsify.sweep.report import build

    sweep = collect_sweep(paths, list(vary))
    title = f"Sweep report: {Path(out).resolve().name}"
    build(sweep, Path(out), title)
    return Path(out) / "sweep_report.md"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sparsify.sweep", description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help="sweep folders or run directories")
    parser.add_argument("--out", type=Path, help="where the report goes (default: the first path)")
    parser.add_argument(
        "--vary", action="append", default=[], metavar="KEY", help="a setting compared on purpose"
    )
    args = parser.parse_args(argv)
    try:
        out = args.out or default_out(args.paths)
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} is a file; give a folder")
        path = write_sweep_report(args.paths, out, args.vary)
    except UserError as e:
        exit_with(e)
    print(f"sweep report: {path}\n              {path.with_suffix('.html')}")


if __name__ == "__main__":
    main()
