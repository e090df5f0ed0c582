"""Calibration and per-class metrics against their definitions, hand-worked numbers, and
torchmetrics (the reference they replace at run time)."""

from __future__ import annotations

import math

import pytest
import torch

from sparsify.evaluate.calibration import brier, ece, fit_temperature, nll, reliability
from sparsify.evaluate.outputs import Outputs
from sparsify.evaluate.per_class import class_recall, confusion


def _random_logits(n: int = 500, k: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, k, generator=g)
    labels = torch.randint(0, k, (n,), generator=g)
    return logits, labels


def _ece_by_definition(logits, labels, bins):
    """Guo et al.: Σ_m |B_m|/n |acc(B_m) − conf(B_m)| over bins (lo, hi], written as a loop."""
    probs = logits.double().softmax(1)
    total = 0.0
    for m in range(bins):
        lo, hi = m / bins, (m + 1) / bins
        members = [i for i in range(len(labels)) if lo < float(probs[i].max()) <= hi]
        if not members:
            continue
        acc = sum(int(probs[i].argmax() == labels[i]) for i in members) / len(members)
        conf = sum(float(probs[i].max()) for i in members) / len(members)
        total += len(members) / len(labels) * abs(acc - conf)
    return total


def test_ece_matches_the_definition_and_torchmetrics():
    tm = pytest.importorskip("torchmetrics.functional.classification")
    logits, labels = _random_logits()
    ours = ece(logits, labels, 15)
    assert ours == pytest.approx(_ece_by_definition(logits, labels, 15), abs=1e-12)
    ref = float(tm.multiclass_calibration_error(logits, labels, 10, n_bins=15, norm="l1"))
    assert ours == pytest.approx(ref, abs=1e-6)  # torchmetrics computes in float32


def test_ece_bins_are_open_below_closed_above():
    # two samples with confidence exactly 0.5 (logits [0, 0]) and one correct at ~1.0
    logits = torch.tensor([[0.0, 0.0], [0.0, 0.0], [50.0, 0.0]])
    labels = torch.tensor([0, 1, 0])
    # bins of width 0.5: (0, .5] holds the two at 0.5: acc 1/2 (argmax picks class 0), conf .5
    assert ece(logits, labels, 2) == pytest.approx(0.0, abs=1e-12)
    table = reliability(logits, labels, 2)
    assert [r[2] for r in table["rows"]] == [2, 1]
    assert table["rows"][0][3] == pytest.approx(0.5) and table["rows"][0][4] == pytest.approx(0.5)


def test_nll_and_brier_by_hand():
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])  # softmax [.75, .25], [.5, .5]
    labels = torch.tensor([0, 1])
    assert nll(logits, labels) == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2)
    # Brier: ((.25)² + (.25)²) and ((.5)² + (.5)²), mean = (0.125 + 0.5) / 2
    assert brier(logits, labels) == pytest.approx(0.3125)


def test_temperature_scaling_recovers_the_temperature_that_generated_the_labels():
    g = torch.Generator().manual_seed(1)
    true_logits = 2 * torch.randn(20000, 5, generator=g)
    labels = torch.multinomial(true_logits.softmax(1), 1, generator=g).squeeze(1)
    # a model 2.5x over-confident: its logits are the true ones times 2.5
    t = fit_temperature(2.5 * true_logits, labels)
    assert t == pytest.approx(2.5, rel=0.05)
    assert nll(2.5 * true_logits / t, labels) < nll(2.5 * true_logits, labels)


def test_per_class_recall_and_confusion_by_hand_and_against_torchmetrics():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    preds = torch.tensor([0, 1, 0, 1, 1, 0])
    out = Outputs(torch.nn.functional.one_hot(preds, 4).float(), labels)  # class 3 absent
    recall = class_recall(out, 4)
    assert recall.tolist() == pytest.approx([2 / 3, 1.0, 0.0, 0.0])
    assert confusion(out, 4).tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    tm = pytest.importorskip("torchmetrics.functional.classification")
    ref = tm.multiclass_recall(preds, labels, 4, average=None)
    assert recall.tolist() == pytest.approx(ref.double().tolist())
