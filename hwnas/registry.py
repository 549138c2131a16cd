"""Registry: the named implementations of one pluggable kind (spaces, strategies, datasets, ...),
and the one place that reads a spec (a name, ``module:attr``, ``file.py:attr``, an entry point)."""
from __future__ import annotations

import fnmatch
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import pkgutil
import reprlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar, overload

T = TypeVar("T")

__all__ = ["Registry", "absolute_spec", "import_modules", "is_file_spec", "subclass_of"]

_SHORT = reprlib.Repr()
_SHORT.maxstring = 160


def is_file_spec(spec: str) -> bool:
    """Whether ``spec`` names a Python file (``./my_space.py:MySpace``, ``/abs/dir/x.py:C``)
    rather than a registered name, an entry point or an importable ``module:attr``."""
    where = spec.rpartition(":")[0]
    return bool(where) and (where.endswith(".py") or "/" in where or os.sep in where)


def absolute_spec(spec: str, base: str | Path | None) -> str:
    """``spec`` with a relative file path made absolute against ``base`` (the directory of
    the config that gives it; None: the working directory); any other spec unchanged.

    A run directory stores its config with file specs made absolute, so that a later
    command, a worker or a reopened run finds the same file wherever it runs from.
    """
    if not isinstance(spec, str) or not is_file_spec(spec):
        return spec
    where, _, attr = spec.rpartition(":")
    path = Path(where).expanduser()
    if not path.is_absolute():
        path = Path(base if base is not None else os.getcwd()) / path
    return f"{os.path.normpath(path.absolute())}:{attr}"


def subclass_of(base: type) -> Callable[[object], type]:
    """An ``accept`` for a registry of classes: a concrete subclass of ``base``, else TypeError."""
    def accept(obj: object) -> type:
        if not (inspect.isclass(obj) and issubclass(obj, base)):
            raise TypeError(f"a {base.__name__} subclass")
        if inspect.isabstract(obj):
            raise TypeError(f"a {base.__name__} subclass that implements "
                            + ", ".join(sorted(obj.__abstractmethods__)))
        return obj
    return accept


def _describe(obj: object) -> str:
    """What ``obj`` is, for a message: ``the class 'Foo'``, ``a function``, ``an int``."""
    if inspect.isclass(obj):
        return f"the class {obj.__name__!r}"
    if inspect.ismodule(obj):
        return "a module"
    if inspect.isroutine(obj):
        return "a function"
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


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

    ``resolve`` also reads the specs a config may give instead of a registered
    name (``module:attr``, ``path/to/file.py:attr``, the name of an installed
    package's entry point in ``group``), checking what it loads with ``accept``.

    Args:
        kind: what an entry is, in the words of messages (``"dataset"``, ``"search space"``).
        sort: list names sorted; otherwise in registration order (a default registered first).
        group: the entry-point group installed packages add entries through
            (``hwnas.spaces``); None: no entry points.
        accept: turns a loaded object into an entry (or returns it unchanged); raises
            ``TypeError`` whose message says what an entry must be (``a BaseSearchSpace
            subclass``). None: anything is accepted.
    """

    def __init__(self, kind: str, *, sort: bool = False, group: str | None = None,
                 accept: Callable[[object], T] | None = None) -> None:
        if not kind:
            raise ValueError("a registry needs the name of its kind")
        self.kind = kind
        self.sort = sort
        self.group = group
        self._accept = accept
        self._entries: dict[str, T] = {}
        self._loaded: dict[str, T] = {}  # spec -> entry, for specs that are not registered names

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
        """The message for an unknown ``name``: it and every known name (installed entry
        points' included)."""
        known = self.names() + [n for n in self.entry_point_names() if n not in self._entries]
        return f"unknown {self.kind} {_SHORT.repr(name)}; known: {', '.join(known)}"

    def entry_point_names(self) -> list[str]:
        """The names installed packages offer in this registry's entry-point group, sorted."""
        if self.group is None:
            return []
        return sorted({ep.name for ep in importlib.metadata.entry_points(group=self.group)})

    def resolve(self, spec: str, *, base: str | Path | None = None) -> T:
        """The entry a config's ``spec`` stands for, loading it if need be.

        A spec is, in this order: a registered name; ``package.module:attr`` (the
        module is imported, ``attr`` may be dotted); ``path/to/file.py:attr`` (the
        file is run as a module of its own, once per process; a relative path is
        relative to ``base``); or the name of an entry point that an installed
        package declares in ``group``. What a spec loads is checked by ``accept``
        and kept, so a second ``resolve`` returns the same object.

        Args:
            spec: the name or spec.
            base: the directory a relative file path is relative to (the config
                file's); None: the working directory.

        Raises:
            ValueError: one line naming the spec and why it cannot be loaded: an
                unknown name (listing the known ones), a module or file that is not
                there, an attribute it lacks, an object of the wrong kind, or the
                exception (its first line) that importing the module raised.
        """
        if spec in self:
            return self._entries[spec]
        if not isinstance(spec, str) or not spec:
            raise ValueError(self.unknown(spec))
        key = absolute_spec(spec, base)
        if key in self._loaded:
            return self._loaded[key]
        if ":" in spec:
            where, _, attr = spec.rpartition(":")
            if not where or not all(part.isidentifier() for part in attr.split(".")):
                raise ValueError(f"{self.kind} {_SHORT.repr(spec)}: expected a registered name, "
                                 "MODULE:ATTRIBUTE or path/to/file.py:ATTRIBUTE")
            module = (self._run_file(spec, key.rpartition(":")[0]) if is_file_spec(spec)
                      else self._import(spec, where))
            obj: object = module
            for part in attr.split("."):
                if not hasattr(obj, part):
                    raise ValueError(f"cannot load {self.kind} {_SHORT.repr(spec)}: "
                                     f"{where} has no attribute {part!r}")
                obj = getattr(obj, part)
        else:
            found = [ep for ep in importlib.metadata.entry_points(group=self.group)
                     if ep.name == spec] if self.group else []
            if not found:
                raise ValueError(self.unknown(spec))
            try:
                obj = found[0].load()
            except (Exception, SystemExit) as exc:  # the package's code: any failure is its
                raise ValueError(f"cannot load {self.kind} {_SHORT.repr(spec)} (entry point "
                                 f"{found[0].value} of {self.group}): {_first_line(exc)}") from None
        self._loaded[key] = self._checked(spec, obj)
        return self._loaded[key]

    def _checked(self, spec: str, obj: object) -> T:
        if self._accept is None:
            return obj  # type: ignore[return-value]
        try:
            return self._accept(obj)
        except TypeError as exc:
            raise ValueError(f"{self.kind} {_SHORT.repr(spec)} is {_describe(obj)}, "
                             f"not {exc}") from None

    def _import(self, spec: str, module: str):
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
                raise ValueError(f"cannot load {self.kind} {_SHORT.repr(spec)}: no module "
                                 f"named {exc.name!r} (is it installed, or on PYTHONPATH?)"
                                 ) from None
            raise ValueError(f"cannot load {self.kind} {_SHORT.repr(spec)}: importing "
                             f"{module} raised {_first_line(exc)}") from None
        except (Exception, SystemExit) as exc:  # the user's module: any failure is theirs
            raise ValueError(f"cannot load {self.kind} {_SHORT.repr(spec)}: importing "
                             f"{module} raised {_first_line(exc)}") from None

    def _run_file(self, spec: str, path: str):
        """The module that the file at ``path`` (absolute) defines, run once per process."""
        digest = hashlib.sha1(path.encode()).hexdigest()[:10]
        stem = "".join(c if c.isalnum() else "_" for c in Path(path).stem)
        name = f"hwnas_file_{stem}_{digest}"
        if name in sys.modules:
            return sys.modules[name]
        if not os.path.isfile(path):
            raise ValueError(f"cannot load {self.kind} {_SHORT.repr(spec)}: no such file "
                             f"{path}")
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ValueError(f"cannot load {self.kind} {_SHORT.repr(spec)}: {path} is not a "
                             "Python file (.py)")
        module = importlib.util.module_from_spec(loader_spec)
        # In sys.modules while it runs, as for any import: dataclasses and typing look it up.
        sys.modules[name] = module
        # No __pycache__ beside the file: a config's directory may be shared or read-only.
        writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
        try:
            loader_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # the user's file: any failure is theirs
            del sys.modules[name]
            raise ValueError(f"cannot load {self.kind} {_SHORT.repr(spec)}: running {path} "
                             f"raised {_first_line(exc)}") from None
        finally:
            sys.dont_write_bytecode = writes_bytecode
        return module

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
