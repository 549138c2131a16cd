"""Files several processes share: atomic writes and the temporaries they leave when killed,
JSON records read back with their shape checked, and file locks."""
from hwnas.io._atomic import (LEGACY_AGE_S, atomic_write, atomic_write_json, atomic_write_text,
                              remove_stale_temporaries, temporary_prefix)
from hwnas.io._lock import FileLock, LockHeld
from hwnas.io._records import Shape, read_json_record, shape_error

__all__ = ["FileLock", "LEGACY_AGE_S", "LockHeld", "Shape", "atomic_write", "atomic_write_json",
           "atomic_write_text", "read_json_record", "remove_stale_temporaries", "shape_error",
           "temporary_prefix"]
