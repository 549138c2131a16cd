"""The user's images in a folder: a subfolder per class, or train/, val/, test/ folders of those."""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hwnas.data._dataset import SPLITS, RawData
from hwnas.data._files import user_path
from hwnas.data._images import is_image_name, read_images
from hwnas.data._sources import register_dataset
from hwnas.errors import DataError

if TYPE_CHECKING:
    from hwnas.config import DataConfig

_LAYOUT = ("expected one subfolder of images per class, or train/ (and val/, test/) "
           "folders of those")


def load_folder_raw(path: str | None, *, channels: int | None = None, size: int = 16,
                    limit: int = 0) -> RawData:
    """Reads a folder of class folders.

    The class names are the subfolder names, sorted; label k is the k-th. A class
    folder's images may lie in nested folders; symbolic links are followed, and one that
    leads back to a folder above it is refused. When the folder's subfolders are
    ``train``, optionally with ``val`` and ``test`` (nothing else), each is a folder of
    class folders and gives its split (a missing one is drawn from train, so
    ``data.val_fraction`` and ``data.test_fraction`` apply only to what is drawn).
    Files that are not images (by extension: ``IMAGE_EXTENSIONS``) and files outside a
    class folder are skipped, and their count is noted once on stderr.

    Args:
        path: the folder.
        channels: 1 or 3; None: 1 when every image is grey, else 3.
        size: every image is resized to size x size as it is read.
        limit: ``data.limit``, for the memory check.

    Returns:
        Images in the folder's order (split folders train, val, test; classes by name;
        files by path), uint8 (N, C, size, size), peak 255.

    Raises:
        DataError: the folder is missing or holds no class folders, a class folder holds
            no image, an image is unreadable or truncated, a symbolic link loops, or the
            images would not fit in memory.
    """
    root = user_path(path, "folder")
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "not found"
        raise DataError(f"{root}: image folder {what}; {_LAYOUT}")
    top, skipped = _entries(root)
    dirs = [p for p, is_dir in top if is_dir]
    names = {p.name for p in dirs}
    if "train" in names and names <= set(SPLITS):
        parts = sorted((SPLITS.index(p.name), p) for p in dirs)
        skipped += [p for p, is_dir in top if not is_dir]
    else:
        parts = [(None, root)]
    classes: dict[int | None, list[Path]] = {}
    for code, folder in parts:
        entries, extra = _entries(folder) if folder != root else (top, [])
        skipped += extra + [p for p, is_dir in entries if not is_dir]
        classes[code] = [p for p, is_dir in entries if is_dir]
        if not classes[code]:
            raise DataError(f"{folder}: no class folders; {_LAYOUT}")
    class_names = sorted({p.name for folders in classes.values() for p in folders})
    # A link to the folder or to any folder above it (up to /) would walk back into itself.
    outer = frozenset(_identity(p) for p in (root, *root.resolve().parents))
    files, labels, given = [], [], []
    for code, folders in classes.items():
        for folder in folders:
            found = list(_walk(folder, outer | {_identity(folder.parent), _identity(folder)}))
            images = [p for p, regular in found if regular and is_image_name(p)]
            skipped += [p for p, regular in found if not (regular and is_image_name(p))]
            if not images:
                raise DataError(f"{folder}: no images in this class folder (extensions "
                                "png, jpg, jpeg, bmp, gif, tif, tiff)")
            files += images
            labels += [class_names.index(folder.name)] * len(images)
            given += [code] * len(images)
    notes = ()
    if skipped:
        kinds = sorted({p.suffix.lower() or p.name for p in skipped})[:5]
        notes = (f"{root}: skipped {len(skipped)} files that are not images in a class "
                 f"folder ({', '.join(kinds)})",)
    x = read_images(files, channels=channels, size=size, limit=limit, where=str(root))
    split = None if parts[0][0] is None else np.array(given, dtype=np.int64)
    return RawData(x=x, y=np.array(labels, dtype=np.int64), peak=255.0,
                   n_classes=len(class_names), split=split, class_names=tuple(class_names),
                   notes=notes)


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _entries(folder: Path) -> tuple[list[tuple[Path, bool]], list[Path]]:
    """The folder's directories and regular files (links followed), by name: ``(path,
    is_dir)``; and what is neither (sockets, pipes: never opened, only counted)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise DataError(f"{folder}: cannot read: {exc.strerror or exc}") from None
    entries, others = [], []
    for name in names:
        path = folder / name
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise DataError(f"{path}: symbolic link loop (it resolves to itself)") from None
            raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
            entries.append((path, stat.S_ISDIR(mode)))
        else:
            others.append(path)
    return entries, others


def _walk(folder: Path, above: frozenset[tuple[int, int]]) -> Iterator[tuple[Path, bool]]:
    """Every file under ``folder``, by path, with whether it is a regular file (only those
    are opened); ``above`` identifies the folders on the way down, so that a link back to
    one of them is a loop, not an endless walk."""
    entries, others = _entries(folder)
    yield from ((p, False) for p in others)
    for path, is_dir in entries:
        if not is_dir:
            yield path, True
            continue
        identity = _identity(path)
        if identity in above:
            raise DataError(f"{path}: symbolic link loop: it leads back to a folder above it")
        yield from _walk(path, above | {identity})


@register_dataset("folder", needs_path=True)
def _load(cfg: DataConfig) -> RawData:
    return load_folder_raw(cfg.path, channels=cfg.channels, size=cfg.image_size, limit=cfg.limit)
