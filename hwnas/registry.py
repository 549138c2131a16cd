"""Registry: the named implementations of one pluggable kind (spaces, strategies, datasets, ...)."""
from __future__ import annotations

import fnmatch
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

T = TypeVar("T")

__all__ = ["Registry", "import_modules"]


def import_modules(package: str) -> list[str]:
    """Imports every module in the folder of ``package`` not imported yet, in name order.

    A package whose modules register their own entries (a dataset, a learner, a
    search space, a strategy) calls this last in its ``__init__.py``: adding an
    entry is then adding its module, with nothing else to edit. The modules the
    package imported by name before keep their place in the registry's order.
    Subpackages are left alone.

    Returns:
        the names of the modules imported now.
    """
    path = getattr(sys.modules[package], "__path__", None)
    if path is None:
        raise ValueError(f"{package} is a module, not a package")
    found = []
    for info in sorted(pkgutil.iter_modules(path), key=lambda info: info.name):
        name = f"{package}.{info.name}"
        if not info.ispkg and name not in sys.modules:
            importlib.import_module(name)
            found.append(name)
    return found


class Registry(Generic[T]):
    """Names -> implementations of one kind; the single source of the names a config may use.

    A name is registered once (a second registration is refused, so a typo
    cannot silently replace a built-in); an unknown name raises ``ValueError``
    listing every known one, in the order ``names()`` gives. Registration is
    meant to happen at import time, from the module that defines the entry; the
    registry is not locked for concurrent registration.

    Args:
        kind: what an entry is, in the words of messages (``"dataset"``, ``"search space"``).
        sort: list names sorted; otherwise in registration order (a default registered first).
    """

    def __init__(self, kind: str, *, sort: bool = False) -> None:
        if not kind:
            raise ValueError("a registry needs the name of its kind")
        self.kind = kind
        self.sort = sort
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None) -> T | Callable[[T], T]:
        """Registers ``obj`` under ``name``; without ``obj``, a decorator that registers its target.

        Args:
            name: the name configs and the command line use.
            obj: the entry (a class, a factory, a function).

        Returns:
            ``obj`` (or the decorator, which returns its target unchanged).

        Raises:
            ValueError: ``name`` is empty, not a string, or already registered.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if obj is None:
            return lambda target: self.register(name, target)
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj
        return obj

    def unregister(self, name: str) -> T:
        """Removes ``name`` and returns its entry (a plug-in withdrawn, a test cleaned up).

        Raises:
            ValueError: ``name`` is not registered.
        """
        entry = self.get(name)
        del self._entries[name]
        return entry

    def get(self, name: str) -> T:
        """The entry registered as ``name``.

        Raises:
            ValueError: no entry has that name; the message lists the known ones.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name from YAML
            raise ValueError(self.unknown(name)) from None

    def unknown(self, name: object) -> str:
        """The message for an unknown ``name``: it and every known name."""
        return f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard (``*``, ``?``, ``[abc]``)."""
        names = [n for n in self._entries if fnmatch.fnmatchcase(n, pattern)]
        return sorted(names) if self.sort else names

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs in the order of ``names()``."""
        return [(n, self._entries[n]) for n in self.names()]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
