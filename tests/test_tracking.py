"""What a run sends to wandb and to log.jsonl, checked in what was actually written.

wandb runs in offline mode (no network here) and writes its records to
`<run_dir>/wandb/offline-run-*/run-<id>.wandb`; those are read back with wandb's own reader for
that format (`wandb leet inspect --json`, one JSON object per record). No part of wandb is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from sparsify.compose import compose
from sparsify.config import LoggerConfig
from sparsify.identity import config_hash
from sparsify.records import LevelRecord
from sparsify.run import run
from sparsify.tracking import Tracker

TINY = [
    "train.epochs=2",
    "eval=accuracy",
    "prune.levels=1",  # two levels: dense, then one pruned
    "data=synthetic",
    "data.num_samples=128",  # 2 iterations per epoch
    "logger.log_every=1",
]
WANDB = [
    "logger=wandb",
    "logger.mode=offline",
    "logger.project=sparsify-tests",
    "logger.group=g1",
    "logger.tags=[a,b]",
    *TINY,
]


def _wandb_runs(run_dir: Path) -> list[list[dict[str, Any]]]:
    """The records of each wandb run stored under `run_dir/wandb`, oldest first."""
    found = []
    for path in sorted((run_dir / "wandb").glob("offline-run-*")):
        out = subprocess.run(
            [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            # offline: the reader must not try to reach a server for its own telemetry
            env={**os.environ, "WANDB_MODE": "offline", "WANDB_ERROR_REPORTING": "false"},
        )
        assert out.returncode == 0, out.stderr
        found.append([json.loads(line) for line in out.stdout.splitlines() if line.strip()])
    return found


def _one(records: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (record,) = [r[kind] for r in records if r["type"] == kind]
    return record


def _history(records: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The history rows (one per wandb.log call) that carry `key`."""
    rows = [r["history"]["item"] for r in records if r["type"] == "history"]
    return [row for row in rows if key in row]


def _user_config(update: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in update.items() if k != "_wandb"}  # wandb's own bookkeeping


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in config.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The run summary: every summary update, merged in order."""
    out: dict[str, Any] = {}
    for r in records:
        if r["type"] == "summary":
            out.update(r["summary"].get("update", {}))
    return out


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def multirun(tmp_path_factory) -> list[SimpleNamespace]:
    """Two runs one after the other in this process, as Hydra's multirun launches its jobs."""
    root = tmp_path_factory.mktemp("multirun")
    jobs = []
    for seed in (0, 1):
        cfg = compose([*WANDB, f"seed={seed}"])
        run_dir = root / f"seed{seed}"
        results = run(cfg, run_dir)
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        jobs.append(
            SimpleNamespace(dir=run_dir, results=results, config=config, runs=_wandb_runs(run_dir))
        )
    return jobs


@pytest.fixture(scope="module")
def job(multirun) -> SimpleNamespace:
    """The first job of the multirun, with the records of its one wandb run as `records`."""
    first = multirun[0]
    assert len(first.runs) == 1
    return SimpleNamespace(**vars(first), records=first.runs[0])


def test_wandb_gets_the_resolved_config_exactly_once(job):
    updates = [_user_config(_one(job.records, "run")["config"]["update"])]
    updates += [
        _user_config(r["config"]["update"])
        for r in job.records
        if r["type"] == "config" and _user_config(r["config"].get("update", {}))
    ]
    assert len(updates) == 1
    (sent,) = updates
    # the same resolved config as the run directory's config.yaml, flattened to dotted keys
    assert sent == _flat(job.config)
    assert sent["prune.name"] == "lth"
    assert sent["model.name"] == "lenet300_100"
    assert sent["data.num_samples"] == 128


def test_wandb_run_has_the_configured_project_group_tags_and_name(job):
    meta = _one(job.records, "run")
    assert meta["project"] == "sparsify-tests"
    assert meta["run_group"] == "g1"
    assert meta["tags"] == ["a", "b"]
    assert meta["display_name"] == "lth lenet300_100 synthetic rate 0.2 seed 0"
    assert meta["job_type"] == "lth"  # logger.job_type null: the method
    assert meta["run_id"].startswith(config_hash(job.config) + "-")


def test_train_metrics_are_logged_per_step_against_a_global_step_across_levels(job):
    rows = _history(job.records, "train/loss")
    train_events = [e for e in _events(job.dir) if e["event"] == "train"]
    assert len(rows) == len(train_events) == 8  # 2 levels x 2 epochs x 2 iterations
    steps = [row["train/global_step"] for row in rows]
    assert steps == sorted(set(steps)), steps  # strictly increasing, also into level 1
    assert [row["train/level"] for row in rows] == [0] * 4 + [1] * 4
    epochs = _history(job.records, "train/train_accuracy")
    assert len(epochs) == 4 and all("train/global_step" in row for row in epochs)
    metrics = [r["metric"] for r in job.records if r["type"] == "metric"]
    assert any(
        m.get("glob_name") == "train/*" and m.get("step_metric") == "train/global_step"
        for m in metrics
    )


def test_each_level_logs_one_summary_with_sparsity_on_the_x_axis(job):
    rows = _history(job.records, "level/sparsity")
    levels = job.results["levels"]
    assert [row["level/level"] for row in rows] == [lv["level"] for lv in levels] == [0, 1]
    sparsity = [row["level/sparsity"] for row in rows]
    assert sparsity == pytest.approx([lv["sparsity"] for lv in levels]) and sparsity[1] > 0.0
    accuracy = [row["level/accuracy"] for row in rows]
    assert accuracy == pytest.approx([lv["metrics"]["accuracy"] for lv in levels])
    metrics = [r["metric"] for r in job.records if r["type"] == "metric"]
    assert any(
        m.get("glob_name") == "level/*" and m.get("step_metric") == "level/sparsity"
        for m in metrics
    )


def test_a_completed_run_finishes_its_wandb_run_with_exit_code_0(job):
    assert job.records[-1]["type"] == "exit"
    assert job.records[-1]["exit"].get("exit_code", 0) == 0
    events = _events(job.dir)
    assert events[0]["event"] == "start" and events[-1]["event"] == "finish"
    # log.jsonl names the wandb run, so a resume can continue it
    assert events[0]["wandb_id"] == _one(job.records, "run")["run_id"]


def test_jobs_of_a_multirun_make_separate_wandb_runs(multirun):
    assert [len(j.runs) for j in multirun] == [1, 1]
    metas = [_one(j.runs[0], "run") for j in multirun]
    assert metas[0]["run_id"] != metas[1]["run_id"]
    seeds = [_user_config(m["config"]["update"])["seed"] for m in metas]
    assert seeds == [0, 1]
    for j in multirun:
        assert len(_history(j.runs[0], "level/sparsity")) == 2  # no rows leaked between runs
        assert j.runs[0][-1]["type"] == "exit"


def test_a_run_that_raises_midway_still_finishes_its_wandb_run_as_failed(tmp_path):
    run_dir = tmp_path / "run"
    # A folder where the report file must go: the run trains and logs every level, then fails
    # writing the report, after wandb has started.
    (run_dir / "report.md").mkdir(parents=True)
    with pytest.raises(OSError):
        run(compose(WANDB), run_dir)
    (records,) = _wandb_runs(run_dir)
    assert records[-1]["type"] == "exit"
    assert records[-1]["exit"].get("exit_code", 0) != 0
    assert len(_history(records, "level/sparsity")) == 2  # what was logged before the failure
    assert _events(run_dir)[-1]["event"] == "abort"


def _tracker(run_dir: Path, run_id: str = "0123abcd") -> Tracker:
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = LoggerConfig(name="wandb", project="sparsify-tests", mode="offline")
    return Tracker(run_dir, cfg, {"seed": 0}, run_id, "tracker-test")


def _wandb_ids(run_dir: Path) -> set[str]:
    """The ids of the wandb runs stored in `run_dir` (wandb names each file run-<id>.wandb)."""
    return {p.name[len("run-") : -len(".wandb")] for p in run_dir.glob("wandb/*/run-*.wandb")}


def test_a_run_started_while_another_is_still_open_gets_its_own_wandb_run(tmp_path):
    first = _tracker(tmp_path / "first")
    try:
        # wandb's default would hand back the open run, and the second job would log into it
        second = _tracker(tmp_path / "second")
        second.log_level(LevelRecord(0, 0.5, 1, 2, iterations=0, layers={}))
        second.finish(True)
    finally:
        first.finish(True)
    assert len(_wandb_ids(tmp_path / "first")) == len(_wandb_ids(tmp_path / "second")) == 1
    assert _wandb_ids(tmp_path / "first") != _wandb_ids(tmp_path / "second")
    (records,) = _wandb_runs(tmp_path / "second")
    assert [row["level/sparsity"] for row in _history(records, "level/sparsity")] == [0.5]


def test_resuming_in_the_same_directory_continues_its_wandb_run_but_a_new_directory_does_not(
    tmp_path,
):
    for _ in range(2):  # the same run directory started twice, as a resume does
        _tracker(tmp_path / "run").finish(True)
    _tracker(tmp_path / "other").finish(True)  # same config (run_id), different directory
    (resumed,) = _wandb_ids(tmp_path / "run")
    (other,) = _wandb_ids(tmp_path / "other")
    assert resumed != other
    assert resumed.startswith("0123abcd-") and other.startswith("0123abcd-")


def test_logger_none_writes_the_local_log_and_no_wandb_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # wandb's default folder would be ./wandb
    run_dir = tmp_path / "run"
    run(compose(TINY), run_dir)
    events = _events(run_dir)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert {"train", "epoch", "level"} <= set(kinds)
    assert [e["level"] for e in events if e["event"] == "level"] == [0, 1]
    assert all(isinstance(e["time"], float) for e in events)
    assert "wandb_id" not in events[0]
    assert not list(tmp_path.rglob("wandb"))


def test_wandb_disabled_mode_writes_no_wandb_files_but_the_local_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    run(compose([*WANDB, "logger.mode=disabled"]), run_dir)
    kinds = [e["event"] for e in _events(run_dir)]
    assert kinds[0] == "start" and kinds[-1] == "finish" and kinds.count("level") == 2
    assert not list(tmp_path.rglob("wandb"))


def test_a_finished_run_logs_its_levels_table_report_plots_and_summary(job):
    (row,) = _history(job.records, "levels._type")
    assert row["levels._type"] == "table-file"
    (folder,) = (job.dir / "wandb").glob("offline-run-*")
    table = json.loads((folder / "files" / row["levels.path"]).read_text())
    levels = job.results["levels"]
    assert table["columns"][:4] == ["level", "sparsity", "nonzero_params", "prunable_params"]
    col = table["columns"].index("accuracy")
    assert [r[0] for r in table["data"]] == [0, 1]
    assert [r[col] for r in table["data"]] == pytest.approx(
        [lv["metrics"]["accuracy"] for lv in levels]
    )
    assert row["report/accuracy_vs_sparsity._type"] == "image-file"
    assert (folder / "files" / row["report/accuracy_vs_sparsity.path"]).stat().st_size > 10_000
    summary = _summary(job.records)
    assert summary["final/accuracy"] == pytest.approx(levels[-1]["metrics"]["accuracy"])
    assert summary["final/sparsity"] == pytest.approx(levels[-1]["sparsity"])
    assert summary["final/level"] == 1


def test_artifacts_hold_every_levels_mask_and_final_weights(tmp_path):
    run_dir = tmp_path / "run"
    run(compose([*WANDB, "logger.artifacts=true", "eval.summaries=[verdict]"]), run_dir)
    (records,) = _wandb_runs(run_dir)
    arts = [r["artifact"] for r in records if r["type"] == "artifact"]
    (model,) = [a for a in arts if a.get("type") == "model"]
    paths = sorted(c["path"] for c in model["manifest"]["contents"])
    assert paths == [
        "level_00/final.pt",
        "level_00/mask.pt",
        "level_01/final.pt",
        "level_01/mask.pt",
    ]
    summary = _summary(records)
    verdict = json.loads((run_dir / "results.json").read_text())["summary"]["verdict"]
    assert summary["verdict/safe_sparsity"] == pytest.approx(verdict["safe_sparsity"])
    binding = verdict["binding"]["metric"] if verdict["binding"] else "none"
    assert summary["verdict/binding"] == binding


def test_a_sweep_is_one_wandb_group_named_as_its_manifest_with_the_method_as_job_type(tmp_path):
    wandb = [a for a in WANDB if not a.startswith("logger.group=")]  # the default group
    args = [sys.executable, "-m", "sparsify", "-m", "prune=lth,random", *wandb]
    args += [f"hydra.sweep.dir={tmp_path}"]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (manifest,) = (tmp_path / "sweeps").glob("*/sweep.json")
    metas = {}
    for run_dir in sorted(tmp_path.glob("*-synthetic-*")):
        (records,) = _wandb_runs(run_dir)
        meta = _one(records, "run")
        metas[meta["job_type"]] = meta
    assert sorted(metas) == ["lth", "random"]
    assert {m["run_group"] for m in metas.values()} == {manifest.parent.name}
    assert metas["random"]["display_name"] == "random lenet300_100 synthetic rate 0.2 seed 0"
