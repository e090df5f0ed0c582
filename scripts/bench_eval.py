"""The evaluation's speed, measured in one run, two ratios:

1. sparsify's batched corruptions against the reference implementation (`imagecorruptions`, the
   maintained fork, one image at a time, as it works) on the same 32x32 RGB images, every
   corruption at `--severity` with the same (ImageNet-C) constants; target: total >= 20x.
2. the embedded default run (`python -m sparsify`) with its default evaluation against the same
   run with `eval=accuracy`, each from an empty folder in a subprocess; target: <= 1.30.

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


def _images(n: int) -> np.ndarray:
    """n smooth 32x32 RGB uint8 images (upsampled digits, tinted), N x H x W x 3."""
    from sklearn.datasets import load_digits

    digits = torch.tensor(load_digits().images[:n] / 16.0, dtype=torch.float32)[:, None]
    big = torch.nn.functional.interpolate(digits, size=32, mode="bilinear", align_corners=False)
    tint = torch.rand(n, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    rgb = (0.2 + 0.8 * big * tint).clamp(0, 1)
    return (rgb.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)


def bench_corruptions(n: int, severity: int, reps: int) -> float:
    import warnings

    from imagecorruptions import corrupt as reference

    from sparsify.corruptions import ORDER, corrupt

    imgs = _images(n)
    batch = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()
    total_ours = total_ref = 0.0
    print(f"{n} images 32x32x3, severity {severity}, best of {reps}; ms per batch of {n}")
    print(f"{'corruption':<20}{'ours':>10}{'reference':>12}{'ratio':>9}")
    for name in ORDER:
        g = torch.Generator().manual_seed(0)
        corrupt(batch[:2], name, severity, g, "imagenet", reference_side=32)  # warm-up
        reference(imgs[0], corruption_name=name, severity=severity)  # numba compiles once
        ours = ref = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            corrupt(batch, name, severity, torch.Generator().manual_seed(0), "imagenet", 32)
            ours = min(ours, time.perf_counter() - t)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                for img in imgs:
                    reference(img, corruption_name=name, severity=severity)
                ref = min(ref, time.perf_counter() - t)
        total_ours += ours
        total_ref += ref
        print(f"{name:<20}{1e3 * ours:>10.1f}{1e3 * ref:>12.1f}{ref / ours:>8.1f}x")
    ratio = total_ref / total_ours
    print(f"{'all 19':<20}{1e3 * total_ours:>10.1f}{1e3 * total_ref:>12.1f}{ratio:>8.1f}x")
    print(f"batched corruptions / reference per image: {ratio:.1f}x (target >= 20)")
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
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--skip-run", action="store_true", help="only the corruption benchmark")
    args = p.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    bench_corruptions(args.images, args.severity, args.reps)
    if not args.skip_run:
        bench_run(max(1, args.reps - 1))


if __name__ == "__main__":
    main()
