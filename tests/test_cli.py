"""The command line as a user meets it: `python -m sparsify ...` in a subprocess."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

TINY = [
    "train.epochs=1",
    "data=synthetic",
    "data.num_samples=128",
    "model=lenet300_100",
    "eval=accuracy",
]


def sparsify(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sparsify", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    "args,needle",
    [
        (["model=nosuchnet"], "Could not find 'model/nosuchnet'"),
        (["prune.sparsity=1.5"], "prune.sparsity=1.5 is out of range; valid: [0.0, 1.0)"),
        (["train.epochs=-1"], "train.epochs=-1 is out of range"),
        (["data=cifar10"], "cifar-10"),
        (["prune.nosuchkey=1"], "nosuchkey"),
        (["seed=abc"], "seed"),
        (["+unknown=1"], "unknown"),
    ],
    ids=[
        "unknown-model",
        "sparsity-range",
        "negative-epochs",
        "missing-dataset",
        "unknown-key",
        "wrong-type",
        "unknown-top-key",
    ],
)
def test_bad_input_exits_nonzero_with_a_short_message_and_writes_nothing(tmp_path, args, needle):
    before = _listing(tmp_path)
    proc = sparsify(tmp_path, *args)
    assert proc.returncode != 0
    assert needle.lower() in proc.stderr.lower(), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    # Hydra lists the valid options for its own errors; ours are one line (next test)
    assert len(proc.stderr.strip().splitlines()) <= 40, proc.stderr
    assert _listing(tmp_path) == before


def test_our_own_errors_are_one_line(tmp_path):
    proc = sparsify(tmp_path, "prune.rate=0")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "sparsify: error: prune.rate=0.0 is out of range; valid: (0.0, 1.0)"
    ]


def test_help_lists_the_config_groups(tmp_path):
    proc = sparsify(tmp_path, "--help")
    assert proc.returncode == 0
    for group in ["data", "model", "prune", "train", "eval", "logger", "backend", "experiment"]:
        assert f"{group}:" in proc.stdout
    assert "lth" in proc.stdout and "resnet50" in proc.stdout and "digits" in proc.stdout
    assert _listing(tmp_path) == []


def test_cfg_job_prints_the_composed_config_and_writes_nothing(tmp_path):
    proc = sparsify(tmp_path, "--cfg", "job", "model=resnet20", "prune.rate=0.3")
    assert proc.returncode == 0, proc.stderr
    assert "name: resnet20" in proc.stdout and "rate: 0.3" in proc.stdout
    assert _listing(tmp_path) == []


def test_run_dir_override_places_the_run(tmp_path):
    proc = sparsify(tmp_path, *TINY, "prune=dense", "hydra.run.dir=out/here")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out/here/results.json").is_file()


def test_multirun_sweeps_into_one_directory_per_job(tmp_path):
    proc = sparsify(tmp_path, "-m", *TINY, "prune=dense", "seed=0,1")
    assert proc.returncode == 0, proc.stderr
    results = sorted((tmp_path / "runs").glob("dense-lenet300_100-synthetic-s*/results.json"))
    assert [json.loads(p.read_text())["seed"] for p in results] == [0, 1]


def test_same_command_twice_resumes_in_the_same_directory(tmp_path):
    assert sparsify(tmp_path, *TINY, "prune=dense").returncode == 0
    proc = sparsify(tmp_path, *TINY, "prune=dense")
    assert proc.returncode == 0
    assert len(list((tmp_path / "runs").iterdir())) == 1
    assert "epoch" not in proc.stdout  # nothing was trained again


@pytest.mark.slow
def test_a_run_killed_mid_level_resumes_to_the_uninterrupted_result(tmp_path):
    args = ["prune.levels=2", "train.epochs=8", "train.batch_size=32", "eval=accuracy"]
    reference = sparsify(tmp_path, *args, "hydra.run.dir=reference")
    assert reference.returncode == 0, reference.stderr

    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparsify", *args, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    log = run_dir / "log.jsonl"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:  # kill once level 1 has checkpointed its second epoch
            lines = log.read_text().splitlines() if log.exists() else []
            if any(
                '"level": 1' in ln and '"event": "epoch"' in ln and '"epoch": 3' in ln
                for ln in lines
            ):
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (run_dir / "levels/level_01/training.json").exists(), (
        "level 1 finished before the kill"
    )
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["level"] == 1 and ckpt["step"] > 0

    resumed = sparsify(tmp_path, *args, f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr
    assert "resume" in (run_dir / "log.jsonl").read_text()
    ref_dir = tmp_path / "reference"
    assert json.loads((run_dir / "results.json").read_text()) == json.loads(
        (ref_dir / "results.json").read_text()
    )
    for level in range(3):
        a = torch.load(run_dir / f"levels/level_{level:02d}/final.pt", weights_only=True)
        b = torch.load(ref_dir / f"levels/level_{level:02d}/final.pt", weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in b)


def test_a_sweep_with_one_bad_job_runs_no_job_and_writes_nothing(tmp_path):
    proc = sparsify(tmp_path, "-m", *TINY, "prune=dense", "train.lr=0.1,-1,0.2")
    assert proc.returncode == 2
    assert "train.lr=-1" in proc.stderr and "Traceback" not in proc.stderr
    assert _listing(tmp_path) == []


def test_a_sweep_setting_a_key_one_of_its_methods_lacks_is_refused_in_one_line(tmp_path):
    proc = sparsify(tmp_path, "-m", *TINY, "prune=lth,supermask", "prune.rate=0.5")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("sparsify: error: in the sweep job ") and "prune=supermask" in line
    assert line.endswith(
        ": Key 'rate' not in 'SupermaskConfig'; sweep the methods that lack this key separately"
    )
    assert _listing(tmp_path) == []  # not even multirun.yaml


def test_a_bad_run_outside_the_working_directory_leaves_no_folders(tmp_path):
    cwd, target = tmp_path / "cwd", tmp_path / "elsewhere"
    cwd.mkdir()
    for args in (["prune.sparsity=1.5"], ["data=cifar10"]):  # caught before / after the folder
        proc = sparsify(cwd, *args, f"hydra.run.dir={target}/a/b")
        assert proc.returncode == 2, proc.stderr
        assert not target.exists() and _listing(cwd) == []
