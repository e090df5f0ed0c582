"""docs/configuration.md keeps step with the schema: every key of every config group (each
method's prune schema, each evaluator's settings) has a row in its group's table, and no row
names a key that no longer exists."""

import dataclasses
import re
from pathlib import Path

import pytest

from sparsify import config as schema
from sparsify.evaluate import EVALUATORS
from sparsify.evaluate.summary import SUMMARIES
from sparsify.methods import METHODS

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _rows(group: str) -> set[str]:
    """The keys of the table under the heading "### `<group>` ..."."""
    text = DOC.read_text()
    match = re.search(rf"^### `{group}`.*?$(.*?)(?=^##)", text, flags=re.S | re.M)
    assert match, f"configuration.md has no section for {group}"
    return set(re.findall(r"^\| `([\w.]+)` \|", match.group(1), flags=re.M))


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _expected(group: str) -> set[str]:
    if group == "prune":
        return set().union(*(_fields(METHODS.get(n).config_class) for n in METHODS.names()))
    if group == "eval":
        keys = _fields(schema.EvalConfig)
        for registry in (EVALUATORS, SUMMARIES):
            for name in registry.names():
                settings = registry.get(name).settings
                if settings is not None:
                    keys |= {f"{name}.{f}" for f in _fields(settings)}
        return keys
    classes = {
        "data": schema.DataConfig,
        "model": schema.ModelConfig,
        "train": schema.TrainConfig,
        "backend": schema.BackendConfig,
        "logger": schema.LoggerConfig,
    }
    return _fields(classes[group])


@pytest.mark.parametrize("group", ["data", "model", "prune", "train", "eval", "backend", "logger"])
def test_every_config_key_has_a_row_in_configuration_md_and_every_row_a_key(group):
    assert _rows(group) == _expected(group)


def test_the_evaluator_example_in_evaluators_md_runs_as_written(tmp_path, monkeypatch):
    from sparsify.compose import compose
    from sparsify.run import run

    monkeypatch.setattr(EVALUATORS, "_entries", dict(EVALUATORS._entries))
    monkeypatch.setattr(EVALUATORS, "_meta", dict(EVALUATORS._meta))
    text = (DOC.parent / "evaluators.md").read_text()
    exec(re.search(r"```python\n(.*?)```", text, flags=re.S).group(1), {})
    overrides = ["train.epochs=1", "prune.levels=1", "eval=accuracy"]
    overrides += ["eval.evaluators=[accuracy,top2_agreement]", "eval.top2_agreement.max_batches=1"]
    results = run(compose(overrides), tmp_path / "run")
    dense, pruned = (lv["metrics"]["top2_agreement"] for lv in results["levels"])
    assert dense == 1.0 and 0.5 < pruned <= 1.0
