"""Named registries: a model, dataset, method or evaluator is added by decorating its builder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from sparsify.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → entry mapping filled by the `register` decorator.

    `kind` is the word used in error messages ("model", "dataset", ...). An entry may carry
    metadata (keyword arguments of `register`, e.g. a model's classifier head), read by `meta`.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator: register the decorated object under `name` (names are unique), with the
        metadata `meta`."""

        def decorate(entry: T) -> T:
            assert name not in self._entries, f"{self.kind} {name!r} registered twice"
            self._entries[name] = entry
            self._meta[name] = dict(meta)
            return entry

        return decorate

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata `name` was registered with (a UserError for an unknown name)."""
        self.get(name)
        return dict(self._meta[name])

    def get(self, name: str) -> T:
        """The entry called `name`; a UserError listing the valid names if there is none."""
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
