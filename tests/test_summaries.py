"""Prune potential and the verdict on hand-built level records: the numbers are written out."""

from __future__ import annotations

import pytest

from sparsify.evaluate.potential import PrunePotentialSettings, prune_potential
from sparsify.evaluate.summary import SummaryInput
from sparsify.evaluate.verdict import VerdictSettings, verdict
from sparsify.records import LevelRecord


def _level(i: int, sparsity: float, metrics: dict, grid: dict | None = None) -> LevelRecord:
    tables = {}
    if grid is not None:
        rows = [[name, "noise", acc, acc] for name, acc in grid.items()]
        tables["corruptions/grid"] = {
            "columns": ["corruption", "family", "3", "mean"],
            "rows": rows,
        }
    return LevelRecord(i, sparsity, 0, 0, 0, {}, metrics=metrics, tables=tables)


def _input(records, settings, images=1000, classes=10, dense_level=0):
    return SummaryInput(records, dense_level, {}, settings, images, classes)


RECORDS = [
    # accuracy on clean data, and on gaussian noise, per level
    _level(0, 0.0, {"accuracy": 0.90}, {"gaussian_noise": 0.70}),
    _level(1, 0.5, {"accuracy": 0.90}, {"gaussian_noise": 0.66}),
    _level(2, 0.8, {"accuracy": 0.885}, {"gaussian_noise": 0.69}),
    _level(3, 0.9, {"accuracy": 0.86}, {"gaussian_noise": 0.60}),
]


def test_prune_potential_is_the_largest_sparsity_within_delta_on_each_distribution():
    out = prune_potential(_input(RECORDS, PrunePotentialSettings(deltas=[0.005, 0.02, 0.05])))
    rows = {r[0]: r for r in out["table"]["rows"]}
    # clean: errors .10 .10 .115 .14 -> within .005: levels 0, 1; within .02: up to 2; .05: 3
    assert rows["clean"][3:] == [0.5, 0.8, 0.9]
    # noise: errors .30 .34 .31 .40 -> .005: only level 0; .02: level 2 (level 1 fails, 2 passes:
    # the maximum, not the first failure); .05: level 2
    assert rows["gaussian_noise"][3:] == [0.0, 0.8, 0.8]
    assert rows["gaussian_noise"][2] == pytest.approx(0.30)
    assert out["lowest"][0] == {"delta": 0.005, "potential": 0.0, "distribution": "gaussian_noise"}
    assert out["lowest"][2]["potential"] == 0.8


def test_prune_potential_without_a_dense_parent_says_why():
    out = prune_potential(_input(RECORDS, PrunePotentialSettings(), dense_level=None))
    assert "dense parent" in out["skipped"]


def test_verdict_names_the_safe_sparsity_and_the_binding_metric():
    records = [
        _level(0, 0.0, {"accuracy": 0.90, "mce": 1.0, "ece": 0.02}),
        _level(1, 0.5, {"accuracy": 0.895, "mce": 1.05, "ece": 0.03}),
        _level(2, 0.8, {"accuracy": 0.893, "mce": 1.30, "ece": 0.05}),  # mce 3x over, ece 1.5x
        _level(3, 0.9, {"accuracy": 0.85, "mce": 1.40, "ece": 0.03}),
    ]
    out = verdict(_input(records, VerdictSettings(accuracy_drop=0.01, mce_rise=0.1, ece_rise=0.02)))
    assert out["safe_sparsity"] == 0.5 and out["safe_level"] == 1
    b = out["binding"]
    assert (b["metric"], b["level"], b["tolerance"]) == ("mce", 2, "mce_rise")
    assert b["excess"] == pytest.approx(0.30)
    # tolerances whose metric was not evaluated do not apply
    assert set(out["tolerances"]) == {"accuracy_drop", "mce_rise", "ece_rise"}
    assert out["levels"][3]["fails"].keys() == {"accuracy_drop", "mce_rise"}
    assert out["warnings"] == []


def test_verdict_flags_a_failure_below_the_safe_sparsity_and_tolerances_within_noise():
    records = [
        _level(0, 0.0, {"accuracy": 0.90}),
        _level(1, 0.5, {"accuracy": 0.88}),  # fails by 2 points
        _level(2, 0.8, {"accuracy": 0.895}),
    ]
    out = verdict(_input(records, VerdictSettings(accuracy_drop=0.01), images=300))
    assert out["safe_sparsity"] == 0.8 and out["binding"] is None
    assert any("level 1" in w and "below the safe sparsity" in w for w in out["warnings"])
    # 1 point of 300 images is 3 images, under min_images=5
    assert any("accuracy_drop=0.01 is 3.0 test images" in w for w in out["warnings"])
