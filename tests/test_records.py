"""Typed records and the report model: the JSON the run writes reads back as it was, damaged
files are one-line refusals, and the renderers lay out whatever the parts build."""

import json

import pytest
import torch

from sparsify.errors import UserError
from sparsify.evaluate import EVALUATORS, MetricSpec
from sparsify.records import Checkpoint, LayerCount, LevelRecord, RunResults
from sparsify.report.model import Figure, Report, Section, Table, Text
from sparsify.report.parts import ReportInput
from sparsify.report.render import to_html, to_markdown
from sparsify.report.writer import build_report
from sparsify.rundir import RunDir


def _level(level=1, **metrics) -> LevelRecord:
    return LevelRecord(
        level, 0.25, 3, 4, 10, {"fc.weight": LayerCount(3, 4)}, metrics=metrics or {"accuracy": 0.5}
    )


def test_a_level_record_round_trips_and_results_json_leaves_out_the_layer_counts():
    record = _level(accuracy=0.75, loss=0.5)
    record.tables = {"x/t": {"columns": ["a"], "rows": [[1]]}}
    data = json.loads(json.dumps(record.to_json()))
    assert LevelRecord.from_json(data, 1, "m") == record
    assert "layers" not in record.to_json(layers=False)
    assert record.training().metrics == {} and record.training().layers == record.layers


@pytest.mark.parametrize(
    "data", [None, [], {"level": 2}, {"level": 1}, {"level": 1, "sparsity": "x"}]
)
def test_a_damaged_level_record_is_a_user_error(data):
    with pytest.raises(UserError, match="not a sparsify level record; delete the level"):
        LevelRecord.from_json(data, 1, "metrics.json")


def test_results_json_from_before_study_keys_still_reads():
    old = {"method": "lth", "model": "m", "data": "d", "seed": 1, "split": "test"}
    old["levels"] = [_level(0).to_json(layers=False)]
    results = RunResults.from_json(old, "results.json")
    assert (results.study, results.run, results.dense_level) == ("", "", None)
    with pytest.raises(UserError, match="not a sparsify results.json"):
        RunResults.from_json({"levels": "no"}, "results.json")


def test_a_checkpoint_keeps_what_else_trains_and_refuses_missing_keys():
    state = {"level": 0, "step": 3, "model": {}, "optimizer": {}, "mask": {}, "rng": {}}
    ckpt = Checkpoint.from_state({**state, "scores": {"scores": torch.zeros(2)}}, "c")
    assert set(ckpt.extra) == {"scores"} and set(ckpt.to_state()) == {*state, "scores"}
    with pytest.raises(UserError, match="not a sparsify checkpoint"):
        Checkpoint.from_state({"level": 0}, "c")


def test_the_renderers_lay_out_text_tables_and_figures_and_escape_html():
    report = Report(
        "a <b> title",
        [Text("on the `test` split")],
        [Section("Numbers", [Table(["k", "v"], [["x", "1 < 2"]]), Figure("p.png", "a plot")])],
    )
    md = to_markdown(report)
    assert md.startswith("# a <b> title") and "| k | v |\n|---|---|\n| x | 1 < 2 |" in md
    assert "![a plot](p.png)" in md and "## Numbers" in md
    page = to_html(report)
    assert "<h1>a &lt;b&gt; title</h1>" in page and "<td>1 &lt; 2</td>" in page
    assert "<code>test</code>" in page and "<img src='p.png' alt='a plot'>" in page


def test_report_tables_and_plots_follow_the_metric_specs_not_metric_names(tmp_path):
    specs = {
        "score": MetricSpec("my score", percent=True, plot=True),
        "cost": MetricSpec("cost", unit=" ms", digits=1),
    }
    records = [_level(0, score=0.5, cost=2.0), _level(1, score=0.25, cost=3.0)]
    results = RunResults("m", "x", "d", 0, "test", "run", "study", 0, records)
    entries = [EVALUATORS.get("accuracy")]
    report = build_report(ReportInput(RunDir(tmp_path), results, records, entries, specs))
    levels = report.sections[0].blocks[0]
    assert levels.head[-2:] == ["my score", "cost"]
    assert levels.rows[1][-2:] == ["25.00%", "3.0 ms"]
    titles = [s.title for s in report.sections]
    assert "My score against sparsity" in titles and not any("Cost" in t for t in titles)
    assert (tmp_path / "score_vs_sparsity.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "cost_vs_sparsity.png").exists()
