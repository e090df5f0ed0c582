"""Shared test setup. TRITON_INTERPRET must be set before triton is imported anywhere, so Triton
kernels run on the CPU through the interpreter."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_CODE", "true")
