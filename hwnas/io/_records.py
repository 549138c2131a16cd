"""JSON records read back with their shape checked: a file of the wrong shape is one line
naming the file and the field, never a KeyError later."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hwnas.errors import RunDirError

#: A shape: ``str``, ``int``, ``float`` (any number, not a bool), ``bool``, ``dict``, ``list``,
#: ``object`` (anything), ``None``; ``{"key": shape, "optional?": shape}`` (a mapping with these
#: keys, others allowed); ``{str: shape}`` (a mapping of names to values of one shape);
#: ``[shape]`` (a list of them); a tuple of shapes (any one of them).
Shape = Any

_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
          dict: "a mapping", list: "a list", type(None): "null"}


def _kind(value: Any) -> str:
    """What ``value`` is, in a message (a found bool reads "true/false")."""
    return {**_NAMES, bool: "true/false"}.get(type(value), "a value")


def _describe(shape: Shape) -> str:
    if isinstance(shape, tuple):
        return " or ".join(_describe(s) for s in shape)
    if isinstance(shape, dict):
        return "a mapping"
    if isinstance(shape, list):
        return "a list"
    return _NAMES.get(type(None) if shape is None else shape, "a value")


def _wrong(where: str, value: Any, wanted: str) -> str:
    return (f"'{where}' is " if where else "holds ") + f"{_kind(value)}, not {wanted}"


def shape_error(value: Any, shape: Shape, where: str = "") -> str | None:
    """What in ``value`` does not have ``shape`` (see :data:`Shape`), as a short phrase naming
    the field (``'costs.params' is a string, not a number``); None when it fits."""
    if isinstance(shape, tuple):
        if all(shape_error(value, s, where) for s in shape):
            return _wrong(where, value, _describe(shape))
        return None
    if shape is object:
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return _wrong(where, value, "a mapping")
        if len(shape) == 1 and next(iter(shape)) is str:
            inner = shape[str]
            for key, item in value.items():
                error = shape_error(item, inner, f"{where}.{key}" if where else str(key))
                if error:
                    return error
            return None
        for key, inner in shape.items():
            name = key.rstrip("?")
            full = f"{where}.{name}" if where else name
            if name not in value:
                if key.endswith("?"):
                    continue
                return f"'{full}' missing"
            error = shape_error(value[name], inner, full)
            if error:
                return error
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return _wrong(where, value, "a list")
        for i, item in enumerate(value):
            error = shape_error(item, shape[0], f"{where}[{i}]")
            if error:
                return error
        return None
    if shape is None:
        ok = value is None
    elif shape is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif shape is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, shape)
    return None if ok else _wrong(where, value, _describe(shape))


def read_json_record(path: str | Path, shape: Shape, *, remedy: str = "") -> Any:
    """The JSON in ``path``, checked against ``shape``; None when the file does not exist.

    Raises:
        RunDirError: the file is unreadable, no JSON, or of another shape; one line naming
            ``path`` and what is wrong, then ``remedy`` when given.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path} is unreadable ({exc})" + (f"; {remedy}" if remedy else "")) \
            from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        problem = f"not JSON ({exc})"
    else:
        problem = shape_error(data, shape)
        if problem is None:
            return data
    raise RunDirError(f"{path} is damaged: {problem}" + (f"; {remedy}" if remedy else ""))
