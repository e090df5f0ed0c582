"""Create a saved wandb workspace for a project of sparsify runs (docs/sweeps.md): accuracy
against sparsity grouped by method with bands over seeds, the verdict per run, and parallel
coordinates over the swept settings. Built with wandb's own wandb-workspaces library
(`pip install wandb-workspaces`); saving needs a W&B account.

    python scripts/wandb_workspace.py --entity ME --project sparsify
    python scripts/wandb_workspace.py --entity ME --project sparsify --group lth+random-1a2b3c4d
    python scripts/wandb_workspace.py --entity ME --project sparsify --dry-run   # print the spec

sparsify logs its config flattened (`prune.name`, `prune.sparsity`, ...), so config keys are
given to the library in its exact form for flat dotted keys, `<key>.value`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# swept settings shown as parallel-coordinates axes (config), then the outcomes (summary)
AXES = ["prune.name", "prune.sparsity", "prune.rate", "seed", "train.lr", "model.name"]
OUTCOMES = ["final/accuracy", "verdict/safe_sparsity"]


def config_key(key: str) -> str:
    """A flat dotted config key as wandb-workspaces passes it to the server unchanged."""
    return f"{key}.value"


def _flat_config_column(wr: Any, key: str) -> Any:
    """A parallel-coordinates axis over flat config key `key`. The library builds the accessor
    `config:<first segment>.value.<rest>` for nested configs; the flat key's is
    `config:<key>.value`, the form the library itself uses for flat keys in groupby."""

    class FlatConfigColumn(wr.ParallelCoordinatesPlotColumn):
        def _to_model(self):
            model = super()._to_model()
            model.accessor = f"config:{config_key(key)}"
            return model

    return FlatConfigColumn(metric=wr.Config(config_key(key)), display_name=key)


def _plain(text: str) -> str:
    """`text` with only letters, digits, spaces and -_.: (the library refuses '+' in a name,
    which a sweep's name holds: lth+random-1a2b3c4d)."""
    return "".join(c if c.isalnum() or c in " -_.:" else "-" for c in text)


def build(entity: str, project: str, group: str | None = None, name: str | None = None) -> Any:
    """The workspace (not saved): three sections, the runs grouped by method."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    method = wr.Config(config_key("prune.name"))
    filters = [ws.Metric("Group") == group] if group else []

    def against_sparsity(metric: str, title: str) -> Any:
        return wr.LinePlot(title=title, x="level/sparsity", y=[metric], groupby=method,
                           groupby_aggfunc="mean", groupby_rangefunc="stderr")  # fmt: skip

    curves = ws.Section(
        name="Accuracy against sparsity",
        is_open=True,
        panels=[
            against_sparsity("level/accuracy", "test accuracy against sparsity, mean ± s.e."),
            against_sparsity("level/ece", "ECE against sparsity, mean ± s.e."),
        ],
    )
    verdict = ws.Section(
        name="Verdict",
        is_open=True,
        panels=[
            wr.ScalarChart(
                title="safe sparsity", metric="verdict/safe_sparsity", groupby_aggfunc="mean"
            ),
            wr.BarPlot(title="safe sparsity per run", metrics=["verdict/safe_sparsity"]),
        ],
    )
    coordinates = ws.Section(
        name="Settings and outcomes",
        is_open=True,
        panels=[
            wr.ParallelCoordinatesPlot(
                columns=[_flat_config_column(wr, k) for k in AXES]
                + [wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(k)) for k in OUTCOMES]
            )
        ],
    )  # fmt: skip
    return ws.Workspace(
        entity=entity,
        project=project,
        name=name or (f"sparsify: {_plain(group)}" if group else "sparsify: accuracy vs sparsity"),
        runset_settings=ws.RunsetSettings(
            filters=filters, groupby=[ws.Config(config_key("prune.name"))]
        ),
        sections=[curves, verdict, coordinates],
    )


def spec(workspace: Any) -> dict[str, Any]:
    """The JSON that saving would upload (wandb-workspaces' model of the workspace)."""
    return workspace._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entity", required=True, help="the W&B entity (user or team)")
    parser.add_argument("--project", required=True, help="the W&B project of the runs")
    parser.add_argument("--group", help="only this group's runs (a -m sweep's name)")
    parser.add_argument("--name", help="the workspace's name")
    parser.add_argument("--dry-run", action="store_true", help="print the spec, save nothing")
    args = parser.parse_args(argv)
    try:
        workspace = build(args.entity, args.project, args.group, args.name)
    except ImportError:
        print(
            "wandb_workspace: needs wandb-workspaces: pip install wandb-workspaces", file=sys.stderr
        )
        return 2
    except ValueError as e:  # pydantic's ValidationError: e.g. a --name it refuses
        lines = str(e).strip().splitlines()
        print(f"wandb_workspace: {' '.join(lines[:3])}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(spec(workspace), indent=2))
        return 0
    import wandb

    try:
        workspace.save()
    except (wandb.Error, ValueError) as e:
        print(f"wandb_workspace: could not save: {str(e).strip()}", file=sys.stderr)
        return 2
    print(f"workspace saved: {workspace.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
