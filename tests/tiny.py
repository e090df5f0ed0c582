"""Tiny settings for whole runs in tests, per method: each method's schema holds only its own
`prune.*` settings (a setting of another method is refused), so the generic override lists are
filtered by the method's schema."""

from __future__ import annotations

import dataclasses

from sparsify.methods import METHODS


def for_method(method: str, overrides: list[str]) -> list[str]:
    """`prune=<method>` and those `overrides` that apply to it: every non-prune override, and the
    `prune.<key>=...` whose key the method's config_class has."""
    fields = {f.name for f in dataclasses.fields(METHODS.get(method).config_class)}
    kept = [
        o
        for o in overrides
        if not o.startswith("prune.") or o.split("=", 1)[0].removeprefix("prune.") in fields
    ]
    return [f"prune={method}", *kept]
