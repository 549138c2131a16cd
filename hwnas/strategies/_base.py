"""The strategy contract (BaseStrategy) and the base of strategies that propose by themselves."""
from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from typing import Any

import optuna

from hwnas.budgets import violation as total_violation
from hwnas.arch import Arch
from hwnas.objectives import Evaluation


class BaseStrategy(abc.ABC):
    """Proposes subnets and learns from their objective values.

    A strategy knows the search space's choices (name -> options), the names
    of the minimised objectives, the budgets and a seed. It proposes subnets
    (``ask``) and is told their evaluations (``tell``: it learns from the
    objective values and from how far they break the budgets), or that one
    could not be evaluated (``abandon``). It knows nothing about nnabla, how
    subnets are scored, or how the study stores them: the search loop
    (``hwnas.driver``) opens and completes one trial per proposal. That is
    what lets the same strategy run against a tabular benchmark.

    There are two kinds, which the loop tells apart by type:

    - ``ProposingStrategy`` proposes by itself (DEAP, random search) and needs
      no study; the loop opens a trial with each proposal's params.
    - ``SamplerStrategy`` proposes through an Optuna sampler, by the study's
      public ask/tell API; the study is its memory, and the trial its
      ``study.ask()`` opened is the proposal's.

    Not thread safe: one loop calls ``ask`` and ``tell``, and every ``Arch``
    returned by ``ask`` is answered by exactly one ``tell`` or ``abandon``.

    Args:
        choices: choice name -> options, in the space's order.
        objectives: the names of the minimised objectives.
        budgets: hard upper limits on objectives, treated as constraints.
        seed: makes the sequence of proposals reproducible.
    """

    #: the name the CLI and config use.
    name: str = ""
    #: one line for ``--help`` and the README.
    summary: str = ""

    def __init__(self, *, choices: Mapping[str, tuple[str, ...]], objectives: list[str],
                 budgets: dict[str, float] | None = None, seed: int = 0) -> None:
        if not choices:
            raise ValueError("a strategy needs at least one choice")
        if not objectives:
            raise ValueError("a strategy needs at least one objective")
        self.choices = {name: tuple(options) for name, options in choices.items()}
        self.objectives = list(objectives)
        self.budgets = dict(budgets or {})
        self.seed = seed
        self.excluded: set[str] = set()  # keys of subnets that can never be evaluated

    @classmethod
    def sampler(cls, seed: int) -> optuna.samplers.BaseSampler:
        """The sampler the run's study is opened with. A proposing strategy's
        trials have every param fixed, so its study never consults it."""
        return optuna.samplers.RandomSampler(seed=seed)

    # -- the contract ---------------------------------------------------------------

    @abc.abstractmethod
    def ask(self, n: int = 1) -> list[Arch]:
        """Up to ``n`` subnets to evaluate next; fewer (even none) while waiting for tells
        (an evolutionary strategy at the end of a generation)."""

    def tell(self, arch: Arch, evaluation: Evaluation) -> None:
        """Learns from the evaluation of a subnet returned by ``ask``."""
        self._learn(arch, self.values(evaluation), self.violation(evaluation))

    @abc.abstractmethod
    def _learn(self, arch: Arch, values: list[float], violation: float) -> None:
        """Takes the objective values of a proposal; ``violation`` > 0 breaks a budget."""

    @abc.abstractmethod
    def abandon(self, arch: Arch) -> None:
        """A subnet returned by ``ask`` was not evaluated this time (an interrupt, another
        worker evaluates it): nothing is learned from it, and it may be proposed again."""

    def fail(self, arch: Arch) -> None:
        """A subnet returned by ``ask`` can never be evaluated: it is not proposed again
        (an evolutionary strategy ranks it below every evaluated one)."""
        self.exclude([arch.key])

    def exclude(self, keys: Iterable[str]) -> None:
        """Subnets (by key) that can never be evaluated, such as the failed ones of a
        resumed study: they are not proposed. Call it before ``replay``."""
        self.excluded.update(keys)

    @abc.abstractmethod
    def enqueue(self, archs: list[Arch]) -> None:
        """Makes ``archs`` the first proposals of a fresh search (the space's extremes, say)."""

    @abc.abstractmethod
    def replay(self, known: Mapping[str, Evaluation]) -> int:
        """Rebuilds the state of an interrupted search from its evaluations so far.

        Returns:
            how many proposals were answered from ``known``.
        """

    def trial_attrs(self, arch: Arch) -> dict[str, Any]:
        """Extra user attrs of a proposal's trial (its generation, how it was proposed).

        The loop calls it once per proposal, right after ``ask``, in the order asked.
        """
        return {}

    # -- objective values -------------------------------------------------------------

    def values(self, evaluation: Evaluation) -> list[float]:
        """The objective values of an evaluation, in the order of ``objectives``."""
        return [evaluation.objective(name) for name in self.objectives]

    def violation(self, evaluation: Evaluation) -> float:
        """How far an evaluation breaks its budgets: sum of relative excesses; 0 when feasible."""
        return total_violation({name: evaluation.objective(name) for name in self.budgets},
                               self.budgets)


class ProposingStrategy(BaseStrategy):
    """A strategy that proposes by itself, from its seed and what it was told.

    Subclasses implement ``_propose`` and ``_learn``. An abandoned subnet is
    proposed again next; an excluded one never: a proposal of it is answered
    as failed at once (``fail``) and another is drawn. Such a strategy is
    deterministic given its seed, what it was told and what it excludes, so it
    resumes an interrupted search by proposing again from the start
    (``replay``) once the study's failed subnets are excluded.
    """

    #: Excluded proposals one ``ask`` passes over before it gives up (a space
    #: whose every subnet failed); it then returns fewer proposals.
    MAX_SKIPS = 1000

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ready: list[Arch] = []  # enqueued, abandoned or replayed: the next asks

    @abc.abstractmethod
    def _propose(self, n: int) -> list[Arch]:
        """Up to ``n`` new proposals; fewer (even none) while waiting for tells."""

    def ask(self, n: int = 1) -> list[Arch]:
        taken: list[Arch] = []
        skips = 0
        while len(taken) < n and skips <= self.MAX_SKIPS:
            if self._ready:
                fresh = [self._ready.pop(0)]
            else:
                fresh = self._propose(n - len(taken))
                if not fresh:
                    break
            for arch in fresh:
                if arch.key in self.excluded:
                    self.fail(arch)
                    skips += 1
                else:
                    taken.append(arch)
        return taken

    def abandon(self, arch: Arch) -> None:
        """Learns nothing from ``arch`` and proposes it again next."""
        self._ready.insert(0, arch)

    def enqueue(self, archs: list[Arch]) -> None:
        seen = {a.key for a in self._ready}
        self._ready.extend(a for a in archs if a.key not in seen and not seen.add(a.key))

    def replay(self, known: Mapping[str, Evaluation]) -> int:
        """Proposes again from the start; every proposal ``known`` answers is learned at
        once, and the first one it does not is kept for the next ``ask``. A strategy that
        only repeats subnets it proposed before in this replay stops after ``MAX_SKIPS``
        of them in a row (its search then stalls, as the uninterrupted one did)."""
        answered = repeats = 0
        seen: set[str] = set()
        while repeats <= self.MAX_SKIPS:
            archs = self.ask(1)
            if not archs:
                return answered
            evaluation = known.get(archs[0].key)
            if evaluation is None:
                self._ready.insert(0, archs[0])
                return answered
            self.tell(archs[0], evaluation)
            answered += 1
            repeats = repeats + 1 if archs[0].key in seen else 0
            seen.add(archs[0].key)
        return answered
