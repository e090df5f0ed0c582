"""The sweep report (`python -m sparsify.sweep`, and by itself at the end of a `-m` sweep): a
sweep built on the digits by two commands, as the methods table is; its numbers checked against
the results.json files; unfinished runs listed; runs that differ in an unswept key refused."""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from sparsify.analysis.intervals import wilson
from tests.browser import needs_chromium, render

COMMON = [
    "train.epochs=1",
    "train.batch_size=128",
    "eval=accuracy",
    "eval.if_possible=[fidelity]",
    "eval.summaries=[verdict]",
    "train.progress=false",
]
COMMANDS = [
    ["prune=magnitude", "prune.finetune=2it", "prune.sparsity=0.5,0.9", "seed=0,1,2"],
    ["prune=edgepopup", "prune.sparsity=0.5,0.9", "seed=0,1"],
]


def cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    outs = []
    for command in COMMANDS:
        proc = cli("sparsify", "-m", *command, *COMMON, f"hydra.sweep.dir={root}", cwd=root)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(proc.stdout)
    return root, outs


def _results(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/results.json"))]


def _config(results_path: Path) -> dict:
    import yaml

    return yaml.safe_load((results_path.parent / "config.yaml").read_text())


def test_wilson_interval_matches_its_textbook_values():
    # Wilson (1927) / Newcombe (1998) table: 81 of 263 -> (0.2553, 0.3662); 9 of 10 -> (0.5958,
    # 0.9821); 0 of 10 -> (0, 0.2775); 90 of 100 -> (0.8256, 0.9448)
    for k, n, lo, hi in ((81, 263, 0.2553, 0.3662), (9, 10, 0.5958, 0.9821), (0, 10, 0.0, 0.2775),
                         (90, 100, 0.8256, 0.9448)):  # fmt: skip
        got = wilson(k / n, n)
        assert got == pytest.approx((lo, hi), abs=1e-4), (k, n)


def test_every_sweep_command_writes_its_own_report_and_manifest(sweep):
    root, outs = sweep
    folders = sorted((root / "sweeps").iterdir())
    assert [f.name.split("-")[0] for f in folders] == ["edgepopup", "magnitude"]
    for folder, out in zip(reversed(folders), outs):
        manifest = json.loads((folder / "sweep.json").read_text())
        assert manifest["swept"] == ["prune.sparsity", "seed"]
        assert f"sweep report: {folder / 'sweep_report.md'}" in out
        report = (folder / "sweep_report.md").read_text()
        assert "Not in this report" not in report  # each covers its own jobs, all finished
    magnitude = json.loads((folders[1] / "sweep_report.json").read_text())
    assert len(magnitude["runs"]) == 6 and {s["method"] for s in magnitude["series"]} == {
        "magnitude"
    }


def test_the_report_numbers_are_the_results_files_numbers(sweep):
    root, _ = sweep
    proc = cli("sparsify.sweep", str(root), cwd=root)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((root / "sweep_report.json").read_text())
    report = (root / "sweep_report.md").read_text()
    assert len(data["runs"]) == 10 and data["missing"] == []
    by_label = {s["label"]: s for s in data["series"]}
    assert sorted(by_label) == ["edgepopup", "magnitude"]
    n = data["eval_images"]
    assert n == 359  # the digits' test split
    for method, seeds in (("magnitude", [0, 1, 2]), ("edgepopup", [0, 1])):
        for target in (0.5, 0.9):
            accs = []
            for path in sorted(root.glob(f"{method}-*/results.json")):
                res = json.loads(path.read_text())
                if _config(path)["prune"]["sparsity"] == target:
                    accs.append(res["levels"][-1]["metrics"]["accuracy"])
                    assert res["eval_images"] == 359
            assert len(accs) == len(seeds)
            (point,) = [p for p in by_label[method]["points"] if target in p["targets"]]
            stats = point["metrics"]["accuracy"]
            assert point["seeds"] == seeds
            assert stats["mean"] == pytest.approx(statistics.fmean(accs), abs=1e-12)
            assert stats["std"] == pytest.approx(statistics.stdev(accs), abs=1e-12)
            # the Wilson bounds are the roots in p of (p̂ − p)² = z² p (1 − p) / n
            p_hat, z = statistics.fmean(accs), 1.959963984540054
            a, b, c = 1 + z * z / n, -(2 * p_hat + z * z / n), p_hat * p_hat
            roots = sorted((-b + sgn * math.sqrt(b * b - 4 * a * c)) / (2 * a) for sgn in (-1, 1))
            assert stats["wilson"] == pytest.approx(roots, abs=1e-12)
            cell = f"{100 * p_hat:.2f} ± {100 * statistics.stdev(accs):.2f}"
            assert cell in report and f"[{100 * roots[0]:.1f}, {100 * roots[1]:.1f}]" in report
    # the dense parent: magnitude's level 0, the same model in both of a seed's studies
    dense = {
        r["seed"]: r["levels"][0]["metrics"]["accuracy"]
        for r in _results(root)
        if r["method"] == "magnitude"
    }
    (point,) = [p for p in by_label["magnitude"]["points"] if p["sparsity"]["mean"] == 0.0]
    assert point["metrics"]["accuracy"]["mean"] == pytest.approx(statistics.fmean(dense.values()))
    line = next(x for x in report.splitlines() if x.startswith("| dense (level 0) |"))
    assert f"{100 * statistics.fmean(dense.values()):.2f} ± " in line
    # the verdict row: every seed's safe sparsity is its runs' largest
    (verdict,) = [v for v in data["verdicts"] if v["series"] == "magnitude"]
    safes = []
    for seed in (0, 1, 2):
        safes.append(
            max(
                r["summary"]["verdict"]["safe_sparsity"]
                for r in _results(root)
                if r["method"] == "magnitude" and r["seed"] == seed
            )
        )
    assert verdict["safe_sparsity"] == safes
    assert sorted(data["plots"]) == [
        "sweep_accuracy_vs_sparsity.png",
        "sweep_agreement_vs_sparsity.png",
    ]
    assert all((root / p).stat().st_size > 10_000 for p in data["plots"])


def test_unfinished_and_never_started_runs_are_listed_not_dropped(sweep, tmp_path):
    root, _ = sweep
    copy = tmp_path / "sweep"
    shutil.copytree(root, copy)
    unfinished = sorted(copy.glob("magnitude-*"))[0]
    (unfinished / "results.json").unlink()
    gone = sorted(copy.glob("edgepopup-*"))[0]
    shutil.rmtree(gone)
    proc = cli("sparsify.sweep", str(copy), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((copy / "sweep_report.json").read_text())
    why = {Path(m["run"]).name: m["why"] for m in data["missing"]}
    assert why[unfinished.name] == "no results.json: unfinished or failed"
    assert why[gone.name].startswith("sweep edgepopup-") and "never started" in why[gone.name]
    assert len(data["runs"]) == 8
    report = (copy / "sweep_report.md").read_text()
    assert "## Not in this report" in report and unfinished.name in report


def test_runs_that_differ_in_a_key_not_swept_are_refused_naming_it(sweep, tmp_path):
    root, _ = sweep
    from sparsify.compose import compose
    from sparsify.run import run

    mixed = tmp_path / "mixed"
    overrides = ["prune=magnitude", "prune.finetune=2it", "train.epochs=1", "eval=accuracy"]
    run(compose([*overrides, "train.batch_size=128"]), mixed / "a")
    run(compose([*overrides, "train.batch_size=64"]), mixed / "b")
    proc = cli("sparsify.sweep", str(mixed), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "differ in train.batch_size (128 against 64)" in line, line
    assert "--vary train.batch_size" in line
    assert not (mixed / "sweep_report.md").exists()
    proc = cli("sparsify.sweep", str(mixed), "--vary", "train.batch_size", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    labels = [s["label"] for s in json.loads((mixed / "sweep_report.json").read_text())["series"]]
    assert labels == ["magnitude (train.batch_size=128)", "magnitude (train.batch_size=64)"]


def test_a_manifest_folder_reports_only_its_own_jobs(sweep, tmp_path):
    root, _ = sweep
    (folder,) = sorted((root / "sweeps").glob("edgepopup-*"))
    out = tmp_path / "out"
    proc = cli("sparsify.sweep", str(folder), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "sweep_report.json").read_text())
    assert len(data["runs"]) == 4 and all("edgepopup-" in Path(r).name for r in data["runs"])


def _damaged_manifest(p: Path) -> list[str]:
    (p / "sweeps" / "x").mkdir(parents=True)
    (p / "sweeps" / "x" / "sweep.json").write_text('{"name": "x", "jobs": 3}')
    return [str(p)]


def _out_is_a_file(p: Path) -> list[str]:
    (p / "report").write_text("not a folder")
    return [str(p), "--out", str(p / "report")]


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda p: [str(p)], "no finished sparsify run under"),
        (lambda p: [str(p / "nowhere")], "does not exist"),
        (_damaged_manifest, "is not a sparsify sweep manifest"),
        (_out_is_a_file, "is a file; give a folder"),
    ],
)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(tmp_path, make, needle):
    (tmp_path / "empty").mkdir()
    args = make(tmp_path / "empty")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    proc = cli("sparsify.sweep", *args, cwd=tmp_path)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@needs_chromium
def test_sweep_report_html_renders_with_every_plot_loaded(sweep):
    root, _ = sweep
    if not (root / "sweep_report.html").exists():
        assert cli("sparsify.sweep", str(root), cwd=root).returncode == 0
    page = render(root / "sweep_report.html", root / "sweep_report_screenshot.png")
    images, headings, errors = page.images, page.headings, page.errors
    assert len(images) == 2 and all(c and w > 0 for _, c, w in images), images
    assert headings[:3] == [
        "Methods table: accuracy",
        "Safe sparsity per series",
        "Against sparsity",
    ]
    assert not errors, errors
