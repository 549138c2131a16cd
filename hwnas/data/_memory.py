"""The memory a data set takes once loaded, checked against what the machine has free."""
from __future__ import annotations

import psutil

from hwnas.errors import DataError

#: Bytes of one pixel of a split once scaled (float32).
FLOAT_BYTES = 4
#: Pixels the loader converts, resizes or sums at a time (2048 CIFAR-sized images).
CHUNK_PIXELS = 2048 * 3 * 32 * 32
#: The loader's working space: the float32 chunk it converts and two float64 copies of a
#: chunk it sums per channel (measured: 10,000 RGB images at 32 x 32 raised the peak RSS by
#: 276 MiB; ``footprint`` says 290 MiB).
WORKING_BYTES = 3 * 8 * CHUNK_PIXELS


def available_bytes() -> int:
    """Memory that can be allocated now without swapping (psutil's ``available``,
    MemAvailable of /proc/meminfo on Linux)."""
    return int(psutil.virtual_memory().available)


def footprint(n: int, channels: int, size: int, limit: int, pool_bytes: int) -> int:
    """Bytes a data set takes: its uint8 pool, the float32 splits of the examples used and
    the loader's working space (``WORKING_BYTES``, about 150 MB).

    Args:
        n: examples in the pool.
        channels: channels of a network input.
        size: side of a network input.
        limit: ``data.limit`` (0: every example is used).
        pool_bytes: the pool as the source holds it (N x C x S x S for 8-bit images).
    """
    used = n if limit <= 0 else min(n, limit)
    return pool_bytes + used * channels * size * size * FLOAT_BYTES + WORKING_BYTES


def check_fits(where: str, n: int, channels: int, size: int, limit: int,
               pool_bytes: int | None = None) -> None:
    """Refuses a data set that would not fit in the memory available, before it is read.

    Args:
        where: names the data in the message.
        n, channels, size, limit: as for ``footprint``.
        pool_bytes: the source's pool; N x C x S x S (uint8) when None.

    Raises:
        DataError: naming the bytes needed and the bytes available.
    """
    pool = n * channels * size * size if pool_bytes is None else pool_bytes
    need = footprint(n, channels, size, limit, pool)
    free = available_bytes()
    if need > free:
        raise DataError(f"{where}: {n} images of {channels}x{size}x{size} need {need:,} bytes "
                        f"({need / 2**30:.1f} GiB: {pool:,} held as uint8, "
                        f"{need - pool - WORKING_BYTES:,} as float32 splits, {WORKING_BYTES:,} "
                        f"to convert them) but only {free:,} bytes of memory are available; set "
                        "data.limit or a smaller data.image_size")
