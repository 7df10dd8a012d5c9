"""One registry type for networks, condensers and (later) attacks.

``NETS.register("convnet")`` decorates a builder; ``NETS.get("convnet")``
returns it; an unknown name raises ``ValueError`` that lists the known ones.
Adding a method is a decorator, never an edit to an if/elif chain.

Registering a name twice is an error, unless it is the same object again or
the caller says ``replace=True``: a notebook cell that defines and registers
a method can then be re-run while it is being edited.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of builders with clear errors for unknown or duplicate names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items and not replace:
                existing = self._items[name]
                if existing is not item and existing != item:
                    raise ValueError(f"{self.kind} {name!r} is already registered; pass "
                                     f"replace=True to register a new version under that name.")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ValueError(
                f"Unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


__all__ = ["Registry"]
