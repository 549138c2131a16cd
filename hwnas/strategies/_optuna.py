"""Optuna samplers as strategies: asks create trials in the study, tells complete them."""
from __future__ import annotations

import optuna

from hwnas.records import Evaluation
from hwnas.strategies._base import BaseStrategy
from hwnas.studies._storage import record
from hwnas.supernet import Arch


class OptunaStrategy(BaseStrategy):
    """Any Optuna sampler through ``study.ask()`` / ``study.tell()``.

    The study is the strategy's memory: resuming a study resumes the sampler.
    Budgets are recorded on every trial as constraints, which Optuna's
    constrained samplers use.

    Args:
        study: the run's study; its sampler proposes the subnets.
        **kwargs: see :class:`BaseStrategy`.
    """

    name = "optuna"

    def __init__(self, *, study: optuna.Study, **kwargs) -> None:
        super().__init__(**kwargs)
        self.study = study
        self._pending: dict[str, list[optuna.Trial]] = {}

    def enqueue(self, archs: list[Arch]) -> None:
        """Makes the next asks return ``archs`` first (for example, the space's extremes)."""
        for arch in archs:
            self.study.enqueue_trial(dict(arch), skip_if_exists=True)

    def ask(self, n: int = 1) -> list[Arch]:
        archs = []
        for _ in range(n):
            trial = self.study.ask()
            arch = Arch({name: trial.suggest_categorical(name, list(options))
                         for name, options in self.choices.items()})
            self._pending.setdefault(arch.key, []).append(trial)
            archs.append(arch)
        return archs

    def _take(self, arch: Arch) -> optuna.Trial:
        trials = self._pending.get(arch.key)
        if not trials:
            raise ValueError(f"{arch.key!r} was not asked by this strategy")
        trial = trials.pop(0)
        if not trials:
            del self._pending[arch.key]
        return trial

    def abandon(self, arch: Arch, reason: str = "") -> None:
        """Marks the trial of an asked subnet that could not be evaluated as failed."""
        trial = self._take(arch)
        trial.set_user_attr("key", arch.key)
        trial.set_user_attr("fail_reason", reason)
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def tell(self, arch: Arch, evaluation: Evaluation, *, cached: bool = False) -> None:
        trial = self._take(arch)
        record(self.study, trial, evaluation, self.objectives, self.budgets,
               strategy=self.name, cached=cached)


class TPEStrategy(OptunaStrategy):
    """Optuna's multi-objective, constraint-aware TPE sampler (the default)."""

    name = "tpe"

    @staticmethod
    def sampler(seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=10)
