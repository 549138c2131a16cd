"""The loop's books: one study trial per proposal, opened at ask, completed at tell or abandon."""
from __future__ import annotations

import dataclasses
from typing import Protocol

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from hwnas.arch import Arch
from hwnas.objectives import Evaluation
from hwnas.strategies import BaseStrategy, SamplerStrategy
from hwnas.studies import fail, open_running_trial, record


class Rules(Protocol):
    """What the loop asks of a search space (``hwnas.supernet.BaseSearchSpace`` has both)."""

    def validate(self, arch: Arch) -> Arch:
        """``arch`` if the space can build it; raises ValueError (``InfeasibleArch``) if not."""

    def canonical(self, arch: Arch) -> Arch:
        """The one encoding that stands for every encoding of ``arch``'s network."""


class Books:
    """Keeps a strategy's proposals and the study's trials in step.

    Every proposal is one trial of ``study``, whatever the strategy: params are
    the choices, values the objectives, every budget a constraint, and the user
    attrs say which subnet it is, which strategy proposed it, whether it was
    answered from the study (``cached``), plus what the strategy adds
    (``BaseStrategy.trial_attrs``: the generation, how it was proposed). A
    subnet that can never be evaluated is a failed trial with its
    ``fail_reason`` and ``unevaluable`` set (``fail``); one that was not
    evaluated this time (an interrupt) a failed trial without it
    (``abandon``). One store then serves every strategy.

    With a search space, every proposal stands for a network: its canonical
    encoding (``network``), or none when the space cannot build it. The trial
    keeps the proposed encoding as its params and user attr ``proposed_key``;
    its ``key`` (and, once told, its ``arch``) is the network's. The strategy
    is told the values under the encoding it proposed.

    A ``SamplerStrategy`` opened its trials itself (``study.ask()``); the books
    collect them. For any other strategy the books open a running trial with
    the proposal's params, leaving the study's queue of waiting trials alone.

    Args:
        study: the run's study; the trials go there.
        strategy: proposes the subnets; a ``SamplerStrategy`` over ``study``.
        space: says which encodings are one network and which cannot be built;
            None: every encoding is a network of its own, and every one can be built.
    """

    def __init__(self, *, study: optuna.Study, strategy: BaseStrategy,
                 space: Rules | None = None) -> None:
        if isinstance(strategy, SamplerStrategy) and strategy.study is not study:
            raise ValueError(f"the {strategy.name} strategy asks another study than the books'")
        self.study = study
        self.strategy = strategy
        self._distributions = {name: CategoricalDistribution(list(options))
                               for name, options in strategy.choices.items()}
        self._open: dict[str, list[optuna.Trial]] = {}  # key -> trials asked, not yet answered
        self.space = space
        # proposed key -> its network's canonical encoding, or why the space cannot build it
        self._networks: dict[str, Arch | str] = {}

    def network(self, arch: Arch) -> Arch | None:
        """The canonical encoding of ``arch``'s network (``arch`` itself without a space);
        None where the space cannot build ``arch`` (``refusal`` says why)."""
        if arch.key not in self._networks:
            if self.space is None:
                self._networks[arch.key] = arch
            else:
                try:
                    valid = self.space.validate(arch)
                except ValueError as exc:  # InfeasibleArch, or an option it does not offer
                    self._networks[arch.key] = str(exc)
                else:
                    self._networks[arch.key] = self.space.canonical(valid)
        found = self._networks[arch.key]
        return None if isinstance(found, str) else found

    def refusal(self, arch: Arch) -> str | None:
        """Why the space cannot build ``arch``; None where it can."""
        self.network(arch)  # looks it up once
        found = self._networks[arch.key]
        return found if isinstance(found, str) else None

    def key(self, arch: Arch) -> str:
        """The key of ``arch``'s network; ``arch``'s own where the space cannot build it."""
        network = self.network(arch)
        return arch.key if network is None else network.key

    def open(self, n: int = 1) -> list[tuple[Arch, optuna.Trial]]:
        """Up to ``n`` proposals of the strategy, each with the trial opened for it."""
        opened = []
        for arch in self.strategy.ask(n):
            attrs = {**self.strategy.trial_attrs(arch), "key": self.key(arch),
                     "proposed_key": arch.key}
            if isinstance(self.strategy, SamplerStrategy):
                trial = self.strategy.opened(arch)
                for key, value in attrs.items():
                    trial.set_user_attr(key, value)
            else:
                trial = open_running_trial(self.study, params=dict(arch),
                                           distributions=self._distributions, user_attrs=attrs)
            self._open.setdefault(arch.key, []).append(trial)
            opened.append((arch, trial))
        return opened

    def ask(self, n: int = 1) -> list[Arch]:
        """Up to ``n`` subnets to evaluate next, each opened as a trial of the study."""
        return [arch for arch, _ in self.open(n)]

    def trial(self, arch: Arch) -> optuna.Trial:
        """The open trial of an asked subnet (the first, if it was asked twice)."""
        trials = self._open.get(arch.key)
        if not trials:
            raise ValueError(f"{arch.key!r} was not asked by this strategy")
        return trials[0]

    def _take(self, arch: Arch) -> optuna.Trial:
        trial = self.trial(arch)
        trials = self._open[arch.key]
        trials.pop(0)
        if not trials:
            del self._open[arch.key]
        return trial

    def tell(self, arch: Arch, evaluation: Evaluation, *, cached: bool = False) -> None:
        """Completes the trial of a subnet returned by ``ask``; the strategy learns from it.

        Args:
            arch: the proposal, as the strategy proposed it.
            evaluation: the evaluation of its network (of ``network(arch)``).
            cached: the evaluation was answered from the study, not computed again.
        """
        trial = self._take(arch)
        record(self.study, trial, evaluation, self.strategy.objectives, self.strategy.budgets,
               strategy=self.strategy.name, cached=cached)
        self.strategy.tell(arch, evaluation if evaluation.arch == arch
                           else dataclasses.replace(evaluation, arch=arch))

    def fail(self, arch: Arch, reason: str, *, cached: bool = False,
             infeasible: bool = False) -> None:
        """Fails the trial of a subnet that can never be evaluated, for ``reason``; the
        strategy never proposes it again (``BaseStrategy.fail``).

        Args:
            cached: the subnet failed before and was not evaluated again.
            infeasible: the space cannot build it (user attr ``infeasible``).
        """
        trial = self._take(arch)
        self.strategy.fail(arch)
        trial.set_user_attr(UNEVALUABLE, True)
        trial.set_user_attr("strategy", self.strategy.name)
        trial.set_user_attr("cached", cached)
        if infeasible:
            trial.set_user_attr(INFEASIBLE, True)
        fail(self.study, trial, key=self.key(arch), reason=reason)

    def abandon(self, arch: Arch, reason: str = "") -> None:
        """Fails the trial of a subnet that was not evaluated this time (an interrupt,
        another worker evaluates it); the strategy may propose it again."""
        trial = self._take(arch)
        self.strategy.abandon(arch)
        fail(self.study, trial, key=self.key(arch), reason=reason)


#: The user attr that marks the failed trial of a subnet that can never be evaluated.
UNEVALUABLE = "unevaluable"
#: The user attr that marks, besides ``unevaluable``, a subnet the space cannot build.
INFEASIBLE = "infeasible"


def failed_subnets(study: optuna.Study) -> dict[str, str]:
    """Key -> reason of every subnet the study records as never evaluable (its first
    failed trial with ``unevaluable`` set; see ``Books.fail``)."""
    failed: dict[str, str] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        attrs = trial.user_attrs
        if attrs.get(UNEVALUABLE) and not attrs.get("cached") and "key" in attrs:
            failed.setdefault(attrs["key"], attrs.get("fail_reason", ""))
    return failed


def infeasible_subnets(study: optuna.Study) -> set[str]:
    """The keys of the subnets the study records as ones their space cannot build."""
    return {trial.user_attrs["key"]
            for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if trial.user_attrs.get(INFEASIBLE) and "key" in trial.user_attrs}
