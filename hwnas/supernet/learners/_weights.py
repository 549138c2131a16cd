"""A supernet's weights and architecture parameters in one .h5 file; few-shot copies in one .npz."""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import nnabla as nn
import numpy as np

from hwnas.io import atomic_write
from hwnas.errors import RunDirError
from hwnas.supernet._space import Supernet
from hwnas.supernet._split import SplitWeights

#: The prefix of architecture parameters in the file.
ALPHA = "alpha/"


def _stored(supernet: Supernet) -> dict[str, nn.Variable]:
    """Network weights and, under ``alpha/``, architecture parameters."""
    return {**supernet.net_parameters(),
            **{ALPHA + k: v for k, v in supernet.arch_parameters().items()}}


def fingerprint(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of named arrays (names, shapes, float32 values): what a weights file holds."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        values = np.ascontiguousarray(arrays[name], dtype=np.float32)
        digest.update(f"{name}{values.shape}".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def save_weights(supernet: Supernet, path: str | Path) -> str:
    """Writes every network weight and architecture parameter to an nnabla .h5 file, atomically.

    Returns:
        The :func:`fingerprint` of what was written; a checkpoint records it, so that
        :func:`load_weights` can tell this file from another training's.
    """
    params = _stored(supernet)
    atomic_write(path, lambda tmp: nn.save_parameters(tmp, params=params))
    return fingerprint({k: v.d for k, v in params.items()})


def load_weights(supernet: Supernet, path: str | Path, *, expected: str | None = None,
                 recorded_in: str | Path | None = None) -> None:
    """Loads weights saved by ``save_weights``; a truncated file or another space's is an error.

    Args:
        expected: the :func:`fingerprint` ``save_weights`` returned for this file (None: not
            checked, as for a run of an hwnas that recorded none).
        recorded_in: the file that recorded ``expected``, for the message.

    Raises:
        RunDirError: the file is missing, unreadable, of another space, or holds other
            weights than ``expected`` (another training's file of the same shapes).
    """
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path}: no trained supernet; run 'hwnas train' first")
    params = _stored(supernet)
    try:
        import h5py
        with h5py.File(path, "r") as f:
            stored = {}
            f.visititems(lambda name, obj: stored.__setitem__(name, obj[()])
                         if isinstance(obj, h5py.Dataset) else None)
    except Exception as exc:
        raise RunDirError(f"{path}: unreadable or truncated weights file ({exc})") from None
    if set(stored) != set(params):
        missing, extra = sorted(set(params) - set(stored)), sorted(set(stored) - set(params))
        what = (f"lacks {len(missing)} weights of this space, e.g. {missing[0]}" if missing else
                f"holds {len(extra)} weights this space lacks, e.g. {extra[0]}")
        raise RunDirError(f"{path}: weights are for a different search space (the file {what}); "
                          "retrain with 'hwnas train'")
    for key, param in params.items():
        if stored[key].shape != param.shape:
            raise RunDirError(f"{path}: weight {key} has shape {stored[key].shape}, "
                              f"expected {param.shape}")
    if expected is not None and fingerprint(stored) != expected:
        raise RunDirError(f"{path} does not hold the weights of the training recorded in "
                          f"{recorded_in} (another training's file?); put this run's "
                          f"{path.name} back, or delete both to train again")
    for key, param in params.items():
        param.d = stored[key]


#: The entry of a split weights file that names the choice it is split on.
SPLIT_CHOICE = "choice"


def save_split(split: SplitWeights, path: str | Path) -> str:
    """Writes a few-shot supernet's copies (those trained so far) to one .npz file, atomically.

    Returns:
        The :func:`fingerprint` of the copies; a checkpoint records it, so that
        :func:`load_split` can tell this file from another training's.
    """
    arrays = split.arrays()
    atomic_write(path, lambda tmp: np.savez(tmp, **{SPLIT_CHOICE: np.array(split.choice)},
                                            **arrays))
    return fingerprint(arrays)


def load_split(supernet: Supernet, path: str | Path, *, choice: str, options: tuple[str, ...],
               expected: str | None, recorded_in: str | Path) -> SplitWeights:
    """The copies ``save_split`` wrote, one per option of ``choice`` (each checked against
    ``supernet``'s weights) and, all together, against the fingerprint ``expected``.

    Args:
        options: the options there must be a copy of (the split's options trained so far).
        recorded_in: the checkpoint that recorded ``expected``, for the message.

    Raises:
        RunDirError: the file is missing, unreadable, split on another choice, lacks a copy
            or holds other weights than ``expected``.
    """
    path = Path(path)
    again = f"put this run's {path.name} back, or delete it and {Path(recorded_in).name} to " \
            "train again"
    if not path.exists():
        raise RunDirError(f"{path}: the few-shot supernet's weights are missing; {again}")
    try:
        with np.load(path) as stored:
            arrays = {k: stored[k] for k in stored.files}
    except Exception as exc:
        raise RunDirError(f"{path}: unreadable or truncated split weights file ({exc}); "
                          f"{again}") from None
    held = str(arrays.pop(SPLIT_CHOICE, ""))
    if held != choice:
        raise RunDirError(f"{path}: the supernet is split on {held!r} there, on {choice!r} "
                          f"here; {again}")
    shapes = {k: v.shape for k, v in supernet.net_parameters().items()}
    copies: dict[str, dict[str, np.ndarray]] = {}
    for option in options:
        copy = {k: arrays.get(f"{option}={k}") for k in shapes}
        if any(v is None or v.shape != shapes[k] for k, v in copy.items()):
            raise RunDirError(f"{path}: lacks the weights of option {option!r} of {choice} "
                              f"(or holds another space's); {again}")
        copies[option] = copy
    if expected is not None and fingerprint(arrays) != expected:
        raise RunDirError(f"{path} does not hold the copies of the training recorded in "
                          f"{recorded_in} (another training's file?); {again}")
    return SplitWeights(choice, copies)
