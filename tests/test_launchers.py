"""Sweeps through Hydra's launcher plugins (issue 13 part 3), for real: submitit's local
executor (the code path of submitit_slurm, in real subprocesses) and joblib's worker processes.
Results equal the basic launcher's; a job that fails shows its one line and the others run; a
sweep killed mid-run resumes when the command is run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the cluster extra")
pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="the cluster extra")

COMMON = ["train.epochs=1", "train.batch_size=128", "eval=accuracy", "train.progress=false"]
GRID = ["prune=magnitude", "prune.finetune=2it", "prune.sparsity=0.5,0.9", "seed=0,1"]


def sparsify(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sparsify", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        **kw,
    )


def results(root: Path) -> dict[str, list]:
    """Per run name: (level, sparsity, metrics) of every level."""
    out = {}
    for path in sorted(root.glob("*/results.json")):
        data = json.loads(path.read_text())
        out[path.parent.name] = [
            (lv["level"], lv["sparsity"], lv["metrics"]) for lv in data["levels"]
        ]
    return out


@pytest.fixture(scope="module")
def basic(tmp_path_factory):
    root = tmp_path_factory.mktemp("basic")
    proc = sparsify("-m", *GRID, *COMMON, f"hydra.sweep.dir={root}", cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return results(root)


@pytest.mark.parametrize("launcher", ["submitit_local", "local"])
def test_a_2x2_sweep_through_a_launcher_equals_the_basic_launchers(basic, launcher, tmp_path):
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "local" else []
    proc = sparsify(
        "-m", f"hydra/launcher={launcher}", *extra, *GRID, *COMMON,
        f"hydra.sweep.dir={tmp_path}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(basic) == 4 and results(tmp_path) == basic
    assert "sweep report:" in proc.stdout
    (folder,) = (tmp_path / "sweeps").glob("magnitude-*")
    report = json.loads((folder / "sweep_report.json").read_text())
    assert len(report["runs"]) == 4 and report["missing"] == []


@pytest.mark.parametrize("launcher", ["basic", "submitit_local"])
def test_a_job_failing_in_run_shows_its_line_and_the_others_finish(launcher, tmp_path):
    proc = sparsify(
        "-m", f"hydra/launcher={launcher}", "data=digits,cifar10", "prune=magnitude",
        "prune.finetune=2it", *COMMON, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "UncompletedJobError" not in proc.stderr
    assert "sparsify: 1 of 2 sweep jobs failed:" in proc.stderr
    failed = [line for line in proc.stderr.splitlines() if line.startswith("  data=cifar10")]
    assert len(failed) == 1 and "no CIFAR-10 files under" in failed[0]
    finished = results(tmp_path / "sweep")
    assert [name.split("-")[2] for name in finished] == ["digits"]
    (folder,) = (tmp_path / "sweep" / "sweeps").glob("magnitude-*")
    report = json.loads((folder / "sweep_report.json").read_text())
    (missing,) = report["missing"]
    assert "-cifar10-" in missing["run"] and "failed: data=cifar10: no CIFAR-10" in missing["why"]
    assert "no CIFAR-10 files" in (folder / "sweep_report.md").read_text()


def test_a_sweep_killed_mid_run_resumes_when_the_command_runs_again(tmp_path):
    """submitit_local, 2 jobs of 4 levels each; the whole process group (launcher and jobs, as
    a lost node would) is killed once a job has finished its level 0; the same command then
    finishes both, re-using the trained levels, with the results of an uninterrupted sweep."""
    grid = ["prune=lth", "prune.levels=4", "seed=0,1", *COMMON]
    ref = tmp_path / "ref"
    assert sparsify("-m", *grid, f"hydra.sweep.dir={ref}", cwd=tmp_path).returncode == 0
    root = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=submitit_local", *grid, f"hydra.sweep.dir={root}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparsify", *args], cwd=tmp_path, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(root.glob("*/levels/level_00/training.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "no level finished"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    unfinished = [p for p in root.glob("lth-*") if not (p / "results.json").exists()]
    assert unfinished, "the sweep finished before it could be killed"
    level0 = {p.name: (p / "levels/level_00/final.pt").stat().st_mtime_ns
              for p in root.glob("lth-*") if (p / "levels/level_00/training.json").exists()}  # fmt: skip
    again = sparsify(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert results(root) == results(ref) and len(results(ref)) == 2
    for name, mtime in level0.items():  # trained levels were read back, not trained again
        assert (root / name / "levels/level_00/final.pt").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("launcher", ["slurm", "local"])
def test_the_shipped_launcher_configs_compose(launcher, tmp_path):
    proc = sparsify(
        f"hydra/launcher={launcher}", "--cfg", "hydra", "-p", "hydra.launcher", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    if launcher == "slurm":
        for key in ("partition:", "gpus_per_node: 1", "cpus_per_task: 8", "mem_gb: 32",
                    "timeout_min: 720", "array_parallelism: 64", "max_num_timeout: 3"):  # fmt: skip
            assert key in text, key
        assert "SlurmLauncher" in text
    else:
        assert "n_jobs: 2" in text and "JoblibLauncher" in text


def test_jobs_side_by_side_claim_different_gpus_and_a_finished_job_frees_its_own(
    tmp_path, monkeypatch
):
    from sparsify.gpus import claimed_gpu

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)

    with claimed_gpu(tmp_path, 1, 0) as only:
        assert only is None  # one GPU: nothing to choose
    with claimed_gpu(tmp_path, 3, 0) as a, claimed_gpu(tmp_path, 3, 1) as b:
        assert (a, b) == (0, 1)
        with claimed_gpu(tmp_path, 3, 7) as c:
            assert c == 2
    with claimed_gpu(tmp_path, 3, 5) as d:  # all released again
        assert d == 0
    # another process holding GPU 0 (a job of the same sweep) pushes this one to GPU 1
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from sparsify.gpus import claimed_gpu\n"
         f"with claimed_gpu({str(tmp_path)!r}, 2, 0) as i:\n"
         "    print(i, flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "0"
        with claimed_gpu(tmp_path, 2, 0) as e:
            assert e == 1
    finally:
        holder.kill()
        holder.wait()
    with claimed_gpu(tmp_path, 2, 1) as f:  # a killed job leaves no lock behind
        assert f == 0


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            ["prune.sparsity=0.9,0.5", "prune.initial_sparsity=0.7"],
            "must lie in [0, prune.sparsity=0.5]",
        ),
        (
            ["prune.sparsity=0.5", "prune.granularity=unstructured,nm"],
            "prune.granularity=nm fixes it",
        ),
    ],
)
def test_gmp_settings_that_need_no_data_are_refused_before_any_job_starts(bad, message, tmp_path):
    proc = sparsify(
        "-m", "hydra/launcher=submitit_local", "prune=gmp", *bad, *COMMON,
        f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert "in the sweep job" in proc.stderr and not (tmp_path / "sweep").exists()


def test_under_slurm_no_gpu_is_claimed(tmp_path, monkeypatch):
    from sparsify.gpus import claimed_gpu

    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with claimed_gpu(tmp_path, 4, 0) as a, claimed_gpu(tmp_path, 4, 1) as b:
        assert a is None and b is None
    assert not (tmp_path / "sweeps").exists()


def test_a_failure_counts_when_recorded_during_this_command_even_over_a_finished_run(tmp_path):
    from sparsify.sweep.failures import failed_jobs, failure_path, record_failure
    from sparsify.sweep.manifest import Job, write_manifest

    record_failure(tmp_path, "old", ["seed=0"], "an earlier command's failure")
    old = failure_path(tmp_path, "old")
    os.utime(old, ns=(1, 1))  # long before this command
    jobs = [Job("old", ["seed=0"]), Job("done", ["seed=1"]), Job("fresh", ["seed=2"])]
    manifest = write_manifest(tmp_path, ["seed=0,1,2"], ["seed"], jobs, ["lth"] * 3)
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "results.json").write_text("{}")  # finished before, failed now
    record_failure(tmp_path, "done", ["seed=1"], "eval: a new evaluator's error")
    record_failure(tmp_path, "fresh", ["seed=2"], "data: missing files")
    got = {job.run: message for job, message in failed_jobs(manifest)}
    assert got == {"done": "eval: a new evaluator's error", "fresh": "data: missing files"}


def test_jobs_that_are_one_run_are_refused_by_a_parallel_launcher(tmp_path):
    # eval.batch_size is outside a run's identity: both jobs would train runs/<one name>
    proc = sparsify(
        "-m", "hydra/launcher=local", "eval.batch_size=256,512", *COMMON,
        f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if "sparsify: error" in ln]
    assert "jobs eval.batch_size=256" in line and "and eval.batch_size=512" in line
    assert "are the same run" in line
    assert not (tmp_path / "sweep").exists()
