"""Data-parallel training under torchrun: N processes train one run as one process would.

`torchrun --nproc_per_node=N -m sparsify ...` starts N processes (ranks). Every rank composes the
same config and run directory and walks the same levels; what differs:

- **Batches.** Each rank builds the global batch of the single-process loader (same order, same
  augmentation draws, which are fixed by (seed, epoch, batch)) and trains on its contiguous shard
  of it (`torch.tensor_split`). Its loss is the shard's summed loss × N / B, so the gradients
  averaged over ranks are the gradient of the global batch's mean loss, as in one process.
- **Gradients** are averaged over ranks after every backward pass: one all-reduce of a flat
  buffer, as DistributedDataParallel does (without its bucketed overlap). This averages whatever
  the optimizer trains, weights or the learnt-mask methods' scores alike, which live outside the
  module that DDP's wrapper would see. Every rank then takes the same optimizer step, so weights,
  masks, pruning decisions and rewinding are identical on all ranks; each level's starting mask
  and weights are compared across ranks before it trains.
- **Files.** Only rank 0 writes: the run directory, log.jsonl, checkpoints, wandb, the report.
  The other ranks read what rank 0 wrote (so the run directory must be on a filesystem every
  rank sees, as torchrun's own checkpointing assumes) and never write; they wait for rank 0 at
  the end of each level. Evaluation runs on rank 0 only.
- **BatchNorm** sees its rank's shard in training (as DDP without SyncBatchNorm): models with
  BatchNorm train with per-shard batch statistics, so their results differ from one process by
  more than rounding. Models without it (LeNet, the digits default) match within rounding.

Backends: `dist_backend=auto` is NCCL on CUDA and gloo on the CPU. Each rank of a node takes
GPU `LOCAL_RANK`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch
from torch import Tensor

from sparsify.errors import UserError

BACKENDS = ("auto", "nccl", "gloo")
# Ranks other than 0 wait at the end of a level while rank 0 evaluates it (hours for ImageNet-C
# on one GPU): the collective timeout must outlast that.
TIMEOUT = timedelta(hours=12)


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of one run (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Whether this rank writes the run's files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def agree(self, error: Optional[str]) -> Optional[str]:
        """Every rank's error message (or None) gathered: the first one, on every rank, so that
        all ranks stop together when one of them cannot go on."""
        if not self.active:
            return error
        errors: list[Optional[str]] = [None] * self.size
        torch.distributed.all_gather_object(errors, error)
        return next((f"(rank {r}) {e}" for r, e in enumerate(errors) if e is not None), None)

    def shard(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """This rank's contiguous part of a global batch."""
        if not self.active:
            return x, y
        return x.tensor_split(self.size)[self.rank], y.tensor_split(self.size)[self.rank]

    def average_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """Replace every gradient the optimizer will use by its mean over ranks."""
        if not self.active:
            return
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def sum(self, values: Tensor) -> Tensor:
        """`values` summed over ranks (in place; returned)."""
        if self.active:
            torch.distributed.all_reduce(values)
        return values

    def check_same(self, what: str, tensors: dict[str, Tensor]) -> None:
        """A RuntimeError on every rank unless all ranks hold bit-identical `tensors`."""
        if not self.active:
            return
        digest = hashlib.sha256()
        for name in sorted(tensors):
            t = tensors[name].detach().cpu().contiguous().reshape(-1)
            digest.update(name.encode())
            digest.update(t.view(torch.uint8).numpy().tobytes())
        digests: list[Optional[str]] = [None] * self.size
        torch.distributed.all_gather_object(digests, digest.hexdigest())
        if len(set(digests)) > 1:
            raise RuntimeError(
                f"the ranks hold different {what}: data-parallel training diverged (a "
                "nondeterministic kernel, or a rank that read other files)"
            )


SINGLE = World()


def from_env() -> World:
    """The torchrun rank of this process (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), or a
    single process when WORLD_SIZE is unset or 1."""
    env = os.environ
    size = int(env.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return SINGLE
    return World(
        rank=int(env.get("RANK", "0")),
        size=size,
        local_rank=int(env.get("LOCAL_RANK", "0")),
        local_size=int(env.get("LOCAL_WORLD_SIZE", str(size))),
    )


def backend_for(world: World, choice: str, device: str) -> str:
    """The process-group backend for `dist_backend=choice` and the config's `device`; a
    UserError for a pair that cannot work, or more ranks on this node than it has GPUs."""
    cuda = torch.cuda.is_available()
    gpus = torch.cuda.device_count() if cuda else 0
    on_cuda = device.startswith("cuda") or (device == "auto" and cuda)
    if device.startswith("cuda:"):
        raise UserError(
            f"device={device} pins one GPU, but under torchrun each of the {world.size} "
            "processes takes the GPU of its LOCAL_RANK; use device=auto or device=cuda"
        )
    if device == "mps":
        raise UserError("device=mps cannot train data-parallel; use device=cpu under torchrun")
    backend = choice if choice != "auto" else ("nccl" if on_cuda else "gloo")
    if backend == "nccl" and not on_cuda:
        reason = "device=cpu" if device == "cpu" else "this machine has no CUDA GPU"
        raise UserError(
            f"dist_backend=nccl runs on CUDA GPUs, but {reason}; use dist_backend=gloo (or "
            "auto) to train on the CPU"
        )
    if on_cuda and world.local_size > gpus:
        raise UserError(
            f"torchrun started {world.local_size} processes on this node, but it has {gpus} "
            f"CUDA GPU(s); use --nproc_per_node={gpus} or fewer (one process per GPU)"
        )
    return backend


def device_for(world: World, device: str) -> torch.device:
    """The device this rank trains on: GPU LOCAL_RANK for device=auto (with CUDA) or cuda."""
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", world.local_rank)


def start(world: World, backend: str, device: torch.device) -> None:
    """Join the process group (torchrun's rendezvous variables name it)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend, timeout=TIMEOUT)


def stop(world: World) -> None:
    if world.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def check_batches(world: World, batch_size: int, num_samples: int, batches: int) -> None:
    """A UserError unless every rank gets at least one sample of every training batch."""
    if not world.active:
        return
    last = num_samples - (batches - 1) * batch_size
    smallest = min(batch_size, last)
    if smallest < world.size:
        raise UserError(
            f"a training batch of {smallest} image(s) cannot be shared by {world.size} "
            f"processes (train.batch_size={batch_size}, {num_samples} training images); use "
            f"a train.batch_size whose batches hold at least {world.size} images each, or "
            "fewer processes"
        )
