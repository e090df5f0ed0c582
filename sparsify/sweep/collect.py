"""The runs of a sweep, checked to read as one experiment.

`collect_sweep(paths)` gathers the run directories at or below `paths` (or, for a sweep's
manifest folder, the runs that sweep made), keeps the finished ones and lists the rest with why
(unfinished or failed; a job the manifest names that never started; a copied folder). Runs may
differ only in their seed, in the keys a manifest (or `--vary`) says were swept, and in the
settings of a swept config group between runs that chose different options of it
(`prune=lth,magnitude` lets every `prune.*` key differ between an lth run and a magnitude run,
never between two lth runs). The method always counts as swept: runs of several methods, from
one command or several, compare. Any other difference is refused, naming the key: a table that mixed
two learning rates without saying so would mislead.
"""

from __future__ import annotations

import fnmatch
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsify.analysis.base import run_dirs
from sparsify.errors import UserError
from sparsify.identity import run_name, study_key, training_identity
from sparsify.records import RunResults
from sparsify.rundir import RunDir
from sparsify.sweep.failures import read_failure
from sparsify.sweep.manifest import MANIFEST, Manifest, manifests_under, read_manifest

# the settings along the sweep report's x-axis: runs differing only in these (and the seed)
# are points of one curve
SPARSITY_KEYS = ("prune.sparsity", "prune.levels")
_ABSENT = "<default>"


@dataclass
class SweepRun:
    path: Path
    results: RunResults
    config: dict[str, Any]
    identity: dict[str, Any]  # training_identity(config)

    @property
    def name(self) -> str:
        return self.results.run or run_name(self.config)

    @property
    def study(self) -> str:
        return self.results.study or study_key(self.config)

    def setting(self, key: str) -> Any:
        """The value of dotted `key` in the run's resolved config (so a default shows as the value
        it is, not as absent), or its training identity's where the config lacks it."""
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return self.identity.get(key, _ABSENT)
            node = node[part]
        return node


@dataclass
class Sweep:
    runs: list[SweepRun]  # the finished runs, sorted by study then seed
    missing: list[tuple[str, str]]  # (run dir or run name, why it is not in the report)
    swept: list[str]  # keys the runs may differ in (manifests and --vary), seed aside
    groups: dict[str, str]  # swept config groups and the prefix of the keys each sets
    manifests: list[Manifest] = field(default_factory=list)

    def choice(self, run: SweepRun, group: str) -> str | None:
        """The option of config group `group` that `run` chose: its name for data, model and
        prune; otherwise what its sweep job's overrides say (None when no manifest names it)."""
        if group in ("data", "model", "prune"):
            return str(run.config.get(group, {}).get("name"))
        for m in self.manifests:
            value = m.choice(run.name, group)
            if value is not None:
                return value
        return None


def _value(run: SweepRun, key: str) -> str:
    return json.dumps(run.setting(key), sort_keys=True, default=str)


def _candidates(path: Path) -> tuple[list[Path], list[Manifest], set[str] | None]:
    """Run dirs to look at, the manifests that apply, and the run names to keep (None: all)."""
    if (path / MANIFEST).is_file():
        m = read_manifest(path)
        return run_dirs([m.sweep_dir]), [m], {j.run for j in m.jobs}
    return run_dirs([path]), manifests_under(path), None


def collect_sweep(paths: list[Path], vary: list[str] = ()) -> Sweep:
    """The sweep made of the runs at or below `paths`; UserError when they cannot be one."""
    dirs: list[Path] = []
    manifests: list[Manifest] = []
    keep: set[str] | None = set()
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path} does not exist")
        found, ms, names = _candidates(path)
        dirs += found
        manifests += [m for m in ms if m.folder not in {x.folder for x in manifests}]
        keep = None if names is None or keep is None else keep | names
    runs: list[SweepRun] = []
    missing: list[tuple[str, str]] = []
    seen: dict[str, Path] = {}
    for path in sorted(set(dirs)):
        rd = RunDir(path)
        config = rd.saved_config()
        name = run_name(config)
        if keep is not None and name not in keep:
            continue
        if not rd.results_path.exists():
            failure = read_failure(path.parent, path.name)
            why = f"failed: {failure}" if failure else "no results.json: unfinished or failed"
            missing.append((str(path), why))
            continue
        results = rd.load_results()
        run = SweepRun(path, results, config, training_identity(config))
        if run.name in seen:
            missing.append((str(path), f"a copy of {seen[run.name]} (run {run.name})"))
            continue
        seen[run.name] = path
        runs.append(run)
    found = {r.name for r in runs} | {Path(p).name for p, _ in missing}
    for m in manifests:
        for job in m.jobs:
            if job.run not in found and job.run not in seen:
                failure = read_failure(m.sweep_dir, job.run)
                why = f"failed: {failure}" if failure else "never started"
                missing.append((job.run, f"sweep {m.name}: {why} ({' '.join(job.overrides)})"))
                found.add(job.run)
    if not runs:
        where = ", ".join(map(str, paths))
        raise UserError(
            f"no finished sparsify run under {where}; a sweep report needs at least one"
        )
    swept = sorted({k for m in manifests for k in m.swept} | set(vary))
    # the method is always compared (a sweep report is per method, and the methods table is
    # several commands, one per family): prune.* may differ between runs of different methods
    groups = {"prune": "prune.", **{g: p for m in manifests for g, p in m.groups.items()}}
    sweep = Sweep(
        sorted(runs, key=lambda r: (r.study, r.results.seed, r.name)),
        missing,
        swept,
        groups,
        manifests,
    )
    check_one_experiment(sweep, list(vary))
    return sweep


def check_one_experiment(sweep: Sweep, vary: list[str]) -> None:
    """Refuse runs that differ in a key that is neither the seed nor swept (see the module)."""
    splits = sorted({r.results.split for r in sweep.runs})
    if len(splits) > 1:
        raise UserError(
            f"the runs were evaluated on different splits ({', '.join(splits)}); re-evaluate them "
            "on one (python -m sparsify.evaluate RUN_DIR eval.split=...) or report them separately"
        )
    keys = sorted({k for r in sweep.runs for k in r.identity})
    for key in keys:
        if key == "seed" or key in sweep.swept or any(fnmatch.fnmatch(key, v) for v in vary):
            continue
        values = {r.name: _value(r, key) for r in sweep.runs}
        if len(set(values.values())) == 1:
            continue
        if any(
            _uniform_within(sweep, key, g) for g, p in sweep.groups.items() if key.startswith(p)
        ):
            continue
        a, b = _differing_pair(sweep, key)
        raise UserError(
            f"{a.path} and {b.path} differ in {key} ({_value(a, key)} against "
            f"{_value(b, key)}), which is neither swept nor the seed; report them "
            f"separately, or pass --vary {key} to compare them along it"
        )


def _uniform_within(sweep: Sweep, key: str, group: str) -> bool:
    parts: dict[str | None, set[str]] = defaultdict(set)
    for r in sweep.runs:
        parts[sweep.choice(r, group)].add(_value(r, key))
    return None not in parts and all(len(v) == 1 for v in parts.values())


def _differing_pair(sweep: Sweep, key: str) -> tuple[SweepRun, SweepRun]:
    first = sweep.runs[0]
    for r in sweep.runs[1:]:
        if _value(r, key) != _value(first, key):
            return first, r
    raise AssertionError(key)
