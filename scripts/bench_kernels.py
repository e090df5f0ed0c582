"""sparsify's kernels against torch, measured side by side in one run (docs/kernels.md).

For the 3×3 convolutions of VGG-16 and ResNet-50 (224×224 inputs) and the large linear layers of
VGG-16, at batch 1, 8 and 64:

- torch: cuDNN with `cudnn.benchmark` on and channels-last tensors (convs), cuBLAS (linears);
- Winograd F(2×2,3×3) and F(4×4,3×3) on the stride-1 convs;
- block-sparse (bsr, B×B blocks zeroed at random) and unstructured (csr) weights at sparsities
  0.5 to 0.99, on every conv and linear;
- a ResNet-50 with 90% of its B×B weight blocks pruned by magnitude, through `convert`, against
  the same weights on torch.

Each row gives the time (median of CUDA-event timings), the effective TFLOP/s (direct-convolution
FLOPs, 2·N·K·C·R·S·P·Q, divided by the time, whatever the algorithm), the percent of the device's
dense tensor-core peak, the speed-up over torch (torch time / ours, > 1 is faster) and the error
against a float64 reference (max |ours − ref| / max |ref|; torch's own error beside it).

    python scripts/bench_kernels.py                       # GPU: all shapes, bf16
    python scripts/bench_kernels.py --dtype float16 --docs docs/performance.md
    python scripts/bench_kernels.py --smoke               # CPU: tiny shapes, Triton interpreter

--smoke sets TRITON_INTERPRET=1 and runs a few tiny shapes on the CPU: it checks that the whole
script works (CI runs it); its times mean nothing. Results go to --out (JSON); --docs PATH also
writes the markdown table into PATH between the bench_kernels markers.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

if "--smoke" in sys.argv:  # before triton is imported anywhere
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_kernels_report import check_docs, markdown, write_docs  # noqa: E402

from sparsify.io import save_json  # noqa: E402

# (name, C, K, H=W, stride) of the distinct 3×3 convolutions at 224×224 input
VGG16 = [
    ("vgg16.conv1_2", 64, 64, 224, 1),
    ("vgg16.conv2_2", 128, 128, 112, 1),
    ("vgg16.conv3_2", 256, 256, 56, 1),
    ("vgg16.conv4_1", 256, 512, 28, 1),
    ("vgg16.conv4_2", 512, 512, 28, 1),
    ("vgg16.conv5_2", 512, 512, 14, 1),
]
RESNET50 = [
    ("resnet50.layer1", 64, 64, 56, 1),
    ("resnet50.layer2", 128, 128, 28, 1),
    ("resnet50.layer2.0", 128, 128, 56, 2),
    ("resnet50.layer3", 256, 256, 14, 1),
    ("resnet50.layer3.0", 256, 256, 28, 2),
    ("resnet50.layer4", 512, 512, 7, 1),
]
LINEARS = [("vgg16.fc6", 25088, 4096), ("vgg16.fc7", 4096, 4096), ("resnet50.fc", 2048, 1000)]
SMOKE_CONVS = [("tiny.a", 16, 32, 6, 1), ("tiny.b", 20, 17, 5, 2)]
SMOKE_LINEARS = [("tiny.fc", 48, 40)]

# Dense tensor-core peak TFLOP/s in fp16/bf16 (datasheets; REFERENCES.md), and CUDA-core fp32.
PEAKS = {"H200": (989.0, 67.0), "H100": (989.0, 67.0), "A100": (312.0, 19.5)}


def peak_tflops(dtype: torch.dtype) -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, (tensor, fp32) in PEAKS.items():
        if key in name:
            return fp32 if dtype == torch.float32 else tensor
    return None


def timer(device: torch.device, reps: int):
    """Milliseconds per call: CUDA events on a GPU, a wall clock on the CPU (smoke only)."""
    if device.type == "cuda":
        from sparsify.kernels.convert import cuda_time

        return lambda fn: cuda_time(fn, warmup=3, reps=reps)

    def wall(fn) -> float:
        fn()
        t = time.perf_counter()
        fn()
        return 1000 * (time.perf_counter() - t)

    return wall


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def block_mask(shape: tuple[int, ...], sparsity: float, block: int, gen: torch.Generator):
    """A mask zeroing `sparsity` of the B×B blocks of the (K, rest) matrix, chosen at random,
    tiled as block pruning tiles them (sparsify.sparsity.granularity.expand_blocks)."""
    from sparsify.sparsity.granularity import expand_blocks

    k, rest = shape[0], int(torch.tensor(shape[1:]).prod())
    n_blocks = -(-k // block) * -(-rest // block)
    keep = torch.rand(n_blocks, generator=gen).argsort()[: max(1, round((1 - sparsity) * n_blocks))]
    blocks = torch.zeros(n_blocks, dtype=torch.bool)
    blocks[keep] = True
    return expand_blocks(blocks, torch.Size(shape), block)


def random_mask(shape: tuple[int, ...], sparsity: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=gen) >= sparsity


def bench_layer(layer, batch, args, device, dtype, ms) -> list[dict]:
    """Rows for one conv (name, C, K, H, stride) or linear (name, C, K) at one batch size."""
    from sparsify.kernels import pack, sparse_conv2d, sparse_linear, winograd_conv2d

    gen = torch.Generator().manual_seed(0)
    conv = len(layer) == 5
    if conv:
        name, c, k, h, stride = layer
        shape = (k, c, 3, 3)
        x = torch.randn(batch, c, h, h, generator=gen).to(device, dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        p = (h + 2 - 3) // stride + 1
        flops = 2 * batch * k * c * 9 * p * p
    else:
        name, c, k = layer
        shape = (k, c)
        x = torch.randn(batch, c, generator=gen).to(device, dtype)
        flops = 2 * batch * k * c
    w = (torch.randn(shape, generator=gen) / c**0.5).to(device, dtype)

    def reference(weight):
        if conv:
            return F.conv2d(x.double(), weight.double(), None, stride, 1)
        return F.linear(x.double(), weight.double())

    def torch_op(weight):
        return (
            (lambda: F.conv2d(x, weight, None, stride, 1))
            if conv
            else (lambda: F.linear(x, weight))
        )

    peak = peak_tflops(dtype)
    rows = []

    def row(kind, sparsity, fn, weight, t_torch, err_torch):
        t = ms(fn)
        tflops = flops / (t * 1e-3) / 1e12
        rows.append(
            {
                "layer": name,
                "shape": list(shape) + ([h, stride] if conv else []),
                "batch": batch,
                "kind": kind,
                "sparsity": sparsity,
                "ms": t,
                "tflops": tflops,
                "peak_percent": None if peak is None else 100 * tflops / peak,
                "torch_ms": t_torch,
                "speedup": t_torch / t,
                "error": rel_error(fn(), reference(weight)),
                "torch_error": err_torch,
            }
        )

    dense_ref = reference(w)
    t_dense = ms(torch_op(w))
    err_dense = rel_error(torch_op(w)(), dense_ref)
    rows.append(
        {
            "layer": name,
            "shape": list(shape) + ([h, stride] if conv else []),
            "batch": batch,
            "kind": "torch",
            "sparsity": 0.0,
            "ms": t_dense,
            "tflops": flops / (t_dense * 1e-3) / 1e12,
            "peak_percent": None if peak is None else 100 * flops / (t_dense * 1e-3) / 1e12 / peak,
            "torch_ms": t_dense,
            "speedup": 1.0,
            "error": err_dense,
            "torch_error": err_dense,
        }
    )
    if conv and stride == 1:
        for tile in args.tiles:
            row(
                f"winograd F({tile}x{tile})",
                0.0,
                lambda t=tile: winograd_conv2d(x, w, None, 1, t),
                w,
                t_dense,
                err_dense,
            )
    for sparsity in args.sparsities:
        for pattern in ("block", "unstructured"):
            mask = (
                block_mask(shape, sparsity, args.block, gen)
                if pattern == "block"
                else random_mask(shape, sparsity, gen)
            ).to(device)
            wm = w * mask
            # torch runs the masked weight densely: the time a masked model costs without kernels
            t_torch, err_torch = ms(torch_op(wm)), rel_error(torch_op(wm)(), reference(wm))
            layout = "bsr" if pattern == "block" else "csr"
            packed = pack(w, mask, layout=layout, block=args.block)
            if conv:
                fn = lambda pk=packed: sparse_conv2d(x, pk, None, stride, 1)  # noqa: E731
            else:
                fn = lambda pk=packed: sparse_linear(x, pk)  # noqa: E731
            row(f"{layout} ({pattern})", sparsity, fn, wm, t_torch, err_torch)
    return rows


def bench_model(args, device, dtype, ms) -> dict:
    """A model with `args.model_sparsity` of the B×B weight blocks of every layer pruned by
    magnitude (layerwise: global allocation by block RMS empties whole small layers),
    through `convert`, against the same weights on torch (channels-last, cudnn.benchmark)."""
    import copy

    from sparsify.kernels import convert, kept_on_torch, kernel_layers

    from sparsify.config import ModelConfig
    from sparsify.models import build_model
    from sparsify.sparsity import Mask, prunable_weights, prune_mask
    from sparsify.sparsity.criteria import magnitude_scores

    name, classes, channels, size, batch = (
        ("conv2", 10, 3, 8, 2) if args.smoke else ("resnet50", 1000, 3, 224, args.model_batch)
    )
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name), classes, channels, size).eval()
    weights = prunable_weights(model)
    mask = prune_mask(
        magnitude_scores(weights),
        Mask.ones_like(weights),
        args.model_sparsity,
        allocation="layerwise",
        granularity="block",
        block=args.block,
    )
    mask.apply_(model)
    x = torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(x.double()).to(device)
        x = x.to(device, dtype).contiguous(memory_format=torch.channels_last)
        dense = copy.deepcopy(model).to(device, dtype).to(memory_format=torch.channels_last)
        ours = convert(dense, "auto", block=args.block)  # a copy, channels-last like torch's
        ours(x)  # on a GPU each converted layer times itself against torch here, once
        t_torch, t_ours = ms(lambda: dense(x)), ms(lambda: ours(x))
        err_torch, err_ours = rel_error(dense(x), ref), rel_error(ours(x), ref)
    kinds = kernel_layers(ours)
    slower = kept_on_torch(ours)
    return {
        "model": name,
        "batch": batch,
        "block_sparsity": args.model_sparsity,
        "weight_sparsity": mask.sparsity,
        "torch_ms": t_torch,
        "ms": t_ours,
        "speedup": t_torch / t_ours,
        "error": err_ours,
        "torch_error": err_torch,
        "kernels": {
            k: sum(1 for v in kinds.values() if v == k) for k in sorted(set(kinds.values()))
        },
        "kept_on_torch": slower,  # converted layers that measured slower and run torch
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--smoke", action="store_true", help="tiny shapes in the CPU interpreter")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.75, 0.9, 0.95, 0.99])
    p.add_argument("--tiles", type=int, nargs="+", default=[2, 4])
    p.add_argument("--block", type=int, default=32)
    p.add_argument("--model-sparsity", type=float, default=0.9)
    p.add_argument("--model-batch", type=int, default=64)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--out", type=Path, default=Path("bench_kernels.json"))
    p.add_argument("--docs", type=Path, help="write the markdown table into this file")
    p.add_argument(
        "--time-limit",
        type=float,
        help="seconds: start no new (layer, batch) after this; the rest is listed as not measured",
    )
    args = p.parse_args()
    if args.time_limit is not None and not args.time_limit > 0:
        raise SystemExit(f"--time-limit {args.time_limit}: give a positive number of seconds")
    if args.docs is not None:
        check_docs(args.docs)  # refuse a wrong path now, not after the measurements

    import triton

    if args.smoke:
        device, dtype = torch.device("cpu"), torch.float32  # the interpreter computes bf16 wrongly
        args.batches, args.sparsities, args.block = [2], [0.5, 0.95], 16
        convs, linears = SMOKE_CONVS, SMOKE_LINEARS
    else:
        if not torch.cuda.is_available():
            raise SystemExit("bench_kernels.py needs a CUDA GPU; --smoke runs tiny shapes on CPU")
        device, dtype = torch.device("cuda"), getattr(torch, args.dtype)
        convs, linears = VGG16 + RESNET50, LINEARS
        torch.backends.cudnn.benchmark = True
    ms = timer(device, args.reps)
    started = time.monotonic()
    result = {
        "command": "python scripts/bench_kernels.py " + " ".join(sys.argv[1:]),
        "environment": {
            "device": torch.cuda.get_device_name()
            if device.type == "cuda"
            else f"CPU ({platform.processor() or platform.machine()}), Triton interpreter",
            "torch": torch.__version__,
            "triton": triton.__version__,
            "cuda": torch.version.cuda,
            "date": datetime.date.today().isoformat(),
        },
        "dtype": str(dtype).removeprefix("torch."),
        "block": args.block,
        # end to end first: the target that needs every kernel, measured whatever the time limit
        "model": bench_model(args, device, dtype, ms),
        "layers": [],
        "not_measured": [],
    }
    print(f"model: {result['model']['speedup']:.2f}x torch", file=sys.stderr)
    for layer in [*convs, *linears]:
        for batch in args.batches:
            if args.time_limit is not None and time.monotonic() - started > args.time_limit:
                result["not_measured"].append(f"{layer[0]} batch {batch}")
                continue
            rows = bench_layer(layer, batch, args, device, dtype, ms)
            result["layers"] += rows
            best = max(rows[1:], key=lambda r: r["speedup"])
            print(
                f"{layer[0]} batch {batch}: torch {rows[0]['ms']:.4f} ms; best {best['kind']} "
                f"{best['sparsity']:.2f} {best['speedup']:.2f}x",
                file=sys.stderr,
            )
            save_json(result, args.out)  # what is measured so far survives a killed run
    save_json(result, args.out)
    table = markdown(result)
    print(table)
    if args.docs is not None:
        write_docs(args.docs, table)
    print(f"results: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
