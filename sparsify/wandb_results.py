"""What a finished run hands wandb besides its per-step and per-level history (tracking.py): a
table of every level, the report's plots, a run summary a dashboard can sort and group by, and,
with `logger.artifacts=true`, the masks and final weights.

Summary keys: `final/<metric>` for the last level's metrics, `final/sparsity`, and with the
verdict summary `verdict/safe_sparsity`, `verdict/safe_level` and `verdict/binding` (the metric
that binds, or "none"). Display names and groups are chosen in tracking.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparsify.records import RunResults
from sparsify.rundir import RunDir


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"prune.rate": 0.2, ...}: nested dicts joined by dots (lists stay values), the form in
    which wandb's parallel coordinates and grouping reach every key."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def display_name(config: dict[str, Any]) -> str:
    """`lth lenet300_100 digits rate 0.2 seed 0`: method, model, data, the pruning target
    (sparsity, or rate per level), seed."""
    prune = config.get("prune") or {}
    parts = [str(config.get(group, {}).get("name", "?")) for group in ("prune", "model", "data")]
    if prune.get("iterative") and "rate" in prune:
        parts.append(f"rate {prune['rate']:g}")
    elif "sparsity" in prune:
        parts.append(f"sparsity {prune['sparsity']:g}")
    elif "rate" in prune:
        parts.append(f"rate {prune['rate']:g}")
    parts.append(f"seed {config.get('seed', 0)}")
    return " ".join(parts)


def levels_table(wandb: Any, results: RunResults) -> Any:
    """A wandb.Table: one row per level, its counts and every metric (missing ones None)."""
    keys = sorted({k for lv in results.levels for k in lv.metrics})
    columns = ["level", "sparsity", "nonzero_params", "prunable_params", *keys]
    rows = [
        [lv.level, lv.sparsity, lv.nonzero_params, lv.prunable_params]
        + [lv.metrics.get(k) for k in keys]
        for lv in results.levels
    ]
    return wandb.Table(columns=columns, data=rows)


def summary(results: RunResults) -> dict[str, Any]:
    last = results.levels[-1]
    out: dict[str, Any] = {f"final/{k}": v for k, v in last.metrics.items()}
    out["final/sparsity"] = last.sparsity
    out["final/level"] = last.level
    verdict = results.summary.get("verdict")
    if isinstance(verdict, dict) and "safe_sparsity" in verdict:
        out["verdict/safe_sparsity"] = verdict["safe_sparsity"]
        out["verdict/safe_level"] = verdict.get("safe_level")
        binding = verdict.get("binding")
        out["verdict/binding"] = binding["metric"] if isinstance(binding, dict) else "none"
    return out


def publish(run: Any, results: RunResults, rd: RunDir, artifacts: bool, name: str) -> None:
    """Log the levels table and the report's plots, set the summary, and upload the artifact."""
    import wandb

    values: dict[str, Any] = {"levels": levels_table(wandb, results)}
    for png in sorted(Path(rd.path).glob("*.png")):
        values[f"report/{png.stem}"] = wandb.Image(str(png))
    run.log(values)
    run.summary.update(summary(results))
    if artifacts:
        art = wandb.Artifact(name=_artifact_name(name), type="model")
        for level in results.levels:
            for path in (rd.mask_path(level.level), rd.final_path(level.level)):
                if path.exists():
                    # immutable: wandb references the finished file instead of copying it
                    art.add_file(
                        str(path), name=f"{path.parent.name}/{path.name}", policy="immutable"
                    )
        run.log_artifact(art)


def _artifact_name(name: str) -> str:
    """Artifact names allow letters, digits, '-', '_' and '.'."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
