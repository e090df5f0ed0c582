"""Data-parallel training under torchrun (sparsify/distributed.py), on the CPU with gloo and two
processes, started as a user starts them: `python -m torch.distributed.run --nproc_per_node=2 -m
sparsify ...`. A 2-level lth run matches one process with the same global batch (LeNet has no
BatchNorm, so only the order of float additions differs), only rank 0 writes, a killed run
resumes to the uninterrupted result, and bad settings end before any work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sparsify.distributed import World, backend_for, check_batches
from sparsify.errors import UserError

RUN = ["prune.levels=2", "train.epochs=12", "train.progress=false", "train.checkpoint_every=5it"]


def _torchrun(*args: str, cwd: Path, procs: int = 2) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={procs}", "-m", "sparsify", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen, timeout: int = 300) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def _kill_everything_running(run_dir: Path) -> None:
    """SIGKILL torchrun and its ranks (each rank runs in a session of its own): every process
    whose command line names `run_dir`."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(run_dir) in cmdline.read_bytes().decode(errors="replace"):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass  # gone already


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """The same run in two processes and in one."""
    root = tmp_path_factory.mktemp("ddp")
    rc, out = _finish(_torchrun(*RUN, f"hydra.run.dir={root / 'two'}", cwd=root))
    assert rc == 0, out
    one = subprocess.run(
        [sys.executable, "-m", "sparsify", *RUN, f"hydra.run.dir={root / 'one'}"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    return root


def test_two_processes_match_one_with_the_same_global_batch(runs):
    two = json.loads((runs / "two/results.json").read_text())
    one = json.loads((runs / "one/results.json").read_text())
    assert len(two["levels"]) == len(one["levels"]) == 3
    images = two["eval_images"]
    for a, b in zip(two["levels"], one["levels"]):
        assert a["nonzero_params"] == b["nonzero_params"]
        assert abs(a["metrics"]["accuracy"] - b["metrics"]["accuracy"]) <= 1.5 / images
    for level in range(3):
        a = _load(runs / f"two/levels/level_{level:02d}/final.pt")
        b = _load(runs / f"one/levels/level_{level:02d}/final.pt")
        assert max(float((a[k] - b[k]).abs().max()) for k in b) < 1e-4, level
        ma = _load(runs / f"two/levels/level_{level:02d}/mask.pt")
        mb = _load(runs / f"one/levels/level_{level:02d}/mask.pt")
        differ = sum(int((ma[k] != mb[k]).sum()) for k in mb)
        assert differ <= 1e-3 * sum(m.numel() for m in mb.values()), level


def test_only_rank_0_writes_and_logs(runs):
    events = [json.loads(ln) for ln in (runs / "two/log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("start") == 1
    steps = [e["step"] for e in events if e["event"] == "train" and e["level"] == 0]
    assert steps == sorted(set(steps))  # one writer: no step twice
    one = [json.loads(ln) for ln in (runs / "one/log.jsonl").read_text().splitlines()]
    assert len([e for e in events if e["event"] == "train"]) == len(
        [e for e in one if e["event"] == "train"]
    )
    # the train loss logged is the global batch's, not rank 0's shard's
    loss2 = [e["loss"] for e in events if e["event"] == "train"][:5]
    loss1 = [e["loss"] for e in one if e["event"] == "train"][:5]
    assert loss2 == pytest.approx(loss1, rel=1e-4)


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_result(runs, tmp_path):
    run_dir = tmp_path / "two"
    proc = _torchrun(*RUN, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    level0 = run_dir / "levels/level_00/training.json"
    ckpt = run_dir / "checkpoint.pt"

    def in_level_1() -> bool:  # a checkpoint written after level 0 ended
        return level0.exists() and ckpt.exists() and ckpt.stat().st_mtime > level0.stat().st_mtime

    deadline = time.monotonic() + 240
    while not in_level_1() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    _kill_everything_running(run_dir)  # torchrun and both ranks, as a lost node
    proc.communicate()
    assert in_level_1() and not (run_dir / "levels/level_01/training.json").exists()
    assert _load(ckpt)["level"] == 1
    trained_at = level0.stat().st_mtime_ns
    rc, out = _finish(_torchrun(*RUN, f"hydra.run.dir={run_dir}", cwd=tmp_path))
    assert rc == 0, out
    assert level0.stat().st_mtime_ns == trained_at  # level 0 was not trained again
    resumed = json.loads((run_dir / "results.json").read_text())
    uninterrupted = json.loads((runs / "two/results.json").read_text())
    for key in ("run", "study"):
        resumed.pop(key), uninterrupted.pop(key)
    assert resumed == uninterrupted
    for level in range(3):
        a = _load(run_dir / f"levels/level_{level:02d}/final.pt")
        b = _load(runs / f"two/levels/level_{level:02d}/final.pt")
        assert all(torch.equal(a[k], b[k]) for k in b), level


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["device=cpu", "dist_backend=nccl"],
            "dist_backend=nccl runs on CUDA GPUs, but device=cpu",
        ),
        (["device=cuda:0"], "device=cuda:0 pins one GPU"),
        (["dist_backend=mpi"], "dist_backend='mpi' is not valid"),
        (["train.batch_size=1"], "a training batch of 1 image(s) cannot be shared by 2"),
        (["-m", "seed=0,1"], "torchrun started 2 processes for a -m sweep"),
    ],
)
def test_bad_settings_under_torchrun_end_before_any_work(tmp_path, args, message):
    rc, out = _finish(_torchrun(*args, f"hydra.run.dir={tmp_path / 'run'}",
                                f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path))  # fmt: skip
    errors = [ln for ln in out.splitlines() if "sparsify: error" in ln]
    assert rc != 0 and len(errors) == 1 and message in errors[0], out
    # torchrun reports the failed ranks with its own traceback (ChildFailedError); none of
    # sparsify's frames may be in it
    frames = [ln for ln in out.splitlines() if ln.lstrip().startswith('File "')]
    assert not [f for f in frames if "/sparsify/" in f and "/torch/" not in f], out
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


def test_more_processes_on_a_node_than_gpus_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    world = World(rank=0, size=2, local_rank=0, local_size=2)
    with pytest.raises(UserError, match="started 2 processes on this node, but it has 1 CUDA"):
        backend_for(world, "auto", "auto")
    assert backend_for(World(0, 2, 0, 1), "auto", "auto") == "nccl"
    assert backend_for(World(0, 2, 0, 1), "auto", "cpu") == "gloo"


def test_batches_too_small_to_shard_are_refused():
    world = World(rank=0, size=4, local_rank=0, local_size=4)
    check_batches(world, 64, 1000, 16)  # last batch: 40 images
    with pytest.raises(UserError, match="a training batch of 2 image"):
        check_batches(world, 64, 962, 16)  # last batch: 2 images


def test_download_under_torchrun_is_refused(tmp_path):
    run_dir = f"hydra.run.dir={tmp_path / 'run'}"
    rc, out = _finish(_torchrun("data=cifar10", "data.download=true", run_dir, cwd=tmp_path))
    errors = [ln for ln in out.splitlines() if "sparsify: error" in ln]
    assert rc != 0 and len(errors) == 1 and "data.download=true under torchrun" in errors[0]
    assert not (tmp_path / "run").exists()
