"""Helpers shared by the optimised-graph test files: subnets to test, trained-like weights."""
from __future__ import annotations

import nnabla as nn
import numpy as np

from hwnas.supernet import Arch

ARCHS = [Arch({"b0": "ir_k5_e3", "b1": "skip", "b2": "ir_k3_e2"}),
         Arch({"b0": "ir_k3_e2", "b1": "ir_k5_e2", "b2": "ir_k5_e3"})]


def close(got: np.ndarray, want: np.ndarray) -> None:
    """Equal within 1e-5, absolute near 0 and relative where magnitudes are large."""
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def like_trained(params: dict[str, nn.Variable], seed: int = 0) -> None:
    """Random weights and BN statistics far from their initial values, so folding shows."""
    rng = np.random.default_rng(seed)
    for key, param in params.items():
        name = key.rsplit("/", 1)[-1]
        if name == "var":
            param.d = rng.uniform(0.3, 3.0, param.shape)
        elif name == "gamma":
            param.d = rng.uniform(-1.5, 1.5, param.shape)
        elif name in ("mean", "beta", "b"):
            param.d = rng.normal(0.0, 1.0, param.shape)
        else:
            param.d = rng.normal(0.0, 0.5, param.shape)

