"""The training loop of one level: iterations [start, end) of the schedule, mask enforced.

Plain code top to bottom. Position in the data is a pure function of the iteration
(epoch = it // iterations_per_epoch, batch = it % iterations_per_epoch), so a level can start at a
rewind point or resume from a checkpoint anywhere and see the batches an uninterrupted run would.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from sparsify.config import TrainConfig
from sparsify.data.base import DataBundle
from sparsify.evaluate.base import loss_and_topk
from sparsify.sparsity.enforce import MaskEnforcer
from sparsify.sparsity.mask import Mask
from sparsify.training.optim import LRSchedule, set_lr


@dataclass
class MaskChange:
    """A new mask to enforce from this iteration on (gradual pruning, AC/DC phases)."""

    mask: Mask
    reset_momentum: bool = False  # clear the optimizer's state (AC/DC, when weights come back)


# (iteration, live prunable weights, current mask) -> a change at this iteration, or None
MaskSchedule = Callable[[int, dict[str, torch.Tensor], Mask], Optional[MaskChange]]


@dataclass
class Segment:
    """What a level trains: schedule iterations [start, end)."""

    start: int
    end: int
    fixed_lr: Optional[float] = None  # a constant lr (fine-tuning) instead of the schedule's
    snapshots: dict[str, int] = field(default_factory=dict)  # name -> iteration to save weights at
    # Consulted before every step; must be cheap when nothing changes (a set lookup).
    mask_schedule: Optional[MaskSchedule] = None
    # (model, x) -> logits, in place of model(x): supermasks substitute masked weights
    forward: Optional[Callable[[nn.Module, torch.Tensor], torch.Tensor]] = None


@dataclass
class Hooks:
    """Callbacks into the run: logging, checkpoints and weight snapshots."""

    log: Callable[[dict[str, Any]], None]  # one event (train step, epoch summary)
    checkpoint: Callable[[int, torch.optim.Optimizer], None]  # (iterations done, optimizer)
    snapshot: Callable[[str, dict[str, torch.Tensor]], None]  # (name, state_dict)
    # (iteration, change) -> the enforcer of the new mask; the run also records and logs it
    change_mask: Callable[[int, MaskChange], MaskEnforcer]
    mask: Callable[[], Mask]  # the mask in force
    prunable: list[str]  # names of the prunable weights
    checkpoint_every: int  # iterations
    log_every: int  # iterations between train-step events
    title: str  # e.g. "level 2/9"


def _autocast(device: torch.device, bf16: bool):
    enabled = bf16 and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def train_segment(
    model: nn.Module,
    data: DataBundle,
    optimizer: torch.optim.Optimizer,
    enforcer: MaskEnforcer,
    segment: Segment,
    schedule: LRSchedule,
    cfg: TrainConfig,
    device: torch.device,
    hooks: Hooks,
    resume_from: Optional[int] = None,
) -> None:
    """Train `model` in place over `segment`, starting at `resume_from` if given (an iteration in
    [segment.start, segment.end) reached by a previous, interrupted call)."""
    ipe = len(data.train)
    it = segment.start if resume_from is None else resume_from
    show_bar = cfg.progress and sys.stderr.isatty()
    bar = tqdm(
        total=segment.end - segment.start,
        initial=it - segment.start,
        desc=hooks.title,
        unit="it",
        disable=not show_bar,
        dynamic_ncols=True,
        leave=False,
    )
    say = tqdm.write if show_bar else print
    model.train()
    enforcer.mask_weights()
    params = dict(model.named_parameters())
    live = {n: params[n] for n in hooks.prunable}
    epoch_loss = torch.zeros((), device=device)
    epoch_correct = torch.zeros((), device=device, dtype=torch.long)
    epoch_seen, epoch_start = 0, time.perf_counter()
    while it < segment.end:
        epoch, first = divmod(it, ipe)
        for x, y in data.train.batches(epoch, start=first):
            for name, at in segment.snapshots.items():
                if at == it:
                    hooks.snapshot(
                        name, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                    )
            if segment.mask_schedule is not None:
                change = segment.mask_schedule(it, live, hooks.mask())
                if change is not None:
                    enforcer = hooks.change_mask(it, change)
                    if change.reset_momentum:
                        optimizer.state.clear()
            lr = segment.fixed_lr if segment.fixed_lr is not None else schedule(it)
            set_lr(optimizer, lr)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with _autocast(device, cfg.bf16):
                logits = model(x) if segment.forward is None else segment.forward(model, x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            enforcer.mask_grads()
            optimizer.step()
            enforcer.mask_weights()
            it += 1
            bar.update(1)
            # Accumulate on the device; a .item() per step would synchronise a GPU every batch.
            epoch_loss += loss.detach() * y.numel()
            epoch_correct += (logits.detach().argmax(1) == y).sum()
            epoch_seen += y.numel()
            if it % hooks.log_every == 0:
                hooks.log({"event": "train", "step": it, "loss": float(loss.detach()), "lr": lr})
            epoch_end = it % ipe == 0 or it == segment.end
            if epoch_end:
                stats = {
                    "event": "epoch",
                    "epoch": (it - 1) // ipe + 1,
                    "step": it,
                    "lr": lr,
                    "train_loss": float(epoch_loss) / epoch_seen,
                    "train_accuracy": int(epoch_correct) / epoch_seen,
                }
                if data.val is not None:
                    val_loss, val_acc = loss_and_topk(
                        model, data.val, device, forward=segment.forward
                    )
                    stats.update(val_loss=val_loss, val_accuracy=val_acc[1])
                stats["seconds"] = time.perf_counter() - epoch_start
                hooks.log(stats)
                say(_epoch_line(hooks.title, stats, -(-segment.end // ipe)))
                epoch_loss.zero_()
                epoch_correct.zero_()
                epoch_seen, epoch_start = 0, time.perf_counter()
            if it % hooks.checkpoint_every == 0 and it < segment.end:
                hooks.checkpoint(it, optimizer)
            if it == segment.end:
                break
    for name, at in segment.snapshots.items():
        if at == segment.end:
            hooks.snapshot(
                name, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            )
    bar.close()


def _epoch_line(title: str, s: dict[str, Any], epochs: int) -> str:
    line = (
        f"[{title}] epoch {s['epoch']}/{epochs}  loss {s['train_loss']:.4f}  "
        f"acc {100 * s['train_accuracy']:.2f}%"
    )
    if "val_accuracy" in s:
        line += f"  val_loss {s['val_loss']:.4f}  val_acc {100 * s['val_accuracy']:.2f}%"
    return line + f"  lr {s['lr']:.4g}  {s['seconds']:.1f}s"
