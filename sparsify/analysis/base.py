"""Analyses over a study: the runs that share a study key (the same training but for the seed,
sparsify/identity.py) and were evaluated on one split, such as statistics over seeds, comparisons
of pruned and dense populations.

An analysis is a function `(study: Study) -> dict` (JSON-able) registered with `@analysis(name)`.
`run_analysis` caches its result in `<out>/analysis/<study>/<name>-<hash>/result.json`, the hash
covering the study's runs and the content of their results.json, so a result is reused until a
run is added, removed or re-evaluated (the existence rule of the evaluation stage, one level up).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsify.errors import UserError
from sparsify.identity import study_key
from sparsify.io import load_json, save_json
from sparsify.records import RunResults
from sparsify.registry import Registry
from sparsify.rundir import RunDir


@dataclass
class Run:
    path: Path
    results: RunResults
    digest: str  # sha256 of its results.json


@dataclass
class Study:
    key: str  # the study key: the training identity without the seed
    split: str  # the split every run's metrics are on
    runs: list[Run] = field(default_factory=list)  # ordered by seed

    @property
    def name(self) -> str:
        return f"{self.key} on {self.split}"

    @property
    def seeds(self) -> list[int]:
        return [r.results.seed for r in self.runs]


Analysis = Callable[[Study], dict[str, Any]]
ANALYSES: Registry[Analysis] = Registry("analysis")


def analysis(name: str) -> Callable[[Analysis], Analysis]:
    """Decorator: register an analysis over a study."""
    return ANALYSES.register(name)


def run_dirs(paths: Iterable[Path]) -> list[Path]:
    """The run directories at or below `paths` (folders holding a config.yaml), sorted."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path} does not exist")
        if (path / "config.yaml").is_file():
            found.add(path)
        found.update(p.parent for p in path.rglob("config.yaml") if (p.parent / "levels").is_dir())
    return sorted(found)


def collect(paths: Iterable[Path]) -> tuple[dict[str, Study], list[tuple[Path, str]]]:
    """The studies of the finished runs under `paths`, keyed by `Study.name`: runs that share a
    study key and were evaluated on the same split. Also the runs left out, with why: no
    results.json yet (unfinished or failed), or a copy of a run already in its study (the same
    run name: a copied folder is not another seed)."""
    studies: dict[str, Study] = {}
    left_out: list[tuple[Path, str]] = []
    seen: dict[tuple[str, str], Path] = {}
    for path in run_dirs(paths):
        rd = RunDir(path)
        if not rd.results_path.exists():
            left_out.append((path, "no results.json: unfinished or failed"))
            continue
        results = rd.load_results()
        key = results.study or study_key(rd.saved_config())
        study = studies.setdefault(f"{key} on {results.split}", Study(key, results.split))
        run_id = results.run or f"{path.name}"
        if (study.name, run_id) in seen:
            left_out.append((path, f"a copy of {seen[study.name, run_id]} (run {run_id})"))
            continue
        seen[study.name, run_id] = path
        digest = hashlib.sha256(rd.results_path.read_bytes()).hexdigest()
        study.runs.append(Run(path, results, digest))
    for study in studies.values():
        study.runs.sort(key=lambda r: (r.results.seed, str(r.path)))
    return dict(sorted(studies.items())), left_out


def run_analysis(name: str, study: Study, out: Path) -> dict[str, Any]:
    """The result of analysis `name` over `study`, from its cache under `out` if present."""
    fn = ANALYSES.get(name)
    members = sorted((r.results.run or r.path.name, r.digest) for r in study.runs)
    digest = hashlib.sha256(json.dumps(members).encode()).hexdigest()[:8]
    path = Path(out) / "analysis" / study.key / f"{name}-{digest}" / "result.json"
    if path.exists():
        return load_json(path, "analysis result")
    result = {
        "analysis": name,
        "study": study.key,
        "split": study.split,
        "runs": [m for m, _ in members],
        **fn(study),
    }
    save_json(result, path)
    return result
