"""Linear CKA against the numbers of an independent numpy computation (review of the metric
libraries, shared/reviews/ecosystem-feasibility.md §5) and its invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsify.evaluate.similarity import MinibatchCKA, gram_cka, linear_cka


def _xy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 4))
    y = x @ rng.standard_normal((4, 3)) + 0.5 * rng.standard_normal((10, 3))
    return rng, torch.tensor(x), torch.tensor(y)


def test_linear_cka_matches_the_numpy_test_vector():
    rng, x, y = _xy()
    assert x[0].tolist() == pytest.approx([0.12573, -0.132105, 0.640423, 0.1049], abs=1e-5)
    assert linear_cka(x, y) == pytest.approx(0.8842865746, abs=1e-9)
    assert linear_cka(x, y, unbiased=True) == pytest.approx(0.8408422810, abs=1e-9)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    z = torch.tensor(rng.standard_normal((10, 5)))  # drawn after q, as in the review
    assert linear_cka(x, z) == pytest.approx(0.262361, abs=1e-6)
    assert linear_cka(x, z, unbiased=True) == pytest.approx(-0.021631, abs=1e-6)


def test_linear_cka_is_invariant_to_orthogonal_maps_scaling_and_translation_only():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, generator=g, dtype=torch.float64)
    y = torch.randn(50, 4, generator=g, dtype=torch.float64) + x[:, :4]
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    base = linear_cka(x, y)
    assert linear_cka(3.0 * x @ q + 7.0, y) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-12)
    stretch = torch.diag(torch.tensor([1.0, 10.0, 0.1, 1.0, 5.0, 1.0], dtype=torch.float64))
    assert abs(linear_cka(x @ stretch, y) - base) > 1e-3  # not invariant to any invertible map


def test_the_gram_form_equals_the_feature_form():
    _, x, y = _xy()
    assert gram_cka(x @ x.T, y @ y.T) == pytest.approx(linear_cka(x, y), abs=1e-12)


def test_minibatch_cka_with_one_batch_is_the_unbiased_cka_and_is_close_with_many():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(400, 8, generator=g, dtype=torch.float64)
    y = x @ torch.randn(8, 5, generator=g, dtype=torch.float64) + torch.randn(
        400, 5, generator=g, dtype=torch.float64
    )
    one = MinibatchCKA()
    one.update(x, y)
    assert one.value() == pytest.approx(linear_cka(x, y, unbiased=True), abs=1e-12)
    many = MinibatchCKA()
    for i in range(0, 400, 100):
        many.update(x[i : i + 100], y[i : i + 100])
    assert many.value() == pytest.approx(linear_cka(x, y, unbiased=True), abs=0.03)
