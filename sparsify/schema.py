"""The whole config's schema, built from the registries, as classes importable by name.

Hydra stores the schema in its ConfigStore; launchers that run jobs in other processes
(submitit, joblib) pickle that store with every job. A class made by make_dataclass inside a
function has no importable name, so it would be pickled by value, and its fields' MISSING
sentinel comes back as a different object in the job: the job's config then fails to compose.
Kept here as module attributes, `sparsify.schema.Schema` and `EvalSchema` are pickled by
reference and rebuilt identically in the job by importing this module. `current()` rebuilds
them when an evaluator with settings was registered since (a plugin, a test).
"""

from __future__ import annotations

from dataclasses import make_dataclass

from omegaconf import MISSING

from sparsify.config import Config, eval_schema, eval_settings


def _build(settings: tuple[tuple[str, type], ...]) -> tuple[type, type]:
    eval_cls = eval_schema(settings)
    eval_cls.__module__ = __name__
    schema = make_dataclass("Schema", [("eval", eval_cls, MISSING)], bases=(Config,))
    schema.__module__ = __name__
    return eval_cls, schema


_built_for = eval_settings()
EvalSchema, Schema = _build(_built_for)


def current() -> type:
    """The schema for the evaluators registered now (rebuilt, and rebound here, if they
    changed)."""
    global EvalSchema, Schema, _built_for
    now = eval_settings()
    if now != _built_for:
        EvalSchema, Schema = _build(now)
        _built_for = now
    return Schema
