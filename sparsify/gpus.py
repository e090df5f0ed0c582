"""One GPU per job when a launcher runs several sweep jobs at once on one machine.

The joblib launcher (`hydra/launcher=local`) and submitit's local executor start jobs side by
side on the same machine; with `device=auto` every one of them would train on GPU 0. A job
instead claims a GPU: an exclusive OS file lock on `<sweep dir>/sweeps/gpus/<i>.lock` for the
first GPU nobody holds, kept for the job's lifetime and released by the OS when the job ends or
dies (a crashed job leaves nothing stuck). With every GPU held, the job waits for GPU
(job number mod GPUs). The lock names carry the host and the visible devices, so jobs on other
machines sharing the sweep folder, or with other CUDA_VISIBLE_DEVICES, never wait on each
other. Under SLURM (SLURM_JOB_ID set) the scheduler gives each job its GPUs: nothing is claimed.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from sparsify.sweep.manifest import SWEEPS


def _open(folder: Path, index: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "all").replace(",", "_") or "none"
    name = f"{socket.gethostname()}-{visible}-{index}.lock"
    return os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o644)


@contextmanager
def claimed_gpu(sweep_dir: Path, count: int, job_num: int) -> Iterator[Optional[int]]:
    """Hold the lock of a free GPU among `count` for the block; yields its index (None when
    there is at most one GPU, where there is nothing to choose)."""
    if count <= 1 or os.environ.get("SLURM_JOB_ID"):
        yield None
        return
    folder = Path(sweep_dir) / SWEEPS / "gpus"
    fd, index = -1, -1
    for i in range(count):
        fd = _open(folder, i)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            index = i
            break
        except BlockingIOError:
            os.close(fd)
    if index < 0:  # every GPU held: queue for one
        index = job_num % count
        fd = _open(folder, index)
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield index
    finally:
        os.close(fd)  # releases the lock
