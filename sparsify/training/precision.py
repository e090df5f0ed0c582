"""Mixed precision of training: which autocast dtype the forward pass runs in, and for fp16 the
dynamic loss scaler that keeps small gradients from underflowing.

- `bf16` (the default): bf16 autocast; bf16 has fp32's range, so no loss scaling.
- `fp16`: fp16 autocast with torch's GradScaler at its defaults (scale 2¹⁶, halved on an inf or
  NaN gradient, which skips that step; doubled after 2,000 clean steps), as IST-DASLab/ACDC's
  `--fp16` trains (`policies/trainers.py`, `torch.cuda.amp.GradScaler()`). The scaler's state
  is saved in every checkpoint so a resumed run scales as an uninterrupted one.
- `fp32`: no autocast.

Autocast applies on CUDA; on the CPU training is fp32 whatever the setting (CPU autocast is
slower than fp32 there). The loss is always computed in fp32 from the logits.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Optional

import torch
from torch import Tensor

PRECISIONS = ("bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
SCALER_KEY = "grad_scaler"  # the scaler's state in a checkpoint's extra entries


class Precision:
    """Autocast and (fp16) loss scaling for one level's training steps on `device_type`.
    `enabled` false is fp32 (the CPU, or `fp32`)."""

    def __init__(self, precision: str, device_type: str, enabled: bool = True) -> None:
        assert precision in PRECISIONS, precision
        self.device_type = device_type
        self.enabled = enabled and precision != "fp32"
        self.dtype = _DTYPES.get(precision, torch.float32)
        self.scaler: Optional[torch.amp.GradScaler] = None
        if self.enabled and precision == "fp16":
            self.scaler = torch.amp.GradScaler(device_type)

    @classmethod
    def for_device(cls, precision: str, device: torch.device) -> Precision:
        return cls(precision, device.type, enabled=device.type == "cuda")

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)

    def backward(self, loss: Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step() on the (unscaled) gradients; with a scaler, skipped when they hold an
        inf or NaN, and the scale updated."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else {SCALER_KEY: self.scaler.state_dict()}

    def load_state_dict(self, extra: dict[str, Any]) -> None:
        if self.scaler is not None and SCALER_KEY in extra:
            self.scaler.load_state_dict(extra[SCALER_KEY])
