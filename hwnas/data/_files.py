"""Reading dataset files, with every failure turned into a DataError that names the file."""
from __future__ import annotations

import gzip
import os
import re
import zlib
from pathlib import Path
from typing import Optional

from hwnas.errors import DataError


def user_path(path: Optional[str], dataset: str) -> Path:
    """Returns the user's path to a dataset copy, ``~`` and environment variables expanded.

    A config may say ``path: $HWNAS_CIFAR10``: the run directory then records
    the variable, and each machine points it at its own copy.

    Args:
        path: the configured path.
        dataset: the dataset's name, for the message when the path is missing.

    Raises:
        DataError: no path is configured, or it names an unset variable.
    """
    if not path:
        raise DataError(f"dataset {dataset!r} needs the path of your local copy (data.path)")
    expanded = os.path.expandvars(path)
    unset = re.search(r"\$\{?(\w+)", expanded)
    if unset:
        raise DataError(f"data.path {path!r} names ${unset.group(1)}, which is not set; point "
                        f"it at your local copy of {dataset} (export {unset.group(1)}=PATH)")
    return Path(expanded).expanduser()


def read_bytes(path: Path) -> bytes:
    """Reads a file whole, decompressing it when its name ends in ``.gz``.

    Raises:
        DataError: the file is missing, unreadable or not valid gzip.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if path.name.endswith(".gz"):
        return gunzip(data, str(path))
    return data


def gunzip(data: bytes, where: str) -> bytes:
    """Decompresses gzip data.

    Args:
        data: the compressed bytes.
        where: names the file in the error message.

    Raises:
        DataError: the data is not valid or is truncated gzip.
    """
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{where}: not a valid gzip file ({exc or 'truncated'})") from None
