"""scripts/wandb_workspace.py: the saved workspace it builds with wandb-workspaces, checked in
the spec the library would upload (its model, offline; saving needs a W&B server): accuracy
against sparsity grouped by method with bands, the verdict, parallel coordinates over the flat
config keys sparsify logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("wandb_workspaces", reason="wandb-workspaces (the dev extra)")
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "wandb_workspace.py"


def _dry_run(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--entity", "me", "--project", "sparsify", "--dry-run", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _panels(spec: dict) -> list[dict]:
    text = json.dumps(spec)
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "viewType" in node:
                found.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(text))
    return found


def test_the_workspace_plots_accuracy_against_sparsity_grouped_by_method_with_bands():
    panels = _panels(_dry_run())
    lines = [p["config"] for p in panels if p["viewType"] == "Run History Line Plot"]
    accuracy = [c for c in lines if c.get("metrics") == ["level/accuracy"]]
    assert len(accuracy) == 1
    (acc,) = accuracy
    assert acc["xAxis"] == "level/sparsity"
    assert (acc["groupBy"], acc["groupAgg"], acc["groupArea"]) == (
        "prune.name.value",
        "mean",
        "stderr",
    )


def test_parallel_coordinates_read_the_flat_config_keys_and_the_summary():
    panels = _panels(_dry_run())
    (pc,) = [p["config"] for p in panels if p["viewType"] == "Parallel Coordinates Plot"]
    accessors = [c["accessor"] for c in pc["columns"]]
    assert accessors[:3] == ["config:prune.name.value", "config:prune.sparsity.value",
                             "config:prune.rate.value"]  # fmt: skip
    assert "summary:final/accuracy" in accessors and "summary:verdict/safe_sparsity" in accessors
    assert any("verdict/safe_sparsity" in json.dumps(p) for p in panels if p is not pc)


def test_a_group_limits_the_workspace_to_one_sweep():
    text = json.dumps(_dry_run("--group", "lth+random-1a2b3c4d"))
    assert '"name": "group"' in text and '"value": "lth+random-1a2b3c4d"' in text
    assert '"lth+random-1a2b3c4d"' not in json.dumps(_dry_run())


def test_saving_without_a_wandb_account_says_so_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["HOME"] = str(tmp_path)  # no ~/.netrc: no stored key
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--entity", "me", "--project", "sparsify"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "could not save" in proc.stderr and "API key" in proc.stderr
