"""The contract of base.py, for every registered corruption (the registry-wide test: a new
corruption is covered without a new test): the 19 of the benchmark are there, and each leaves its
input untouched, keeps its shape, returns 8-bit steps in [0, 1], and is fixed by its generator."""

from __future__ import annotations

import pytest
import torch

from sparsify.corruptions import BENCHMARK, CORRUPTIONS, EXTRA, ORDER, corrupt


def test_the_benchmark_and_the_extra_corruptions_are_registered():
    assert CORRUPTIONS.names() == sorted(ORDER) and len(BENCHMARK) == 15 and len(EXTRA) == 4
    families = {CORRUPTIONS.get(n).family for n in ORDER}
    assert families == {"noise", "blur", "weather", "digital"}


@pytest.mark.parametrize("name", ORDER)
@pytest.mark.parametrize("shape,preset", [((3, 3, 32, 32), "imagenet"), ((2, 1, 8, 8), "cifar")])
def test_a_corruption_keeps_its_input_shape_and_range_and_is_deterministic(name, shape, preset):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    before = x.clone()
    outs = [corrupt(x, name, s, torch.Generator().manual_seed(7), preset) for s in (1, 5)]
    again = corrupt(x, name, 5, torch.Generator().manual_seed(7), preset)
    assert torch.equal(x, before)  # the input is not modified
    for y in outs:
        assert y.shape == x.shape and y.dtype == torch.float32
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        assert torch.equal(torch.round(y * 255), y * 255)  # 8-bit steps
    assert torch.equal(outs[1], again)
