"""The loop's books: one study trial per proposal, opened at ask, completed at tell or abandon."""
from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from hwnas.arch import Arch
from hwnas.objectives import Evaluation
from hwnas.strategies import BaseStrategy, SamplerStrategy
from hwnas.studies import fail, open_running_trial, record


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

    A ``SamplerStrategy`` opened its trials itself (``study.ask()``); the books
    collect them. For any other strategy the books open a running trial with
    the proposal's params, leaving the study's queue of waiting trials alone.

    Args:
        study: the run's study; the trials go there.
        strategy: proposes the subnets; a ``SamplerStrategy`` over ``study``.
    """

    def __init__(self, *, study: optuna.Study, strategy: BaseStrategy) -> None:
        if isinstance(strategy, SamplerStrategy) and strategy.study is not study:
            raise ValueError(f"the {strategy.name} strategy asks another study than the books'")
        self.study = study
        self.strategy = strategy
        self._distributions = {name: CategoricalDistribution(list(options))
                               for name, options in strategy.choices.items()}
        self._open: dict[str, list[optuna.Trial]] = {}  # key -> trials asked, not yet answered

    def open(self, n: int = 1) -> list[tuple[Arch, optuna.Trial]]:
        """Up to ``n`` proposals of the strategy, each with the trial opened for it."""
        opened = []
        for arch in self.strategy.ask(n):
            attrs = self.strategy.trial_attrs(arch)
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
            cached: the evaluation was answered from the study, not computed again.
        """
        trial = self._take(arch)
        record(self.study, trial, evaluation, self.strategy.objectives, self.strategy.budgets,
               strategy=self.strategy.name, cached=cached)
        self.strategy.tell(arch, evaluation)

    def fail(self, arch: Arch, reason: str, *, cached: bool = False) -> None:
        """Fails the trial of a subnet that can never be evaluated, for ``reason``; the
        strategy never proposes it again (``BaseStrategy.fail``).

        Args:
            cached: the subnet failed before and was not evaluated again.
        """
        trial = self._take(arch)
        self.strategy.fail(arch)
        trial.set_user_attr(UNEVALUABLE, True)
        trial.set_user_attr("strategy", self.strategy.name)
        trial.set_user_attr("cached", cached)
        fail(self.study, trial, key=arch.key, reason=reason)

    def abandon(self, arch: Arch, reason: str = "") -> None:
        """Fails the trial of a subnet that was not evaluated this time (an interrupt,
        another worker evaluates it); the strategy may propose it again."""
        trial = self._take(arch)
        self.strategy.abandon(arch)
        fail(self.study, trial, key=arch.key, reason=reason)


#: The user attr that marks the failed trial of a subnet that can never be evaluated.
UNEVALUABLE = "unevaluable"


def failed_subnets(study: optuna.Study) -> dict[str, str]:
    """Key -> reason of every subnet the study records as never evaluable (its first
    failed trial with ``unevaluable`` set; see ``Books.fail``)."""
    failed: dict[str, str] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        attrs = trial.user_attrs
        if attrs.get(UNEVALUABLE) and not attrs.get("cached") and "key" in attrs:
            failed.setdefault(attrs["key"], attrs.get("fail_reason", ""))
    return failed
