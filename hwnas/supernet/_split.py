"""Few-shot supernets: the choice a supernet is split on, and one copy of its weights per option."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hwnas.arch import Arch
from hwnas.errors import shorten
from hwnas.supernet._space import BaseSearchSpace, Supernet

#: The ``split_choice`` that picks the first choice with the most options.
AUTO = "auto"


def split_choice(space: BaseSearchSpace, name: str) -> str:
    """The choice a few-shot supernet of ``space`` is split on.

    Args:
        name: a choice of the space, or ``auto``: the first choice with the most options
            (splitting it gives each copy the smallest share of the space).

    Raises:
        ValueError: ``name`` is no choice of the space; the message lists the known ones.
    """
    if name == AUTO:
        most = max(len(options) for options in space.choices.values())
        return next(c for c, options in space.choices.items() if len(options) == most)
    if name not in space.choices:
        raise ValueError(f"'train.split_choice' names no choice of the space: {shorten(name)}; "
                         f"known: {AUTO}, {', '.join(space.choices)}")
    return name


class SplitWeights:
    """The weights of a few-shot supernet: one full copy of the supernet's weights per option
    of the split choice, kept in memory as arrays.

    ``use(supernet, arch)`` puts the copy of ``arch``'s option into the supernet's parameters
    (every network weight, BN statistics included), so that what runs next (recalibration,
    scoring, extraction) sees that copy. The supernet's own weights are then lost: whoever
    needs them (the learner, between the copies' epochs) keeps them apart.

    Args:
        choice: the choice the supernet is split on.
        copies: option -> parameter name -> weights; the options trained so far.
    """

    def __init__(self, choice: str, copies: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        self.choice = choice
        self.copies = {option: dict(weights) for option, weights in copies.items()}

    def option(self, arch: Arch) -> str:
        """The option of ``arch`` that picks its copy."""
        return arch[self.choice]

    def use(self, supernet: Supernet, arch: Arch) -> None:
        """Loads the copy of ``arch``'s option into ``supernet``'s parameters.

        Raises:
            KeyError: no copy was trained for that option.
        """
        load(supernet, self.copies[self.option(arch)])

    def arrays(self) -> dict[str, np.ndarray]:
        """Every copy's weights under ``OPTION=PARAMETER`` (``=`` is in no option's name)."""
        return {f"{option}={key}": value for option, weights in self.copies.items()
                for key, value in weights.items()}


def weights_of(supernet: Supernet) -> dict[str, np.ndarray]:
    """Copies of every network weight of ``supernet`` (BN statistics included), by name."""
    return {key: param.d.copy() for key, param in supernet.net_parameters().items()}


def load(supernet: Supernet, weights: Mapping[str, np.ndarray]) -> None:
    """Puts ``weights`` (as ``weights_of`` returned them) into ``supernet``'s parameters."""
    for key, param in supernet.net_parameters().items():
        param.d = weights[key]
