"""The training loop of one level: iterations [start, end) of the schedule, mask enforced.

Plain code top to bottom. Position in the data is a pure function of the iteration
(epoch = it // iterations_per_epoch, batch = it % iterations_per_epoch), so a level can start at a
rewind point or resume from a checkpoint anywhere and see the batches an uninterrupted run would.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from sparsify.config import TrainConfig
from sparsify.data.base import Loader
from sparsify.distributed import SINGLE, World
from sparsify.evaluate.metrics import loss_and_topk
from sparsify.sparsity.enforce import MaskEnforcer
from sparsify.sparsity.mask import Mask
from sparsify.training.optim import LRSchedule, set_lr
from sparsify.training.precision import Precision

Forward = Callable[[nn.Module, Tensor], Tensor]  # (model, x) -> logits, in place of model(x)


@dataclass
class MaskChange:
    """A new mask to enforce from this iteration on (gradual pruning, AC/DC phases)."""

    mask: Mask
    reset_momentum: bool = False  # clear the optimizer's state (AC/DC, when weights come back)


# (iteration, live prunable weights, current mask) -> a change at this iteration, or None
MaskSchedule = Callable[[int, dict[str, Tensor], Mask], Optional[MaskChange]]


@dataclass
class Segment:
    """What a level trains: schedule iterations [start, end)."""

    start: int
    end: int
    fixed_lr: Optional[float] = None  # a constant lr (fine-tuning) instead of the schedule's
    snapshots: dict[str, int] = field(default_factory=dict)  # name -> iteration to save weights at
    # Consulted before every step; must be cheap when nothing changes (a set lookup).
    mask_schedule: Optional[MaskSchedule] = None


class MaskState:
    """The mask in force during a level and the enforcer that keeps it: its one owner.

    `change` applies a new mask to the model's weights (pruned ones become zero, revived ones
    restart from the zero they hold), enforces it from then on and reports it to `on_change`."""

    def __init__(
        self,
        model: nn.Module,
        mask: Mask,
        on_change: Callable[[int, MaskChange], None] = lambda it, change: None,
    ) -> None:
        self.model, self.on_change = model, on_change
        self.mask = mask
        self.enforcer = MaskEnforcer(model, mask)

    def change(self, it: int, change: MaskChange) -> None:
        self.mask = change.mask
        self.mask.apply_(self.model)
        self.enforcer = MaskEnforcer(self.model, self.mask)
        self.on_change(it, change)


@dataclass
class LoopEvents:
    """Where the loop's events go (the runner's tracker and run directory)."""

    log: Callable[[dict[str, Any]], None]  # one event: a train step, an epoch summary
    console: Callable[[str], None]  # one line for the person watching
    checkpoint: Callable[[int, torch.optim.Optimizer], None]  # (iterations done, optimizer)
    # (name, weights, optimizer): the weights (and optimizer state) at a named iteration
    snapshot: Callable[[str, dict[str, Tensor], torch.optim.Optimizer], None]
    checkpoint_every: int  # iterations
    log_every: int  # iterations between train-step events
    title: str  # e.g. "level 2/9"


def cpu_state(model: nn.Module) -> dict[str, Tensor]:
    """A detached CPU copy of `model.state_dict()`."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _batches_from(loader: Loader, it: int) -> Iterator[tuple[Tensor, Tensor]]:
    """The training batches from iteration `it` on, across epochs, forever."""
    epoch, first = divmod(it, len(loader))
    while True:
        yield from loader.batches(epoch, start=first)
        epoch, first = epoch + 1, 0


class EpochMeter:
    """Training loss and accuracy of the current epoch, accumulated on the device: a .item() per
    step would synchronise a GPU every batch."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen, self.started = 0, time.perf_counter()

    def add(self, loss_sum: Tensor, logits: Tensor, y: Tensor) -> None:
        """A batch (or this rank's shard of it): its summed loss, logits and labels."""
        self.loss += loss_sum.detach()
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.seen += y.numel()

    def summary(self, world: World = SINGLE) -> dict[str, float]:
        """The epoch's means (over every rank's shards), then the meter starts the next epoch."""
        if world.active:
            totals = torch.stack([self.loss.double(), self.correct.double()])
            totals = world.sum(torch.cat([totals, totals.new_tensor([self.seen])]))
            loss, correct, seen = float(totals[0]), int(totals[1]), int(totals[2])
        else:
            loss, correct, seen = float(self.loss), int(self.correct), self.seen
        out = {"train_loss": loss / seen, "train_accuracy": correct / seen}
        self.loss.zero_()
        self.correct.zero_()
        self.seen = 0
        return out

    def seconds(self) -> float:
        """Seconds since the epoch started; restarts the clock."""
        now = time.perf_counter()
        elapsed, self.started = now - self.started, now
        return elapsed


def train_segment(
    model: nn.Module,
    train: Loader,
    val: Optional[Loader],
    optimizer: torch.optim.Optimizer,
    masks: MaskState,
    segment: Segment,
    schedule: LRSchedule,
    cfg: TrainConfig,
    device: torch.device,
    events: LoopEvents,
    forward: Optional[Forward] = None,
    resume_from: Optional[int] = None,
    precision: Optional[Precision] = None,
    world: World = SINGLE,
) -> None:
    """Train `model` in place over `segment`, starting at `resume_from` if given (an iteration in
    [segment.start, segment.end) reached by a previous, interrupted call). `forward(model, x)`
    replaces `model(x)` in training and validation when given (learnt masks). `precision`
    (default: `cfg.precision` on `device`) runs the forward pass and the optimizer step. Under
    torchrun (`world`) each rank trains on its shard of every batch and the gradients are
    averaged over ranks (sparsify/distributed.py); pass `val` on rank 0 only."""
    ipe = len(train)
    amp = precision if precision is not None else Precision.for_device(cfg.precision, device)
    it = segment.start if resume_from is None else resume_from
    bar = tqdm(
        total=segment.end - segment.start,
        initial=it - segment.start,
        desc=events.title,
        unit="it",
        disable=not (cfg.progress and sys.stderr.isatty()),
        dynamic_ncols=True,
        leave=False,
    )

    def snapshots_at(it: int) -> None:
        for name, at in segment.snapshots.items():
            if at == it:
                events.snapshot(name, cpu_state(model), optimizer)

    model.train()
    masks.enforcer.mask_weights()
    params = dict(model.named_parameters())
    live = {n: params[n] for n in masks.mask}
    meter = EpochMeter(device)
    batches = _batches_from(train, it)
    while it < segment.end:
        x, y = next(batches)
        snapshots_at(it)
        if segment.mask_schedule is not None:
            change = segment.mask_schedule(it, live, masks.mask)
            if change is not None:
                masks.change(it, change)
                if change.reset_momentum:
                    optimizer.state.clear()
        lr = segment.fixed_lr if segment.fixed_lr is not None else schedule(it)
        set_lr(optimizer, lr)
        batch = y.numel()
        x, y = world.shard(x, y)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with amp.autocast():
            logits = model(x) if forward is None else forward(model, x)
            if world.active:  # the shard's share of the global batch's mean loss
                loss_sum = F.cross_entropy(
                    logits.float(), y, label_smoothing=cfg.label_smoothing, reduction="sum"
                )
                loss = loss_sum * (world.size / batch)
            else:
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                loss_sum = loss * batch
        optimizer.zero_grad(set_to_none=True)
        amp.backward(loss)
        world.average_gradients(optimizer)
        masks.enforcer.mask_grads()
        amp.step(optimizer)
        masks.enforcer.mask_weights()
        it += 1
        bar.update(1)
        meter.add(loss_sum, logits, y)
        if it % events.log_every == 0:
            logged = float(loss.detach())
            if world.active:  # the global batch's mean loss: one all-reduce per logged step
                logged = float(world.sum(loss_sum.detach().clone()) / batch)
            events.log({"event": "train", "step": it, "loss": logged, "lr": lr})
        if it % ipe == 0 or it == segment.end:  # the end of an epoch
            stats = {"event": "epoch", "epoch": (it - 1) // ipe + 1, "step": it, "lr": lr}
            stats.update(meter.summary(world))
            if val is not None:
                val_loss, val_acc = loss_and_topk(model, val, device, forward=forward)
                stats.update(val_loss=val_loss, val_accuracy=val_acc[1])
            stats["seconds"] = meter.seconds()
            events.log(stats)
            events.console(_epoch_line(events.title, stats, -(-segment.end // ipe)))
        if it % events.checkpoint_every == 0 and it < segment.end:
            events.checkpoint(it, optimizer)
    snapshots_at(segment.end)
    bar.close()


def _epoch_line(title: str, s: dict[str, Any], epochs: int) -> str:
    line = (
        f"[{title}] epoch {s['epoch']}/{epochs}  loss {s['train_loss']:.4f}  "
        f"acc {100 * s['train_accuracy']:.2f}%"
    )
    if "val_accuracy" in s:
        line += f"  val_loss {s['val_loss']:.4f}  val_acc {100 * s['val_accuracy']:.2f}%"
    return line + f"  lr {s['lr']:.4g}  {s['seconds']:.1f}s"
