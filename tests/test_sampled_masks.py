"""The `sampled_masks` evaluator: supermask's test accuracy as Zhou et al. report it, the mean over
fresh Bernoulli samples of the learnt mask (train_supermask.py averages 10), with the expected
sparsity 1 - mean sigmoid(s). Sample 1 is rebuilt here from scores.pt by the reference's rule
(one Bernoulli draw per weight, layer after layer, the rescaling n / kept), not by our sampler."""

from pathlib import Path

import pytest
import torch

from sparsify.compose import compose
from sparsify.data import build_data
from sparsify.errors import UserError
from sparsify.models import build_model
from sparsify.run import run
from sparsify.sparsity.score_masks import ScoreMasks

FAST = ["prune=supermask", "train.epochs=2", "train.batch_size=128", "eval=accuracy"]


def _run(tmp_path: Path, *overrides: str) -> tuple[dict, Path]:
    cfg = compose([*FAST, *overrides])
    return run(cfg, tmp_path / "run"), tmp_path / "run"


def test_sampled_accuracy_is_the_mean_over_seeded_samples(tmp_path):
    results, run_dir = _run(tmp_path, "eval.sampled_masks.samples=3")
    level = results["levels"][0]
    metrics, rows = level["metrics"], level["tables"]["sampled_masks/samples"]["rows"]
    assert [r[0] for r in rows] == [0, 1, 2]
    assert rows[0][1] == metrics["accuracy"]  # sample 0 is final.pt, the level's own model
    assert metrics["sampled_accuracy"] == pytest.approx(sum(r[1] for r in rows) / 3)
    mean = sum(r[1] for r in rows) / 3
    std = (sum((r[1] - mean) ** 2 for r in rows) / 2) ** 0.5
    assert metrics["sampled_accuracy_std"] == pytest.approx(std)

    saved = torch.load(run_dir / "levels/level_00/scores.pt", weights_only=True)
    expected = 1 - torch.sigmoid(saved["scores"].double()).mean().item()
    assert metrics["expected_sparsity"] == pytest.approx(expected)
    assert saved["rescale"] is True

    # sample 1 by the reference's rule, on the test split
    cfg = compose([*FAST, "eval.sampled_masks.samples=3"])
    model = build_model(cfg.model, 10, 1, 8)
    state = torch.load(run_dir / "levels/level_00/final.pt", weights_only=True)
    mask = torch.load(run_dir / "levels/level_00/mask.pt", weights_only=True)
    names = list(mask)
    layout = ScoreMasks({n: state[n] for n in names}, "bernoulli")  # only to split the flat files
    scores, frozen = layout.layers(saved["scores"]), layout.layers(saved["frozen"])
    gen, kept = torch.Generator().manual_seed(1), 0
    for name, s, w in zip(names, scores, frozen):
        m = torch.bernoulli(torch.sigmoid(s), generator=gen)
        kept += int(m.sum())
        state[name] = w * m * (m.numel() / max(1.0, float(m.sum())))
    model.load_state_dict(state)
    model.eval()
    data = build_data(cfg.data, cfg.train.batch_size, cfg.train.batch_size, seed=0)
    right = total = 0
    with torch.no_grad():
        for x, y in data.test.batches():
            right += int((model(x).argmax(1) == y).sum())
            total += len(y)
    assert rows[1][1] == pytest.approx(right / total)
    assert rows[1][2] == pytest.approx(1 - kept / sum(s.numel() for s in scores))
    assert 0.3 < rows[1][2] < 0.7  # a sample of roughly half the weights, not a constant


def test_sampled_masks_is_refused_where_there_are_no_scores(tmp_path):
    """Listed for a method without learnt scores, it is refused when the config is composed,
    before any work."""
    with pytest.raises(UserError, match="evaluator sampled_masks needs masks sampled from learnt"):
        compose(["prune=lth", "eval.evaluators=[accuracy,sampled_masks]"])
    # automatic: it joins supermask runs and no others
    from sparsify.evaluate.stage import selected

    assert "sampled_masks" in [e.name for e in selected(compose(["prune=supermask"]))]
    assert "sampled_masks" not in [e.name for e in selected(compose(["prune=edgepopup"]))]


def test_sampled_masks_settings_out_of_range_are_refused(tmp_path):
    with pytest.raises(UserError, match="eval.sampled_masks.samples"):
        _run(tmp_path, "eval.sampled_masks.samples=0")
    assert not (tmp_path / "run").exists()


def test_damaged_scores_file_is_a_clear_error(tmp_path):
    from sparsify.evaluate.sampled_masks import load_scores

    bad = tmp_path / "scores.pt"
    torch.save({"scores": torch.zeros(3)}, bad)
    with pytest.raises(UserError, match="does not hold this run's supermask scores"):
        load_scores(bad, 3)


def test_a_level_without_scores_pt_reports_nothing_and_re_evaluation_works(tmp_path):
    """A supermask level trained before scores.pt existed: re-evaluating it gives no sampled
    metrics instead of failing the whole evaluation."""
    from sparsify.evaluate.__main__ import main

    results, run_dir = _run(tmp_path, "eval.sampled_masks.samples=2")
    assert "sampled_accuracy" in results["levels"][0]["metrics"]
    (run_dir / "levels/level_00/scores.pt").unlink()
    for folder in (run_dir / "levels/level_00/eval").glob("sampled_masks-*"):
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    main([str(run_dir), "eval.sampled_masks.samples=3"])
    import json

    metrics = json.loads((run_dir / "results.json").read_text())["levels"][0]["metrics"]
    assert "accuracy" in metrics and "sampled_accuracy" not in metrics
    assert list((run_dir / "levels/level_00/eval").glob("sampled_masks-*"))  # it did run
