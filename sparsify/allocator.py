"""Keep freed memory in the process instead of handing it back to the kernel (glibc only).

By default glibc's malloc serves large blocks (from 128 KiB, a threshold that grows with use up
to 32 MiB) with fresh mmap pages and returns them, and the free top of the heap, to the kernel
when they are freed. Training allocates and frees the same activation-sized tensors every step,
so each step faults its memory back in page by page: on a two-core CPU a ResNet-20 step (batch
64, 32×32) took 1,467-10,470 page faults, and a supermask step 6,758-16,464: a share of the
4-10% by which it measured slower than a plain step (docs/performance.md). With fixed mmap and
trim thresholds of 1 GiB, freed blocks stay in the heap for the next step to reuse: 0-171 page
faults per step there. The resident memory stays near the run's peak instead of shrinking
between steps, as with jemalloc or tcmalloc, the allocators PyTorch's CPU tuning guide
recommends; it can exceed the peak of live memory where freed holes in the heap do not fit
later blocks. Forked DataLoader workers inherit the setting. Allocations on other threads come
from per-thread arenas of at most 64 MiB, so larger ones there still use mmap.

`python -m sparsify` and the CPU benchmarks call `keep_freed_memory()` once at start. It does
nothing off glibc, with another allocator preloaded, when the user has set glibc's malloc
tunables or MALLOC_* variables themselves, or when SPARSIFY_MALLOC=system.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
THRESHOLD = 1 << 30  # bytes: blocks up to 1 GiB come from the heap, which keeps up to 1 GiB free
FALLBACK = 32 << 20  # the mmap threshold's ceiling in glibc's mallopt(3) documentation


def _user_choice() -> str | None:
    """Why the user's own allocator settings win, or None when there are none."""
    if os.environ.get("SPARSIFY_MALLOC", "").strip().lower() == "system":
        return "SPARSIFY_MALLOC=system"
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES sets malloc"
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"):
        if name in os.environ:
            return f"{name} is set"
    preload = os.environ.get("LD_PRELOAD", "")
    for allocator in ("jemalloc", "tcmalloc", "mimalloc"):
        if allocator in preload:
            return f"{allocator} is preloaded"
    return None


def keep_freed_memory() -> str:
    """Set glibc's mmap and trim thresholds so freed memory is reused, not returned and
    faulted back in; returns what was done, in words (for logs and benchmarks)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "unchanged: not glibc"
    reason = _user_choice()
    if reason is not None:
        return f"unchanged: {reason}"
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD)
        mmap = THRESHOLD if libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD) else 0
        if not mmap and libc.mallopt(M_MMAP_THRESHOLD, FALLBACK):  # older glibc's ceiling
            mmap = FALLBACK
    except (OSError, AttributeError):
        return "unchanged: mallopt unavailable"
    if not (trim and mmap):
        return f"partly: trim threshold {'1 GiB' if trim else 'refused'}, mmap threshold " + (
            f"{mmap >> 20} MiB" if mmap else "refused"
        )
    if mmap == THRESHOLD:
        return "kept: mmap and trim thresholds 1 GiB"
    return f"kept: trim threshold 1 GiB, mmap threshold {mmap >> 20} MiB"


def keep_freed_memory_at_start() -> None:
    """`keep_freed_memory()` for a command's start (python -m sparsify, python -m
    sparsify.evaluate): silent when done or left to the user, a warning on stderr when glibc
    refused part of it."""
    import sys

    allocator = keep_freed_memory()
    if allocator.startswith(("partly", "unchanged: mallopt")):
        print(f"sparsify: warning: glibc malloc settings {allocator}", file=sys.stderr)
