"""Name -> class registries that fail helpfully (after lm-evaluation-harness).

    from obliviate.registry import register_method, METHODS

    @register_method("npo")
    class NPO: ...

    METHODS.get("npo")        # -> NPO
    METHODS.get("nop")        # ObliviateError: unknown method 'nop'; did you mean 'npo'? known: ...

A name is registered in the file that defines the class, never in a central list.
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from obliviate.errors import ObliviateError

T = TypeVar("T")


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def did_you_mean(word: str, candidates: list[str]) -> str | None:
    """The closest candidate to `word`, or None when nothing is close."""
    close = difflib.get_close_matches(word, candidates, n=1)
    return close[0] if close else None


class Registry(Generic[T]):
    """Maps names to objects (usually classes) of one kind, e.g. Registry("method")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@registry.register("name")` adds the decorated object under `name`."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"register a {self.kind} with a name: @register_{self.kind}(\"my_name\"), "
                            f"got {name!r}")

        def decorator(obj: T) -> T:
            existing = self._items.get(name)
            if existing is not None and existing is not obj:
                raise ObliviateError(f"duplicate {self.kind} name '{name}': already registered by "
                                     f"{_qualname(existing)}, cannot register {_qualname(obj)}; pick another name")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            pass
        known = self.names()
        if not known:
            raise ObliviateError(f"unknown {self.kind} '{name}'; no {self.kind}s are registered")
        guess = did_you_mean(str(name), known)
        hint = f"; did you mean '{guess}'?" if guess else ";"
        raise ObliviateError(f"unknown {self.kind} '{name}'{hint} known: {', '.join(known)}")

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"


METHODS: Registry[type] = Registry("method")
register_method = METHODS.register
