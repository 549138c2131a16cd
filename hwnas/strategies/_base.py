"""BaseStrategy: the ask/tell contract every search strategy follows."""
from __future__ import annotations

import abc

from hwnas.records import Evaluation
from hwnas.supernet import Arch


class BaseStrategy(abc.ABC):
    """Proposes subnets and learns from their objective values.

    A strategy knows the search space's choices (name -> options) and the
    objective values it is told, nothing about nnabla or how subnets are
    scored. It is not thread safe: one driver calls ``ask`` and ``tell``.
    Every ``Arch`` returned by ``ask`` is answered by exactly one ``tell``.

    Args:
        choices: choice name -> options, in the space's order.
        objectives: the names of the minimised objectives.
        budgets: hard upper limits on objectives, treated as constraints.
        seed: makes the sequence of proposals reproducible.
    """

    #: the name the CLI and config use.
    name: str = ""

    def __init__(self, *, choices: dict[str, tuple[str, ...]], objectives: list[str],
                 budgets: dict[str, float] | None = None, seed: int = 0) -> None:
        if not choices:
            raise ValueError("a strategy needs at least one choice")
        if not objectives:
            raise ValueError("a strategy needs at least one objective")
        self.choices = {name: tuple(options) for name, options in choices.items()}
        self.objectives = list(objectives)
        self.budgets = dict(budgets or {})
        self.seed = seed

    @abc.abstractmethod
    def ask(self, n: int = 1) -> list[Arch]:
        """The next ``n`` subnets to evaluate."""

    @abc.abstractmethod
    def tell(self, arch: Arch, evaluation: Evaluation) -> None:
        """Reports the evaluation of a subnet returned by ``ask``."""
