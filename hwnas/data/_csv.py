"""The Neural Network Console dataset CSV: a header ``x:image,y:label``, one image file and
class index per row, image paths relative to the CSV file."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hwnas.data._dataset import SPLITS, RawData
from hwnas.data._files import user_path
from hwnas.data._images import IMAGE_EXTENSIONS, is_image_name, read_images
from hwnas.data._sources import register_dataset
from hwnas.errors import DataError

if TYPE_CHECKING:
    from hwnas.config import DataConfig

# nnabla.utils.data_source_implements.CsvDataSource reads this format for nnabla's own
# DataIterator, but it does not fit a loader that must name each bad file: it decodes
# every image at its own size and channel count (no resizing, no grey/RGB conversion)
# inside its row getter, so a truncated image surfaces as a bare exception without the
# row; a row with more or fewer values than the header comes back empty instead of
# failing; and a label is read as a float, a non-numeric one as a file to open. Its
# reading of the header is kept here: NAME[__INDEX][:LABEL] columns, columns whose name
# starts with '#' ignored, a UTF-8 BOM allowed, image paths joined to the CSV's folder
# ('\' read as '/').
_HEADER = "the header must name the columns x:image and y:label"


def load_csv_raw(path: str | None, *, channels: int | None = None, size: int = 16,
                 limit: int = 0) -> RawData:
    """Reads one dataset CSV, or a folder holding ``train.csv`` and optionally ``val.csv``
    and ``test.csv`` (the splits; a missing one is drawn from train).

    Args:
        path: the CSV file, or the folder of split CSVs.
        channels: 1 or 3; None: 1 when every image is grey, else 3.
        size: every image is resized to size x size as it is read.
        limit: ``data.limit``, for the memory check.

    Returns:
        Images in row order (train.csv, val.csv, test.csv), uint8 (N, C, size, size),
        peak 255; ``n_classes`` is the largest label plus one.

    Raises:
        DataError: naming the file (and line): missing file or columns, a row of the
            wrong length, a label that is not a class index, an image that is missing,
            unreadable or truncated, or images that would not fit in memory.
    """
    target = user_path(path, "csv")
    if target.is_dir():
        csvs = [(code, target / f"{name}.csv") for code, name in enumerate(SPLITS)
                if (target / f"{name}.csv").is_file()]
        if not csvs or csvs[0][0] != 0:
            raise DataError(f"{target}: no train.csv; a csv data folder holds train.csv and "
                            "optionally val.csv and test.csv")
    elif target.is_file():
        csvs = [(None, target)]
    else:
        raise DataError(f"{target}: dataset CSV not found")
    files, labels, contexts, given = [], [], [], []
    for code, csv_path in csvs:
        for image, label, context in _rows(csv_path):
            files.append(image)
            labels.append(label)
            contexts.append(context)
            given.append(code)
    if not files:
        raise DataError(f"{target}: no rows; {_HEADER} and each row an image and its label")
    y = np.array(labels, dtype=np.int64)
    if y.max() >= len(y):
        i = int(np.argmax(y))
        raise DataError(f"{files[i]}{contexts[i]}: label {y[i]} is out of range: labels are "
                        f"class indices 0..K-1 and there are only {len(y)} rows")
    x = read_images(files, channels=channels, size=size, limit=limit, where=str(target),
                    contexts=contexts)
    split = None if csvs[0][0] is None else np.array(given, dtype=np.int64)
    return RawData(x=x, y=y, peak=255.0, n_classes=int(y.max()) + 1, split=split)


def _rows(csv_path: Path) -> list[tuple[Path, int, str]]:
    """(image file, label, ' (line N of FILE)') for each row of a dataset CSV."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise DataError(f"{csv_path}: empty; {_HEADER}")
    header = rows[0]
    names = [column.split(":", 1)[0].split("__", 1)[0] for column in header]
    wanted = {}
    for variable in ("x", "y"):
        if names.count(variable) != 1:
            problem = "no" if variable not in names else "more than one"
            raise DataError(f"{csv_path}: {problem} '{variable}' column ({_HEADER}; got "
                            f"{','.join(header)[:200]!r})")
        wanted[variable] = names.index(variable)
    folder = os.path.dirname(str(csv_path))
    out = []
    for line, row in enumerate(rows[1:], start=2):
        context = f" (line {line} of {csv_path})"
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{csv_path}, line {line}: {len(row)} values, the header has "
                            f"{len(header)}")
        value = row[wanted["y"]].strip()
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is None or not number.is_integer():
            raise DataError(f"{csv_path}, line {line}: label {value!r} is not an integer "
                            "class index")
        if number < 0:
            raise DataError(f"{csv_path}, line {line}: label {value} is out of range "
                            "(class indices start at 0)")
        image = Path(os.path.join(folder, row[wanted["x"]].strip().replace("\\", "/")))
        if not is_image_name(image):
            raise DataError(f"{csv_path}, line {line}: {row[wanted['x']]!r} is not an image "
                            f"file ({', '.join(IMAGE_EXTENSIONS)})")
        out.append((image, int(number), context))
    return out


@register_dataset("csv", needs_path=True)
def _load(cfg: DataConfig) -> RawData:
    return load_csv_raw(cfg.path, channels=cfg.channels, size=cfg.image_size, limit=cfg.limit)
