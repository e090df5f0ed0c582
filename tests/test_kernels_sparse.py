"""Packed sparse weights and the sparse linear / conv2d Triton kernels, against float64 torch.

On CPU the kernels run in Triton's interpreter (conftest sets TRITON_INTERPRET=1), so shapes are
tiny; with CUDA the same tests run on the GPU (the compiled kernels need TRITON_INTERPRET=0 in
the environment, since conftest only sets a default). bf16 is checked on the GPU only: the
interpreter computes bf16 wrongly.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from sparsify.kernels._rules import interpreting
from sparsify.kernels.pack import PackedWeight, pack
from sparsify.kernels.sparse_conv import sparse_conv2d
from sparsify.kernels.sparse_linear import sparse_linear

from sparsify.sparsity.granularity import expand_blocks

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FP = (torch.float32, torch.float16)
# (layout, block): bsr at the two common block sides, csr (block unused)
LAYOUTS = [("bsr", 16), ("bsr", 32), ("csr", 16)]
LAYOUT_IDS = ["bsr16", "bsr32", "csr"]
# unit roundoff of the output rounding; accumulation is always fp32 (2^-24)
UNIT = {torch.float32: 2.0**-24, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mask(shape: tuple[int, ...], sparsity: float, kind: str, b: int, seed: int) -> torch.Tensor:
    """A bool mask pruning about `sparsity` of the weights: single weights ("unstructured") or
    whole B×B blocks of the (K, rest) matrix, tiled as the project's block pruning tiles it."""
    g = _gen(seed)
    if kind == "unstructured":
        return torch.rand(shape, generator=g) >= sparsity
    k, rest = shape[0], torch.Size(shape).numel() // shape[0]
    nblocks = -(-k // b) * -(-rest // b)
    return expand_blocks(torch.rand(nblocks, generator=g) >= sparsity, torch.Size(shape), b)


def _violations(out, ref, mag, length: int, dtype: torch.dtype) -> int:
    """Entries of `out` beyond a rigorous error bound from the float64 `ref`.

    mag = Σ|x·w| (+|bias|) per output, in float64. Summing `length` fp32 products (fp16/bf16
    products are exact in fp32, fp32 ones round once) in any order errs by at most
    (length+1)·2^-24·mag, the bias add by one more 2^-24·mag, and rounding the result to the
    output dtype by UNIT·mag (|ref| <= mag). The factor 2 covers tensor cores that truncate
    rather than round their additions (twice the unit roundoff). So the bound grows with C·R·S,
    and for fp16 its output-rounding term is 2^13 times the fp32 one; a dropped block or
    nonzero (an error of order one |x·w|) is still far outside it.
    """
    tol = 2 * ((length + 2) * 2.0**-24 + UNIT[dtype]) * mag
    return int(((out.double().cpu() - ref).abs() > tol).sum())


def _assert_close(out, ref, mag, length: int, dtype: torch.dtype) -> None:
    assert out.dtype == dtype and out.shape == ref.shape
    bad = _violations(out, ref, mag, length, dtype)
    assert bad == 0, (
        f"{bad} entries beyond tolerance, max error {(out.double().cpu() - ref).abs().max()}"
    )


def _linear_case(k, c, lead, dtype, layout, block, sparsity, kind, bias=True, seed=0):
    """(out, ref, mag, packed, (x, dense, b)) for one sparse_linear call, ref/mag in float64."""
    g = _gen(seed)
    w = torch.randn(k, c, generator=g).to(dtype)
    m = _mask((k, c), sparsity, kind, block, seed)
    x = torch.randn(*lead, c, generator=g).to(dtype)
    b = torch.randn(k, generator=g).to(dtype) if bias else None
    packed = pack(w.to(DEVICE), m.to(DEVICE), layout, block)
    out = sparse_linear(x.to(DEVICE), packed, None if b is None else b.to(DEVICE))
    dense = torch.where(m, w, 0).double()
    bd = None if b is None else b.double()
    ref = F.linear(x.double(), dense, bd)
    mag = F.linear(x.double().abs(), dense.abs(), None if bd is None else bd.abs())
    return out, ref, mag, packed, (x, dense, bd)


@pytest.mark.parametrize("shape", [(5, 3), (33, 153), (20, 6, 3, 3), (33, 17, 3, 3)])
@pytest.mark.parametrize(("layout", "block"), LAYOUTS + [("bsr", 64)])
@pytest.mark.parametrize("kind", ["unstructured", "block"])
def test_pack_round_trip_is_exact(shape, layout, block, kind):
    g = _gen(1)
    w = torch.randn(shape, generator=g)
    m = _mask(shape, 0.6, kind, block, 1)
    packed = pack(w.to(DEVICE), m.to(DEVICE), layout, block)
    dense = packed.to_dense()
    assert dense.shape == w.shape and dense.dtype == w.dtype
    assert torch.equal(dense.cpu(), w * m)
    assert packed.nnz == int(m.sum()) and packed.density == pytest.approx(m.float().mean().item())
    assert torch.equal(packed.to("cpu").to_dense(), w * m)


@pytest.mark.parametrize("block", [16, 32])
@pytest.mark.parametrize(("kind", "sparsity"), [("block", 0.5), ("unstructured", 0.999)])
def test_bsr_table_stores_exactly_the_nonzero_blocks(block, kind, sparsity):
    w = torch.randn(70, 9, 3, 3, generator=_gen(2))  # (70, 81): edge tiles on both sides
    m = _mask(tuple(w.shape), sparsity, kind, block, 2)
    mat = (w * m).reshape(70, -1)
    alive = [
        (i // block, j // block)
        for i in range(0, 70, block)
        for j in range(0, 81, block)
        if bool(mat[i : i + block, j : j + block].any())
    ]
    packed = pack(w, m, "bsr", block)
    assert packed.stored == len(alive) < -(-70 // block) * -(-81 // block)
    rows = torch.repeat_interleave(torch.arange(packed.crow.numel() - 1), packed.crow.diff())
    assert list(zip(rows.tolist(), packed.col.tolist())) == alive  # row-major, ascending
    assert packed.values.shape == (len(alive), block, block)
    assert packed.crow.dtype == packed.col.dtype == torch.int32


@pytest.mark.parametrize(("layout", "block"), [("bsr", 16), ("bsr", 32), ("csr", 16)])
@pytest.mark.parametrize("at", [(0, 0), (15, 15), (31, 0), (0, 31), (32, 40), (36, 44)])
def test_pack_keeps_a_lone_nonzero(at, layout, block):
    """One nonzero anywhere in a tile (corners, edge tiles) keeps its tile, and the output."""
    w = torch.zeros(37, 45)
    w[at] = 3.0
    packed = pack(w.to(DEVICE), layout=layout, block=block)
    assert packed.stored == 1 and torch.equal(packed.to_dense().cpu(), w)
    x = torch.randn(2, 45, generator=_gen(10))
    assert torch.equal(sparse_linear(x.to(DEVICE), packed).cpu(), x @ w.T)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_csr_table_matches_torch_sparse_csr():
    w = torch.randn(33, 17, 3, 3, generator=_gen(3))
    m = _mask(tuple(w.shape), 0.9, "unstructured", 16, 3)
    packed = pack(w, m, "csr")
    ref = (w * m).reshape(33, -1).to_sparse_csr()
    assert packed.stored == packed.nnz == ref.values().numel()
    assert torch.equal(packed.crow.long(), ref.crow_indices())
    assert torch.equal(packed.col.long(), ref.col_indices())
    assert torch.equal(packed.values, ref.values())


@pytest.mark.parametrize("dtype", FP, ids=["fp32", "fp16"])
@pytest.mark.parametrize(("layout", "block"), LAYOUTS + [("bsr", 64)], ids=LAYOUT_IDS + ["bsr64"])
@pytest.mark.parametrize(
    ("k", "c", "lead", "sparsity", "kind"),
    [
        (5, 3, (1,), 0.0, "unstructured"),  # batch 1, K and C below one block, dense
        (33, 153, (2, 3), 0.5, "block"),  # leading dims, K and C not multiples of B
        (40, 70, (4,), 0.9, "unstructured"),
        (48, 100, (3,), 0.99, "unstructured"),
    ],
)
def test_sparse_linear_matches_float64(k, c, lead, sparsity, kind, layout, block, dtype):
    out, ref, mag, _, _ = _linear_case(k, c, lead, dtype, layout, block, sparsity, kind)
    _assert_close(out, ref, mag, c, dtype)


def _conv_case(cfg, dtype, layout, block, channels_last, bias=True, seed=0):
    """(out, ref, mag, packed) for one sparse_conv2d call; cfg as in CONV_CASES."""
    (n, c, h, w_, k, r, s), conv, sparsity, kind = cfg
    g = _gen(seed)
    w = torch.randn(k, c, r, s, generator=g).to(dtype)
    m = _mask((k, c, r, s), sparsity, kind, block, seed)
    x = torch.randn(n, c, h, w_, generator=g).to(dtype)
    b = torch.randn(k, generator=g).to(dtype) if bias else None
    xd = x.to(DEVICE)
    if channels_last:
        xd = xd.to(memory_format=torch.channels_last)
    packed = pack(w.to(DEVICE), m.to(DEVICE), layout, block)
    out = sparse_conv2d(xd, packed, None if b is None else b.to(DEVICE), **conv)
    assert out.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
    dense = torch.where(m, w, 0).double()
    bd = None if b is None else b.double()
    ref = F.conv2d(x.double(), dense, bd, **conv)
    mag = F.conv2d(x.double().abs(), dense.abs(), None if bd is None else bd.abs(), **conv)
    return out, ref, mag, packed


CONV_CASES = {
    "tiny-3x3": ((2, 3, 7, 6, 5, 3, 3), {}, 0.0, "unstructured"),
    "batch1-stride2-pad1": ((1, 17, 5, 5, 33, 3, 3), {"stride": 2, "padding": 1}, 0.5, "block"),
    "dilation2": ((2, 4, 6, 7, 16, 3, 3), {"padding": 1, "dilation": 2}, 0.9, "unstructured"),
    "1x1-stride2": ((1, 20, 4, 5, 18, 1, 1), {"stride": 2}, 0.5, "unstructured"),
    "pairs-2x3": (
        (1, 6, 6, 7, 20, 2, 3),
        {"stride": (1, 2), "padding": (0, 1), "dilation": (2, 1)},
        0.99,
        "unstructured",
    ),
}


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", FP, ids=["fp32", "fp16"])
@pytest.mark.parametrize(("layout", "block"), LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_sparse_conv2d_matches_float64(case, layout, block, dtype, channels_last):
    cfg = CONV_CASES[case]
    out, ref, mag, _ = _conv_case(cfg, dtype, layout, block, channels_last)
    c, r, s = cfg[0][1], cfg[0][5], cfg[0][6]
    _assert_close(out, ref, mag, c * r * s, dtype)


def test_strided_view_input():
    """A non-contiguous input (every other channel of a bigger tensor) is read through strides."""
    x = torch.randn(2, 8, 6, 6, generator=_gen(4))[:, ::2]
    w = torch.randn(8, 4, 3, 3, generator=_gen(5))
    out = sparse_conv2d(x.to(DEVICE), pack(w.to(DEVICE)), padding=1)
    ref = F.conv2d(x.double(), w.double(), padding=1)
    mag = F.conv2d(x.double().abs(), w.double().abs(), padding=1)
    _assert_close(out, ref, mag, 36, torch.float32)


def _drop_first(packed: PackedWeight) -> PackedWeight:
    """`packed` without its first stored entry (a block for bsr, a nonzero for csr)."""
    crow = (packed.crow - 1).clamp(min=0).to(torch.int32)
    return dataclasses.replace(packed, crow=crow, col=packed.col[1:], values=packed.values[1:])


@pytest.mark.parametrize(("layout", "block"), [("bsr", 16), ("csr", 16)], ids=["bsr", "csr"])
def test_a_missing_stored_entry_is_detected(layout, block):
    """The tolerance is tight enough to see one dropped block or nonzero."""
    out, ref, mag, packed, (x, _, b) = _linear_case(
        20, 40, (4,), torch.float32, layout, block, 0.5, "unstructured"
    )
    _assert_close(out, ref, mag, 40, torch.float32)
    broken = sparse_linear(x.to(DEVICE), _drop_first(packed), b.float().to(DEVICE))
    assert _violations(broken, ref, mag, 40, torch.float32) > 0


@pytest.mark.parametrize(("layout", "block"), [("bsr", 16), ("csr", 16)], ids=["bsr", "csr"])
def test_empty_block_row_writes_bias_only(layout, block):
    w = torch.randn(40, 3, 3, 3, generator=_gen(6))
    w[16:32] = 0  # block-row 1 of 16 rows: nothing stored
    x = torch.randn(1, 3, 5, 5, generator=_gen(7))
    b = torch.randn(40, generator=_gen(8))
    packed = pack(w.to(DEVICE), layout=layout, block=block)
    if layout == "bsr":
        assert packed.crow[1] == packed.crow[2]
    out = sparse_conv2d(x.to(DEVICE), packed, b.to(DEVICE), padding=1).cpu()
    assert torch.equal(out[:, 16:32], b[16:32].view(1, 16, 1, 1).expand(1, 16, 5, 5))
    _assert_close(out, F.conv2d(x.double(), w.double(), b.double(), padding=1),
                  F.conv2d(x.double().abs(), w.double().abs(), b.double().abs(), padding=1),
                  27, torch.float32)  # fmt: skip


@pytest.mark.parametrize(("layout", "block"), [("bsr", 16), ("csr", 16)], ids=["bsr", "csr"])
@pytest.mark.parametrize("bias", [False, True])
def test_fully_zero_weight(layout, block, bias):
    w = torch.randn(5, 3, 3, 3)
    packed = pack(w.to(DEVICE), torch.zeros_like(w, dtype=torch.bool).to(DEVICE), layout, block)
    assert packed.density == 0 and packed.stored == 0
    b = torch.randn(5, generator=_gen(9)).to(DEVICE) if bias else None
    out = sparse_conv2d(torch.randn(2, 3, 4, 4).to(DEVICE), packed, b, padding=1).cpu()
    want = b.cpu().view(1, 5, 1, 1) if bias else torch.zeros(())
    assert torch.equal(out, want.expand(2, 5, 4, 4))
    lin = pack(torch.zeros(7, 9).to(DEVICE), layout=layout, block=block)
    assert torch.equal(sparse_linear(torch.randn(3, 9).to(DEVICE), lin).cpu(), torch.zeros(3, 7))


def test_density_one_stores_every_block():
    out, ref, mag, packed, _ = _linear_case(
        33, 40, (2,), torch.float32, "bsr", 16, 0.0, "unstructured"
    )
    assert packed.density == 1.0 and packed.stored == 3 * 3
    _assert_close(out, ref, mag, 40, torch.float32)


def test_pack_rejects_bad_input():
    w = torch.randn(4, 3, 3, 3)
    with pytest.raises(ValueError, match="valid: bsr, csr"):
        pack(w, layout="coo")
    for block in (8, 24, 256, True):
        with pytest.raises(ValueError, match="power of two >= 16"):
            pack(w, block=block)
    with pytest.raises(ValueError, match="mask shape"):
        pack(w, torch.ones(4, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        pack(w, torch.ones_like(w))
    for bad in (torch.randn(4, 3, 3), torch.randn(4), torch.randn(2, 2, 2, 2, 2)):
        with pytest.raises(ValueError, match=r"\(K, C\) or conv2d \(K, C, R, S\)"):
            pack(bad)
    with pytest.raises(ValueError, match="not supported"):
        pack(torch.ones(4, 3, dtype=torch.int64))


def test_kernels_reject_bad_input(monkeypatch):
    conv = pack(torch.randn(4, 3, 3, 3).to(DEVICE))
    lin = pack(torch.randn(4, 6).to(DEVICE))
    x = torch.randn(2, 3, 5, 5).to(DEVICE)
    with pytest.raises(ValueError, match="use sparse_conv2d"):
        sparse_linear(torch.randn(2, 27).to(DEVICE), conv)
    with pytest.raises(ValueError, match="use sparse_linear"):
        sparse_conv2d(x, lin)
    with pytest.raises(ValueError, match="must end in C=6"):
        sparse_linear(torch.randn(2, 5).to(DEVICE), lin)
    with pytest.raises(ValueError, match="dtype"):
        sparse_linear(torch.randn(2, 6).half().to(DEVICE), lin)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        sparse_linear(torch.randn(2, 6).to(DEVICE), lin, torch.zeros(3).to(DEVICE))
    with pytest.raises(ValueError, match="PackedWeight"):
        sparse_linear(torch.randn(2, 6).to(DEVICE), torch.randn(4, 6))  # type: ignore[arg-type]
    for bad in (torch.randn(3, 5, 5), torch.randn(2, 4, 5, 5)):
        with pytest.raises(ValueError, match=r"must be \(N, C=3, H, W\)"):
            sparse_conv2d(bad.to(DEVICE), conv)
    with pytest.raises(ValueError, match="dtype"):
        sparse_conv2d(x.half(), conv)
    for kw, msg in [({"stride": 0}, "stride"), ({"padding": -1}, "padding"),
                    ({"dilation": (1, 2, 3)}, "dilation"), ({"padding": "same"}, "padding"),
                    ({"dilation": 3}, "no output pixel")]:  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            sparse_conv2d(x, conv, **kw)
    if DEVICE == "cpu":  # CPU tensors run only under the interpreter
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(ValueError, match="CUDA"):
            sparse_conv2d(x, conv)


@pytest.mark.parametrize(("layout", "block"), [("bsr", 16), ("csr", 16)], ids=["bsr", "csr"])
def test_a_repeated_call_reuses_its_plan_and_a_new_signature_gets_its_own(layout, block):
    """The launch plan kept in the packed weight (one per input shape, strides, dtype and bias)
    gives the same output on a repeat, and a call that differs in any of them is planned anew
    and exact; a copied or moved packed weight starts without plans."""
    g = _gen(11)
    w = torch.randn(12, 5, 3, 3, generator=g)
    m = _mask(tuple(w.shape), 0.6, "unstructured", block, 11)
    packed = pack(w.to(DEVICE), m.to(DEVICE), layout, block)
    dense = torch.where(m, w, 0).double()
    b = torch.randn(12, generator=g)
    x = torch.randn(2, 5, 6, 6, generator=g)

    def check(x, bias, **conv):
        out = sparse_conv2d(x.to(DEVICE), packed, None if bias is None else bias.to(DEVICE), **conv)
        bd = None if bias is None else bias.double()
        ref = F.conv2d(x.double(), dense, bd, **conv)
        mag = F.conv2d(x.double().abs(), dense.abs(), None if bd is None else bd.abs(), **conv)
        _assert_close(out, ref, mag, 45, torch.float32)
        return out

    first = check(x, b, padding=1)
    assert len(packed.plans) == 1
    assert torch.equal(check(x, b, padding=1), first) and len(packed.plans) == 1
    check(x[:1], b, padding=1)  # another batch
    check(x, None, padding=1)  # no bias
    check(x, b, padding=1, stride=2)  # another geometry
    check(x.to(memory_format=torch.channels_last), b, padding=1)  # other strides
    assert len(packed.plans) == 5
    assert dataclasses.replace(packed).plans == {} and packed.to(DEVICE).plans == {}

    lin = pack(w.flatten(1).to(DEVICE), m.flatten(1).to(DEVICE), layout, block)
    xs = torch.randn(3, 45, generator=g)
    for rows in (xs, xs, xs[:2], xs.t().contiguous().t()):  # a repeat, fewer rows, column-major
        out = sparse_linear(rows.to(DEVICE), lin, b.to(DEVICE))
        ref = F.linear(rows.double(), dense.flatten(1), b.double())
        mag = F.linear(rows.double().abs(), dense.flatten(1).abs(), b.double().abs())
        _assert_close(out, ref, mag, 45, torch.float32)
    assert len(lin.plans) == 3


@pytest.mark.parametrize(("layout", "block"), [("bsr", 16), ("csr", 16)], ids=["bsr", "csr"])
def test_a_strided_bias_is_read_as_its_values(layout, block):
    w = torch.randn(6, 5, generator=_gen(12))
    lin = pack(w.to(DEVICE), layout=layout, block=block)
    x = torch.randn(3, 5, generator=_gen(13))
    wide = torch.randn(12, generator=_gen(14))
    out = sparse_linear(x.to(DEVICE), lin, wide.to(DEVICE)[::2]).cpu()
    ref = F.linear(x.double(), w.double(), wide[::2].double())
    mag = F.linear(x.double().abs(), w.double().abs(), wide[::2].double().abs())
    _assert_close(out, ref, mag, 5, torch.float32)


def test_plans_are_bounded_and_a_cached_call_still_checks_the_device(monkeypatch):
    from sparsify.kernels import _sparse_gemm

    monkeypatch.setattr(_sparse_gemm, "MAX_PLANS", 3)
    lin = pack(torch.randn(4, 6).to(DEVICE))
    for n in range(1, 7):
        sparse_linear(torch.randn(n, 6).to(DEVICE), lin)
        assert len(lin.plans) == min(n, 3)
    assert sorted(key[0][0] for key in lin.plans) == [4, 5, 6]  # the oldest went first
    if DEVICE == "cpu":  # a plan made under the interpreter must not let a CPU tensor through
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(ValueError, match="CUDA"):
            sparse_linear(torch.randn(6, 6), lin)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.skipif(interpreting(), reason="bf16 and big tiles need TRITON_INTERPRET=0")
@pytest.mark.parametrize(("layout", "block"), [("bsr", 32), ("bsr", 64), ("bsr", 128), ("csr", 16)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("kind", ["block", "unstructured"])
def test_gpu_conv_all_dtypes_and_blocks(layout, block, dtype, kind):
    """Compiled kernels at realistic sizes: every block side, bf16, both memory formats."""
    cfg = ((8, 64, 28, 28, 200, 3, 3), {"padding": 1, "stride": 2}, 0.9, kind)
    for channels_last in (False, True):
        out, ref, mag, _ = _conv_case(cfg, dtype, layout, block, channels_last)
        _assert_close(out, ref, mag, 64 * 9, dtype)
    out, ref, mag, _, _ = _linear_case(300, 500, (64,), dtype, layout, block, 0.9, kind)
    _assert_close(out, ref, mag, 500, dtype)
