"""Helpers shared by the supernet test files: the small test space and a spread of its subnets."""
from __future__ import annotations

import numpy as np
from conftest import SMALL_SPACE

from hwnas.arch import Arch
from hwnas.supernet import ChainSpace, create_space

INPUT_SHAPE = (1, 8, 8)
SMALL = SMALL_SPACE


def make_space(**overrides) -> ChainSpace:
    return create_space("mobilenet", **{**SMALL, **overrides})


def _archs(space, n: int, seed: int = 0) -> list[Arch]:
    rng = np.random.default_rng(seed)
    archs = {space.sample(rng) for _ in range(n * 3)}
    archs = sorted(archs, key=lambda a: a.key)[:n]
    # Always include the biggest and the shallowest subnet.
    big = Arch({n_: o[-2] if o[-1] == "skip" else o[-1] for n_, o in space.choices.items()})
    shallow = Arch({n_: "skip" if "skip" in o else o[0] for n_, o in space.choices.items()})
    return [big, shallow] + archs
