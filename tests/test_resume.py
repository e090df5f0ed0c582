"""Resume works for every method: a run interrupted in the middle of its last level and run
again ends with the results and weights of an uninterrupted run (CPU, fixed seed). Parametrized
over the registry, so a new method is covered here without a new test."""

import json

import pytest
import torch

from sparsify.compose import compose
from sparsify.methods import METHODS
from sparsify.run import run
from sparsify.tracking import Tracker
from tests.tiny import for_method

OVERRIDES = [
    "train.epochs=6",
    "eval=accuracy",
    "data=synthetic",
    "data.num_samples=256",
    "train.batch_size=32",
    "prune.levels=2",
    "prune.rewind=3it",
    "prune.finetune=1ep",
    "train.checkpoint_every=5it",
    "logger.log_every=1",
    # gmp: updates from 1ep to 4ep; acdc: D 0-1, C 1-2, D 2-3, C 3-4 | D 4-5 | level 1: C 5-6
    "prune.start=1ep",
    "prune.stop=4ep",
    "prune.frequency=3it",
    "prune.dense_warmup=1ep",
    "prune.final_decompressed=1ep",
    "prune.final_compressed=1ep",
]


class Interrupted(Exception):
    pass


# Every method in its last level, plus level 0 of the methods whose level 0 does more than plain
# training: acdc's alternating phases, gmp's updates, wr's rewind snapshot.
CASES = [(m, "last") for m in METHODS.names()] + [("acdc", 0), ("gmp", 0), ("wr", 0)]
# (wr's level 0 case interrupts after a checkpoint and before the rewind point, below)


@pytest.mark.parametrize("method,level", CASES)
def test_a_run_interrupted_mid_level_resumes_to_the_uninterrupted_result(
    tmp_path, monkeypatch, method, level
):
    # wr at level 0: checkpoint at 5it, interrupted at 7it, rewind point 8it: the resumed run
    # must take the snapshot itself
    extra = ["prune.rewind=8it"] if (method, level) == ("wr", 0) else []
    cfg = compose(for_method(method, [*OVERRIDES, *extra]))
    reference = run(cfg, tmp_path / "reference")
    last = len(reference["levels"]) - 1 if level == "last" else level
    stop_at = reference["levels"][last]["iterations"] // 2 + 3  # past a checkpoint, mid-level
    if extra:
        stop_at = 7

    original = Tracker.log
    seen = {"n": 0}

    def log_then_interrupt(self, event):
        original(self, event)
        if self.level == last and event["event"] == "train":
            seen["n"] += 1
            if seen["n"] == stop_at:
                raise Interrupted

    monkeypatch.setattr(Tracker, "log", log_then_interrupt)
    with pytest.raises(Interrupted):
        run(cfg, tmp_path / "resumed")
    monkeypatch.setattr(Tracker, "log", original)
    assert not (tmp_path / f"resumed/levels/level_{last:02d}/training.json").exists()
    ckpt = torch.load(tmp_path / "resumed/checkpoint.pt", weights_only=True)
    assert ckpt["level"] == last

    resumed = run(cfg, tmp_path / "resumed")
    assert '"event": "resume"' in (tmp_path / "resumed/log.jsonl").read_text()
    assert resumed == reference
    for level in range(last + 1):
        a = torch.load(tmp_path / f"resumed/levels/level_{level:02d}/final.pt", weights_only=True)
        b = torch.load(tmp_path / f"reference/levels/level_{level:02d}/final.pt", weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in b), level
    assert json.loads((tmp_path / "resumed/results.json").read_text()) == reference
