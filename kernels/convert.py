"""`convert(model)`: the same model with its eligible layers running on sparsify's kernels.

Which kernel a layer gets follows from its weight:

- a conv or linear whose zeros come in whole B×B blocks (at most `bsr_max_density` of its blocks
  hold a nonzero) runs on the block-sparse kernel (`bsr`): the empty blocks cost nothing;
- otherwise one that is very sparse (at most `csr_max_density` of its weights nonzero) runs on
  the unstructured kernel (`csr`);
- otherwise a 3×3, stride-1, dilation-1, ungrouped conv runs on Winograd F(2×2,3×3) (or the
  `tile` given);
- every other layer stays on torch.

`mode` narrows the choice: `winograd` converts only the Winograd-eligible convs (dense), `sparse`
only pruned layers (any layer with a zero weight: bsr when some block is empty, csr otherwise),
`auto` applies the rule above.

Where the layer runs decides how the choice is confirmed. On a CUDA GPU, `auto` times the kernel
and the torch layer on the first input of each shape and dtype and keeps the faster, so a
converted model is never slower than torch layer by layer (the measurement is a few dozen calls
per layer, once; `measure=False` turns it off, and every converted layer then runs its kernel). On the CPU the kernels run only through Triton's interpreter
(TRITON_INTERPRET=1, for tests): there the rule alone decides, and without the interpreter
nothing is converted, since no kernel could run.

Convert a model after moving it to its device, dtype and memory format: the packed weights are
built from the weights as they are then and do not follow a later `.to()`; an input of another
dtype or device runs on the torch layer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ._rules import interpreting
from .pack import PackedWeight, pack
from .sparse_conv import sparse_conv2d
from .sparse_linear import sparse_linear
from .winograd import winograd_conv2d, winograd_filter

MODES = ("auto", "winograd", "sparse")
KINDS = ("winograd", "bsr", "csr")


def block_density(weight: Tensor, block: int) -> float:
    """Fraction of the B×B blocks of the (K, rest) weight matrix holding any nonzero."""
    w = weight.detach().reshape(weight.shape[0], -1) != 0
    k, c = w.shape
    kb, cb = -(-k // block), -(-c // block)
    padded = torch.zeros(kb * block, cb * block, dtype=torch.bool, device=w.device)
    padded[:k, :c] = w
    return float(padded.view(kb, block, cb, block).any(dim=(1, 3)).float().mean())


def winograd_eligible(layer: nn.Module) -> bool:
    """A 3×3, stride-1, dilation-1, ungrouped Conv2d with zero padding (any amount)."""
    return (
        type(layer) is nn.Conv2d
        and layer.kernel_size == (3, 3)
        and layer.stride == (1, 1)
        and layer.dilation == (1, 1)
        and layer.groups == 1
        and layer.padding_mode == "zeros"
        and isinstance(layer.padding, tuple)
    )


def sparse_eligible(layer: nn.Module) -> bool:
    """A Linear, or an ungrouped Conv2d with zero padding given as numbers."""
    if type(layer) is nn.Linear:
        return True
    return (
        type(layer) is nn.Conv2d
        and layer.groups == 1
        and layer.padding_mode == "zeros"
        and isinstance(layer.padding, tuple)
    )


def choose_kind(
    layer: nn.Module,
    mode: str,
    block: int,
    bsr_max_density: float,
    csr_max_density: float,
) -> str | None:
    """The kernel `layer` should run on under `mode` (one of KINDS), or None for torch."""
    if mode in ("auto", "sparse") and sparse_eligible(layer):
        w = layer.weight.detach()
        density = float((w != 0).float().mean())
        blocks = block_density(w, block)
        if mode == "sparse" and density < 1.0:
            return "bsr" if blocks < 1.0 else "csr"
        if mode == "auto" and blocks <= bsr_max_density:
            return "bsr"
        if mode == "auto" and density <= csr_max_density:
            return "csr"
    if mode in ("auto", "winograd") and winograd_eligible(layer):
        return "winograd"
    return None


class KernelLayer(nn.Module):
    """A layer run on a sparsify kernel, with the torch layer it replaces kept beside it.

    `measure`: on the first input of each (shape, dtype, memory format) both are timed (CUDA
    events) and the faster is used from then on; `choices` records the outcome per input
    signature. An input of another dtype or device than the layer's weight goes to the torch
    layer.
    """

    def __init__(self, torch_layer: nn.Module, kind: str, block: int, tile: int, measure: bool):
        super().__init__()
        assert kind in KINDS
        self.torch_layer, self.kind, self.measure = torch_layer, kind, measure
        self.choices: dict[tuple, str] = {}
        w = torch_layer.weight.detach()
        self.packed: PackedWeight | None = None
        if kind != "winograd":
            self.packed = pack(w, layout=kind, block=block if kind == "bsr" else 32)
        self.tile = tile
        self._filter: Tensor | None = None  # winograd: U = G g G^T, see _winograd_filter
        self._filter_key: tuple | None = None

    def _winograd_filter(self, dtype: torch.dtype) -> Tensor:
        """The transformed filter, computed once per dtype, device and weight version (an
        in-place change of the weight is picked up)."""
        w = self.torch_layer.weight
        key = (dtype, w.device, w.data_ptr(), w._version)
        if self._filter_key != key:
            self._filter, self._filter_key = winograd_filter(w.detach(), self.tile, dtype), key
        return self._filter

    def extra_repr(self) -> str:
        return f"kind={self.kind}, measure={self.measure}"

    def run_kernel(self, x: Tensor) -> Tensor:
        layer = self.torch_layer
        bias = None if layer.bias is None else layer.bias.detach()
        if self.kind == "winograd":
            u = self._winograd_filter(x.dtype)
            weight = layer.weight.detach()
            return winograd_conv2d(x, weight, bias, layer.padding, self.tile, transformed=u)
        assert self.packed is not None
        if isinstance(layer, nn.Linear):
            return sparse_linear(x, self.packed, bias)
        return sparse_conv2d(x, self.packed, bias, layer.stride, layer.padding, layer.dilation)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        weight = self.packed if self.packed is not None else self.torch_layer.weight
        if x.dtype != weight.dtype or x.device != weight.device:
            # the kernels take the one dtype and device their weight has (a packed weight keeps
            # those it was converted in); anything else, e.g. bf16 activations under autocast,
            # runs on the torch layer, which accepts or refuses it as it always would
            return self.torch_layer(x)
        if not self.measure:
            return self.run_kernel(x)
        key = (tuple(x.shape), x.dtype, x.is_contiguous(memory_format=torch.channels_last))
        choice = self.choices.get(key)
        if choice is None:
            ours = cuda_time(lambda: self.run_kernel(x))
            theirs = cuda_time(lambda: self.torch_layer(x))
            choice = self.choices[key] = self.kind if ours < theirs else "torch"
        return self.run_kernel(x) if choice != "torch" else self.torch_layer(x)


def cuda_time(fn: Callable[[], object], warmup: int = 3, reps: int = 10) -> float:
    """Median milliseconds of `fn` on the current CUDA stream (CUDA events)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def convert(
    model: nn.Module,
    mode: str = "auto",
    *,
    block: int = 32,
    tile: int = 2,
    bsr_max_density: float = 0.5,
    csr_max_density: float = 0.1,
    inplace: bool = False,
    measure: bool | None = None,
) -> nn.Module:
    """`model` with its eligible Conv2d and Linear layers replaced by KernelLayers (a deep copy
    unless `inplace`); same outputs within the kernels' tolerances (docs/kernels.md).

    mode: auto (see the module docstring), winograd or sparse. block: the bsr block side (16, 32,
    64 or 128). tile: the Winograd output tile (2 or 4). The densities are fractions in [0, 1].
    measure: whether each converted layer times itself against torch on its first input and
    keeps the faster; None means yes on CUDA in mode auto. Pass False to run every converted
    layer on its kernel (what `backend=triton` evaluates).
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not valid; choose one of: {', '.join(MODES)}")
    if tile not in (2, 4):
        raise ValueError(f"tile={tile} is not valid; Winograd tiles: 2 (F(2x2,3x3)), 4")
    for name, value in (("bsr_max_density", bsr_max_density), ("csr_max_density", csr_max_density)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value} must be a fraction in [0, 1]")
    if not inplace:
        model = copy.deepcopy(model)
    first = next(iter(model.parameters()), None)
    on_cuda = first is not None and first.is_cuda
    if not on_cuda and not interpreting():
        return model  # no kernel can run: CPU without Triton's interpreter
    if measure is None:
        measure = on_cuda and mode == "auto"

    def converted(layer: nn.Module) -> nn.Module | None:
        kind = choose_kind(layer, mode, block, bsr_max_density, csr_max_density)
        return None if kind is None else KernelLayer(layer, kind, block, tile, measure)

    top = converted(model)  # a model that is one layer
    if top is not None:
        return top
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            layer = converted(child)
            if layer is not None:
                setattr(parent, child_name, layer)
    return model


def kernel_layers(model: nn.Module) -> dict[str, str]:
    """{layer name: kernel kind} of the converted layers of `model` ('' for a converted model
    that is a single layer)."""
    return {n: m.kind for n, m in model.named_modules() if isinstance(m, KernelLayer)}


def kept_on_torch(model: nn.Module) -> list[str]:
    """Converted layers that measured slower than torch on some input and run torch there."""
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, KernelLayer) and "torch" in m.choices.values()
    ]
