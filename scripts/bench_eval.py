"""The evaluation's speed, measured in one run, two ratios:

1. sparsify's batched corruptions against the reference implementation (`imagecorruptions`, the
   maintained fork, one image at a time, as it works) on the same 32x32 RGB images, every
   corruption at `--severity` with the same (ImageNet-C) constants, each side timed in its own
   loop (best of `--reps`); target: total >= 20x. The same with the two interleaved is printed
   beside it.
2. the embedded default run (`python -m sparsify`) with its default evaluation against the same
   run with `eval=accuracy`, each from an empty folder in a subprocess; target: <= 1.30.

Both run with glibc's malloc set as `python -m sparsify` and `python -m sparsify.evaluate` set it
(sparsify/allocator.py: freed memory is reused, not faulted back in); SPARSIFY_MALLOC=system
measures with glibc's own behaviour.

    python scripts/bench_eval.py                 # both
    python scripts/bench_eval.py --skip-run      # corruptions only
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sparsify.allocator import keep_freed_memory


def _images(n: int) -> np.ndarray:
    """n smooth 32x32 RGB uint8 images (upsampled digits, tinted), N x H x W x 3."""
    from sklearn.datasets import load_digits

    digits = torch.tensor(load_digits().images[:n] / 16.0, dtype=torch.float32)[:, None]
    big = torch.nn.functional.interpolate(digits, size=32, mode="bilinear", align_corners=False)
    tint = torch.rand(n, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    rgb = (0.2 + 0.8 * big * tint).clamp(0, 1)
    return (rgb.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)


def _best(fn, reps: int) -> float:
    """The fastest of `reps` consecutive calls of fn(), in seconds."""
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_corruptions(n: int, severity: int, reps: int) -> float:
    """Per corruption: ours on the batch, `reps` calls in a row, then the reference on every
    image, `reps` passes in a row; best of each (each side in its own steady state, as timeit
    measures). Returns the ratio of the totals. Also prints the ratio with the two sides
    interleaved call by call (ours, then the reference, repeated), where our first touches of
    freshly allocated memory show as page faults."""
    import warnings

    from imagecorruptions import corrupt as reference

    from sparsify.corruptions import ORDER, corrupt

    imgs = _images(n)
    batch = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()

    def ours(name):
        return lambda: corrupt(
            batch, name, severity, torch.Generator().manual_seed(0), "imagenet", 32
        )

    def ref(name):
        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for img in imgs:
                    reference(img, corruption_name=name, severity=severity)

        return run

    totals = {"ours": 0.0, "ref": 0.0, "ours_mixed": 0.0, "ref_mixed": 0.0}
    print(f"{n} images 32x32x3, severity {severity}, best of {reps}; ms per batch of {n}")
    print(f"{'corruption':<20}{'ours':>10}{'reference':>12}{'ratio':>9}{'interleaved':>14}")
    for name in ORDER:
        corrupt(batch[:2], name, severity, torch.Generator().manual_seed(0), "imagenet", 32)
        reference(imgs[0], corruption_name=name, severity=severity)  # numba compiles once
        t_ours, t_ref = _best(ours(name), reps), _best(ref(name), reps)
        mixed_ours = mixed_ref = float("inf")
        for _ in range(reps):
            mixed_ours = min(mixed_ours, _best(ours(name), 1))
            mixed_ref = min(mixed_ref, _best(ref(name), 1))
        for key, v in zip(totals, (t_ours, t_ref, mixed_ours, mixed_ref)):
            totals[key] += v
        print(
            f"{name:<20}{1e3 * t_ours:>10.1f}{1e3 * t_ref:>12.1f}{t_ref / t_ours:>8.1f}x"
            f"{mixed_ref / mixed_ours:>13.1f}x"
        )
    ratio = totals["ref"] / totals["ours"]
    mixed = totals["ref_mixed"] / totals["ours_mixed"]
    print(
        f"{'all 19':<20}{1e3 * totals['ours']:>10.1f}{1e3 * totals['ref']:>12.1f}{ratio:>8.1f}x"
        f"{mixed:>13.1f}x"
    )
    print(f"batched corruptions / reference per image: {ratio:.1f}x (target >= 20)")
    print(
        f"interleaved (ours {1e3 * totals['ours_mixed']:.1f} ms, reference "
        f"{1e3 * totals['ref_mixed']:.1f} ms): {mixed:.1f}x"
    )
    return ratio


def _timed_run(args: list[str]) -> float:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sparsify", *args, f"hydra.run.dir={Path(d) / 'run'}"],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - t


def bench_run(reps: int) -> float:
    plain = min(_timed_run(["eval=accuracy"]) for _ in range(reps))
    full = min(_timed_run([]) for _ in range(reps))
    ratio = full / plain
    print(f"python -m sparsify: eval=accuracy {plain:.2f} s, default evaluation {full:.2f} s")
    print(f"default evaluation / accuracy only: {ratio:.3f} (target <= 1.30)")
    return ratio


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--severity", type=int, default=3)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--skip-run", action="store_true", help="only the corruption benchmark")
    args = p.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    allocator = keep_freed_memory()  # as python -m sparsify and sparsify.evaluate run
    print(f"allocator: {allocator} (SPARSIFY_MALLOC=system for glibc's own behaviour)")
    bench_corruptions(args.images, args.severity, args.reps)
    if not args.skip_run:
        bench_run(2)


if __name__ == "__main__":
    main()
