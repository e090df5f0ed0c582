"""Step arithmetic and learning-rate schedules."""

import math

import pytest

from sparsify.config import TrainConfig
from sparsify.errors import UserError
from sparsify.training.optim import LRSchedule
from sparsify.training.steps import to_iterations


@pytest.mark.parametrize(
    "text,its", [("160ep", 1600), ("500it", 500), ("2ep7it", 27), ("0it", 0), ("0ep", 0)]
)
def test_steps_convert_epochs_and_iterations(text, its):
    assert to_iterations(text, 10) == its


@pytest.mark.parametrize("text", ["", "10", "ep", "1.5ep", "-1ep", "3 epochs", "it5"])
def test_malformed_steps_are_user_errors(text):
    with pytest.raises(UserError, match="e.g. '160ep'"):
        to_iterations(text, 10, "prune.rewind")


def test_multistep_schedule_decays_at_milestones():
    cfg = TrainConfig(lr=0.1, schedule="multistep", milestones=["80ep", "120ep"], gamma=0.1)
    lr = LRSchedule(cfg, iterations_per_epoch=10, total=1600)
    assert lr(799) == pytest.approx(0.1)
    assert lr(800) == pytest.approx(0.01)
    assert lr(1200) == pytest.approx(0.001)


def test_cosine_schedule_with_warmup():
    cfg = TrainConfig(lr=1.0, schedule="cosine", warmup="10it")
    lr = LRSchedule(cfg, iterations_per_epoch=10, total=110)
    assert lr(0) == pytest.approx(0.1)
    assert lr(9) == pytest.approx(1.0)
    assert lr(10) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.5)
    assert lr(110) == pytest.approx(0.0, abs=1e-12)


def test_step_schedule():
    cfg = TrainConfig(lr=1.0, schedule="step", step_size="2ep", gamma=0.5)
    lr = LRSchedule(cfg, iterations_per_epoch=5, total=100)
    assert [lr(i) for i in (0, 9, 10, 20)] == [1.0, 1.0, 0.5, 0.25]
    assert math.isclose(LRSchedule(TrainConfig(lr=0.3, schedule="constant"), 5, 100)(99), 0.3)
