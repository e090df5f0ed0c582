"""The sweep manifest: what one `python -m sparsify -m ...` command swept and which runs it made.

A sweep's jobs land where the same single runs would (docs/run-directory.md), beside any other
run in the sweep folder, so the folder alone cannot say which runs belong to a sweep nor which
settings it varied on purpose. Before the first job starts (after every job validated), the
Hydra callback writes `<sweep dir>/sweeps/<name>/sweep.json`:

    {"name": ..., "overrides": [the command's overrides], "swept": [keys swept],
     "groups": {swept config group: the config prefix it sets}, "jobs": [{"run", "overrides"}]}

`<name>` is `<methods>-<hash>`, the hash over the command's overrides, so the same command finds
its manifest (and its report) again. The sweep report reads it to list the jobs that never
finished and to accept differences in the swept settings only (sweep/collect.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsify.errors import UserError
from sparsify.io import load_json, save_json

MANIFEST = "sweep.json"
SWEEPS = "sweeps"  # the folder of manifests inside a sweep dir
# the name of the -m sweep a job belongs to, set by hydra_callbacks.py before the jobs start so
# that jobs in other processes inherit it: their default wandb group (tracking.py)
SWEEP_ENV = "SPARSIFY_SWEEP"
# config groups whose option, when swept, explains differences in every key under a prefix
GROUP_PREFIX = {"data": "data.", "model": "model.", "prune": "prune.", "train": "train."}
GLOBAL_GROUPS = ("experiment",)  # groups that may set any key


@dataclass
class Job:
    run: str  # the run's name (sparsify/identity.py run_name)
    overrides: list[str]  # this job's overrides, one value per swept key


@dataclass
class Manifest:
    name: str
    overrides: list[str]
    swept: list[str]  # plain keys swept (a list of values or a sweep function)
    groups: dict[str, str]  # swept config group -> the prefix of the keys its option sets
    jobs: list[Job]
    folder: Path  # <sweep dir>/sweeps/<name>

    @property
    def sweep_dir(self) -> Path:
        return self.folder.parent.parent

    def choice(self, run: str, group: str) -> str | None:
        """The option of swept group `group` that the job of run `run` chose."""
        for job in self.jobs:
            if job.run == run:
                for text in job.overrides:
                    key, _, value = text.lstrip("+~").partition("=")
                    if key == group:
                        return value
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "overrides": self.overrides,
            "swept": self.swept,
            "groups": self.groups,
            "jobs": [{"run": j.run, "overrides": j.overrides} for j in self.jobs],
        }


def sweep_name(overrides: list[str], methods: list[str]) -> str:
    """`<methods>-<hash>`: the methods the jobs run (three at most), the hash over `overrides`."""
    digest = hashlib.sha256(json.dumps(sorted(overrides)).encode()).hexdigest()[:8]
    shown = sorted(set(methods))
    label = "+".join(shown[:3]) + ("+more" if len(shown) > 3 else "")
    return f"{label or 'sweep'}-{digest}"


def swept_keys(swept: list[str]) -> tuple[list[str], dict[str, str]]:
    """Split swept override keys into plain keys and config groups with their prefixes."""
    keys, groups = [], {}
    for key in swept:
        key = key.lstrip("+~")
        if key in GROUP_PREFIX:
            groups[key] = GROUP_PREFIX[key]
        elif key in GLOBAL_GROUPS:
            groups[key] = ""
        else:
            keys.append(key)
    return sorted(keys), dict(sorted(groups.items()))


def write_manifest(
    sweep_dir: Path, overrides: list[str], swept: list[str], jobs: list[Job], methods: list[str]
) -> Manifest:
    """Write (atomically, replacing the same command's) the manifest of a sweep into
    `sweep_dir`/sweeps/<name>/sweep.json and return it."""
    keys, groups = swept_keys(swept)
    name = sweep_name(overrides, methods)
    m = Manifest(name, list(overrides), keys, groups, jobs, Path(sweep_dir) / SWEEPS / name)
    save_json(m.to_json(), m.folder / MANIFEST)
    return m


def read_manifest(folder: Path) -> Manifest:
    """The manifest in `folder` (a <sweep dir>/sweeps/<name> folder), checked."""
    path = Path(folder) / MANIFEST
    data = load_json(path, "sweep manifest")
    bad = UserError(f"{path} is not a sparsify sweep manifest")
    if not isinstance(data, dict):
        raise bad
    try:
        jobs = [Job(str(j["run"]), [str(o) for o in j["overrides"]]) for j in data["jobs"]]
        return Manifest(
            name=str(data["name"]),
            overrides=[str(o) for o in data["overrides"]],
            swept=[str(k) for k in data["swept"]],
            groups={str(k): str(v) for k, v in dict(data["groups"]).items()},
            jobs=jobs,
            folder=Path(folder),
        )
    except (KeyError, TypeError, ValueError):
        raise bad from None


def manifests_under(path: Path) -> list[Manifest]:
    """Every sweep manifest at or below `path`, sorted by folder."""
    path = Path(path)
    found = [path] if (path / MANIFEST).is_file() else []
    found += [p.parent for p in sorted(path.rglob(MANIFEST)) if p.parent != path]
    return [read_manifest(f) for f in found]
