"""Sweep jobs that ended with a user error (missing data files, a setting only the job could
check): recorded so the sweep goes on, says at its end which jobs failed and why, and the sweep
report lists them.

A failed job writes `<sweep dir>/sweeps/failed/<run name>.json` ({"run", "overrides",
"message"}) instead of ending the process: under the basic launcher an exit would end the whole
sweep, and under submitit it becomes an `UncompletedJobError` traceback with the message buried
in the job's log. The same job finishing later (the command re-run after a fix) removes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from sparsify.io import save_json
from sparsify.sweep.manifest import MANIFEST, SWEEPS, Job, Manifest

FAILED = "failed"


def failure_path(sweep_dir: Path, run: str) -> Path:
    return Path(sweep_dir) / SWEEPS / FAILED / f"{run}.json"


def record_failure(sweep_dir: Path, run: str, overrides: list[str], message: str) -> None:
    save_json(
        {"run": run, "overrides": list(overrides), "message": message},
        failure_path(sweep_dir, run),
    )


def clear_failure(sweep_dir: Path, run: str) -> None:
    failure_path(sweep_dir, run).unlink(missing_ok=True)


def read_failure(sweep_dir: Path, run: str) -> Optional[str]:
    """The message a failed job of run `run` recorded, or None (no record, or not readable)."""
    try:
        data = json.loads(failure_path(sweep_dir, run).read_text())
        return str(data["message"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def failed_jobs(manifest: Manifest) -> list[tuple[Job, str]]:
    """(job, message) for every job of `manifest` that recorded a failure during this command:
    a record written after the manifest (which the command writes before its first job). A job
    that ran and finished removed its record; one that failed over an earlier finished run (a
    new evaluator's error) counts although results.json exists."""
    started = (manifest.folder / MANIFEST).stat().st_mtime_ns
    out = []
    for job in manifest.jobs:
        path = failure_path(manifest.sweep_dir, job.run)
        message = read_failure(manifest.sweep_dir, job.run)
        if message is not None and path.stat().st_mtime_ns >= started:
            out.append((job, message))
    return out
