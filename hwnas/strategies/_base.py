"""BaseStrategy: the ask/tell contract every search strategy follows."""
from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from hwnas.records import Evaluation
from hwnas.studies import record
from hwnas.arch import Arch


class BaseStrategy(abc.ABC):
    """Proposes subnets and learns from their objective values.

    A strategy knows the search space's choices (name -> options) and the
    objective values it is told, nothing about nnabla or how subnets are
    scored. Every evaluation is one trial of ``study``, whatever the strategy:
    params are the choices, values the objectives, every budget a constraint,
    and the user attrs say which strategy proposed it (plus, for evolutionary
    strategies, the generation). One store then serves every strategy.

    Subclasses implement ``_propose`` and ``_learn``; the trial bookkeeping
    is done here. Optuna samplers propose through ``study.ask()``, which opens
    the trial itself (their study *is* their memory). The class is not thread
    safe: one driver calls ``ask`` and ``tell``, and every ``Arch`` returned by
    ``ask`` is answered by exactly one ``tell`` or ``abandon``.

    Args:
        study: the run's study; the trials go there.
        choices: choice name -> options, in the space's order.
        objectives: the names of the minimised objectives.
        budgets: hard upper limits on objectives, treated as constraints.
        seed: makes the sequence of proposals reproducible.
    """

    #: the name the CLI and config use.
    name: str = ""
    #: one line for ``--help`` and the README.
    summary: str = ""

    def __init__(self, *, study: optuna.Study, choices: Mapping[str, tuple[str, ...]],
                 objectives: list[str], budgets: dict[str, float] | None = None,
                 seed: int = 0) -> None:
        if not choices:
            raise ValueError("a strategy needs at least one choice")
        if not objectives:
            raise ValueError("a strategy needs at least one objective")
        self.study = study
        self.choices = {name: tuple(options) for name, options in choices.items()}
        self.objectives = list(objectives)
        self.budgets = dict(budgets or {})
        self.seed = seed
        self._pending: dict[str, list[optuna.Trial]] = {}
        self._ready: list[Arch] = []  # proposed during a replay, not yet asked

    @staticmethod
    def sampler(seed: int) -> optuna.samplers.BaseSampler:
        """The sampler the study is opened with. Strategies that propose by
        themselves fix every param of their trials, so it is never consulted."""
        return optuna.samplers.RandomSampler(seed=seed)

    # -- what subclasses implement ------------------------------------------------

    @abc.abstractmethod
    def _propose(self, n: int) -> list[Arch]:
        """Up to ``n`` new proposals; fewer (even none) while waiting for tells."""

    @abc.abstractmethod
    def _learn(self, arch: Arch, values: list[float], violation: float) -> None:
        """Takes the objective values of a proposal; ``violation`` > 0 breaks a budget."""

    def trial_attrs(self, arch: Arch) -> dict[str, Any]:
        """Extra user attrs of a proposal's trial (for example its generation)."""
        return {}

    def enqueue(self, archs: list[Arch]) -> None:
        """Makes ``archs`` the first proposals of a fresh search (the space's extremes, say)."""
        seen = {a.key for a in self._ready}
        self._ready.extend(a for a in archs if a.key not in seen and not seen.add(a.key))

    def replay(self, known: Mapping[str, Evaluation]) -> int:
        """Rebuilds the state of an interrupted search from the study's evaluations.

        A strategy is deterministic given its seed and what it was told, so it
        proposes again from the start; every proposal the study already
        answered is learned at once, and the first one it did not is kept for
        the next ``ask``. Optuna samplers need no replay: they read the study.

        Returns:
            how many proposals were answered from ``known``.
        """
        answered = 0
        while True:
            archs = self._next(1)
            if not archs:
                return answered
            evaluation = known.get(archs[0].key)
            if evaluation is None:
                self._ready.insert(0, archs[0])
                return answered
            self._learn(archs[0], self.values(evaluation), self.violation(evaluation))
            answered += 1

    # -- the contract ---------------------------------------------------------------

    def _next(self, n: int) -> list[Arch]:
        taken, self._ready = self._ready[:n], self._ready[n:]
        return taken + (self._propose(n - len(taken)) if len(taken) < n else [])

    def ask(self, n: int = 1) -> list[Arch]:
        """Up to ``n`` subnets to evaluate next, each opened as a trial of the study.

        Fewer than ``n`` come back when the strategy waits for tells (an
        evolutionary strategy at the end of a generation).
        """
        archs = self._next(n)
        for arch in archs:
            self._open_trial(arch)
        return archs

    def _open_trial(self, arch: Arch) -> None:
        """Opens the study's trial of a proposal, for its ``tell`` or ``abandon``."""
        # A running trial with exactly these params. (study.ask() would pop
        # the oldest waiting trial, which may be another strategy's.)
        template = optuna.trial.create_trial(
            state=TrialState.RUNNING, params=dict(arch),
            distributions={name: CategoricalDistribution(list(options))
                           for name, options in self.choices.items()},
            user_attrs=self.trial_attrs(arch))
        storage = self.study._storage
        trial_id = storage.create_new_trial(self.study._study_id, template_trial=template)
        self._pending.setdefault(arch.key, []).append(optuna.trial.Trial(self.study, trial_id))

    def trial(self, arch: Arch) -> optuna.Trial:
        """The open trial of an asked subnet (the first, if it was asked twice)."""
        trials = self._pending.get(arch.key)
        if not trials:
            raise ValueError(f"{arch.key!r} was not asked by this strategy")
        return trials[0]

    def _take(self, arch: Arch) -> optuna.Trial:
        trials = self._pending.get(arch.key)
        if not trials:
            raise ValueError(f"{arch.key!r} was not asked by this strategy")
        trial = trials.pop(0)
        if not trials:
            del self._pending[arch.key]
        return trial

    def values(self, evaluation: Evaluation) -> list[float]:
        """The objective values of an evaluation, in the order of ``objectives``."""
        return [evaluation.objective(name) for name in self.objectives]

    def violation(self, evaluation: Evaluation) -> float:
        """How far an evaluation breaks its budgets: sum of relative excesses; 0 when feasible."""
        return sum(max(0.0, evaluation.objective(name) / limit - 1.0)
                   for name, limit in self.budgets.items())

    def tell(self, arch: Arch, evaluation: Evaluation, *, cached: bool = False) -> None:
        """Records the evaluation of a subnet returned by ``ask`` and learns from it.

        Args:
            cached: the evaluation was answered from the study, not computed again.
        """
        trial = self._take(arch)
        record(self.study, trial, evaluation, self.objectives, self.budgets,
               strategy=self.name, cached=cached)
        self._learn(arch, self.values(evaluation), self.violation(evaluation))

    def abandon(self, arch: Arch, reason: str = "") -> None:
        """Marks the trial of a subnet that could not be evaluated as failed.

        The strategy learns nothing from it and proposes it again next.
        """
        trial = self._take(arch)
        self._ready.insert(0, arch)
        trial.set_user_attr("key", arch.key)
        trial.set_user_attr("fail_reason", reason)
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
