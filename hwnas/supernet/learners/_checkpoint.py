"""A training checkpoint's arrays: weights, architecture parameters, solver states, learner
state, and the training logs it pairs with."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import nnabla as nn
import nnabla.solver as nn_solver
import nnabla.solvers as S
import numpy as np
import pandas as pd

from hwnas.errors import RunDirError
from hwnas.supernet._space import Supernet

#: The checkpoint's entry holding the fingerprint of the weights file written with it.
FINGERPRINT = "weights_fingerprint"


def pack(supernet: Supernet, alphas: dict[str, nn.Variable], solvers: dict[str, S.Solver],
         extra: dict[str, float], epochs_done: int) -> dict[str, np.ndarray]:
    """The arrays of a checkpoint after ``epochs_done`` epochs (``np.savez`` keys).

    Keys are prefixed by kind: ``w:`` network weights, ``a:`` architecture parameters,
    ``t:`` / ``s:`` each solver's step count and state, ``x:`` the learner's extra state.
    """
    arrays = {"epochs_done": np.array(epochs_done)}
    for key, param in supernet.net_parameters().items():
        arrays[f"w:{key}"] = param.d
    for name, alpha in alphas.items():
        arrays[f"a:{name}"] = alpha.d
    for group, solver in solvers.items():
        for pname, state in solver.get_states().items():
            arrays[f"t:{group}:{pname}"] = np.array(state.t)
            for sname, var in state.pstate.items():
                arrays[f"s:{group}:{pname}:{sname}"] = var.d
    arrays.update({f"x:{k}": np.array(v) for k, v in extra.items()})
    return arrays


def read(path: Path) -> dict[str, np.ndarray]:
    """Every array of the checkpoint at ``path``.

    Raises:
        RunDirError: the file is unreadable.
    """
    try:
        with np.load(path) as ckpt:
            return {k: ckpt[k] for k in ckpt.files}
    except Exception as exc:
        raise RunDirError(f"{path}: unreadable training checkpoint ({exc}); "
                          "delete it to train from scratch") from None


def unpack(arrays: dict[str, np.ndarray], path: Path, supernet: Supernet,
           alphas: dict[str, nn.Variable], solvers: dict[str, S.Solver]) -> dict[str, float]:
    """Puts what ``pack`` saved back into ``supernet``, ``alphas`` and ``solvers``.

    Returns:
        the learner's extra state.

    Raises:
        RunDirError: the checkpoint at ``path`` holds another supernet or other
            architecture parameters.
    """
    params = supernet.net_parameters()
    weights = {k[2:]: v for k, v in arrays.items() if k.startswith("w:")}
    if set(weights) != set(params):
        raise RunDirError(f"{path}: checkpoint holds a different supernet; "
                          "delete it to train from scratch")
    saved_alphas = {k[2:]: v for k, v in arrays.items() if k.startswith("a:")}
    if set(saved_alphas) != set(alphas):
        raise RunDirError(f"{path}: checkpoint holds other architecture parameters; "
                          "delete it to train from scratch")
    for key, value in weights.items():
        params[key].d = value
    for key, value in saved_alphas.items():
        alphas[key].d = value
    for group, solver in solvers.items():
        states = {}
        for pname in solver.get_parameters():
            state = nn_solver.SolverState()
            state.t = int(arrays[f"t:{group}:{pname}"])
            prefix = f"s:{group}:{pname}:"
            state.pstate = {k[len(prefix):]: nn.Variable.from_numpy_array(v)
                            for k, v in arrays.items() if k.startswith(prefix)}
            states[pname] = state
        solver.set_states(states)
    return {k[2:]: float(v) for k, v in arrays.items() if k.startswith("x:")}


def recorded_fingerprint(checkpoint: str | Path) -> str | None:
    """The fingerprint of the weights file that a checkpoint recorded; None for a checkpoint of
    an hwnas that recorded none.

    Raises:
        RunDirError: the checkpoint is unreadable.
    """
    try:
        with np.load(checkpoint) as state:
            return str(state[FINGERPRINT]) if FINGERPRINT in state.files else None
    except Exception as exc:
        raise RunDirError(f"{checkpoint}: unreadable training checkpoint ({exc})") from None


def read_log(path: Path, done: int) -> list[dict[str, Any]]:
    """The rows of a training log up to epoch ``done``; a later epoch's rows belong to an
    epoch whose checkpoint a crash prevented, which is trained again."""
    if not path.exists():
        return []
    try:
        return [r for r in pd.read_csv(path).to_dict("records") if r["epoch"] <= done]
    except (ValueError, KeyError, TypeError) as exc:  # pandas' parser errors are ValueErrors
        raise RunDirError(f"{path}: unreadable training log "
                          f"({type(exc).__name__}: {exc})") from None
