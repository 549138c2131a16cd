"""A supernet's weights and architecture parameters in one nnabla .h5 file."""
from __future__ import annotations

from pathlib import Path

import nnabla as nn

from hwnas.io import atomic_write
from hwnas.errors import RunDirError
from hwnas.supernet._space import Supernet

#: The prefix of architecture parameters in the file.
ALPHA = "alpha/"


def _stored(supernet: Supernet) -> dict[str, nn.Variable]:
    """Network weights and, under ``alpha/``, architecture parameters."""
    return {**supernet.net_parameters(),
            **{ALPHA + k: v for k, v in supernet.arch_parameters().items()}}


def save_weights(supernet: Supernet, path: str | Path) -> None:
    """Writes every network weight and architecture parameter to an nnabla .h5 file, atomically."""
    params = _stored(supernet)
    atomic_write(path, lambda tmp: nn.save_parameters(tmp, params=params))


def load_weights(supernet: Supernet, path: str | Path) -> None:
    """Loads weights saved by ``save_weights``; a truncated file or another space's is an error."""
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
        param.d = stored[key]
