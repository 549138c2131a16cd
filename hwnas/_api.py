"""The Python API for notebooks: a run directory as an object, and search with a strategy object.

A thin face over :mod:`hwnas.run`, the steps the command line runs: what a method
computes is what the matching command computes. A method that writes into the
run directory holds its lock as that command does, so it never writes beside a
running ``hwnas search``; the others only read.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd

from hwnas.arch import Arch
from hwnas.config import ExperimentConfig
from hwnas.data import load_dataset
from hwnas.objectives import Evaluation
from hwnas.pareto import front_figure
from hwnas.run import (RunDir, Writer, configure_run, export, front_table, search as search_step,
                       select, space_from_config, unmeasured)
from hwnas.strategies import BaseStrategy
from hwnas.studies import evaluations, load_read_only
from hwnas.supernet import BaseSearchSpace

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Run:
    """A run directory (``runs/NAME``) made by ``hwnas run`` or its steps.

    Opening reads its config and takes no lock. ``study``, ``front``,
    ``plot_front`` and ``space`` read; ``select``, ``export`` and ``hwnas.search``
    write as ``hwnas select``, ``hwnas export`` and ``hwnas search`` do, holding
    the directory's lock while they do (another command writing it makes them
    fail with ``RunDirError``, and the other way round).

    Args:
        path: the run directory.

    Raises:
        RunDirError: no such run directory, or its config is damaged.
    """

    def __init__(self, path: str | Path) -> None:
        self._dir = RunDir.open(path)

    def __repr__(self) -> str:
        return f"hwnas.Run({str(self.path)!r})"

    @classmethod
    def create(cls, config: str | Path | None, path: str | Path | None = None) -> Run:
        """Creates the run directory of an experiment (or reopens it when it holds the
        same one), as ``hwnas train CONFIG --out PATH`` does before training.

        Args:
            config: the experiment YAML; None for the default (digits).
            path: the run directory; default ``runs/NAME``.

        Raises:
            ConfigError: the config is invalid.
            RunDirError: ``path`` holds another experiment, or a command is writing it.
        """
        writer = Writer("hwnas.Run.create")
        try:
            made = configure_run(None if config is None else str(config),
                                 None if path is None else str(path), writer=writer)
        finally:
            writer.release()
        return cls(made.path)

    @property
    def path(self) -> Path:
        """The run directory."""
        return self._dir.path

    @property
    def config(self) -> ExperimentConfig:
        """The run's resolved experiment config (config.yaml)."""
        return self._dir.config

    @property
    def study(self) -> optuna.Study:
        """The run's Optuna study, opened read-only: give it to ``optuna.visualization``
        or optuna-dashboard; a write to it raises ``hwnas.studies.ReadOnlyError``.

        Raises:
            RunDirError: nothing searched yet.
        """
        return load_read_only(self.path)

    def evaluations(self) -> list[Evaluation]:
        """Every evaluated subnet of the study, in the order evaluated."""
        return evaluations(self.study)

    @property
    def space(self) -> BaseSearchSpace:
        """The run's search space (its ``choices`` are what a strategy object needs);
        loads the data set for its input shape."""
        config = self.config
        data = load_dataset(config.data, seed=config.seed)
        return space_from_config(config, data, source=str(self.path / RunDir.CONFIG))

    def front(self) -> pd.DataFrame:
        """The feasible Pareto front, with the rows and columns of front.csv
        (``hwnas front``), in the same order.

        Where latencies were predicted, the subnets on the front that were never
        measured whole are measured now, holding the run's lock, and kept in
        measured.json (as ``hwnas front`` does); front.csv itself is not written.

        Raises:
            RunDirError: nothing evaluated yet, or another command is writing the run.
        """
        evs = self.evaluations()
        if not unmeasured(self._dir, evs):
            return front_table(self._dir, evs)[1]
        with _held(self.path, "Run.front") as run:
            return front_table(run, evs)[1]

    def plot_front(self, objectives: list[str] | None = None) -> Figure:
        """Every pair of objectives with the front and the budgets, as front.png draws them.

        Args:
            objectives: the front's objectives (default: the config's).

        Returns:
            the matplotlib Figure.
        """
        return front_figure(self.evaluations(), objectives or self.config.search.objectives,
                            self.config.budgets)

    def select(self, budgets: dict[str, float] | None = None) -> Evaluation:
        """The most accurate evaluated subnet within every budget, by the rule of
        ``hwnas select``, which it is: it writes selected.json (what ``export`` exports).

        Args:
            budgets: objective -> upper limit (default: the config's budgets).

        Returns:
            the chosen subnet's evaluation: ``arch``, ``metrics`` and ``costs``.

        Raises:
            BudgetError: no subnet fits; the message names the nearest one.
        """
        with _held(self.path, "Run.select") as run:
            return select(run, budgets).require()

    def export(self, arch: Arch | None = None, *,
               formats: tuple[str, ...] = ("nnp", "onnx")) -> dict[str, Any]:
        """Writes the selected subnet (or ``arch``) as model.nnp and model.onnx, each checked
        on the test split, as ``hwnas export`` does.

        Returns:
            what export.json records (the files, their runtimes, test accuracies).
        """
        with _held(self.path, "Run.export") as run:
            return export(run, arch, formats=formats)


def search(run: Run | str | Path, strategy: BaseStrategy | str | None = None, *,
           trials: int | None = None, workers: int = 1, progress: bool = False
           ) -> list[Evaluation]:
    """Searches a trained run (or resumes its search), as ``hwnas search`` does.

    Args:
        run: the run, or its directory.
        strategy: a strategy object, made with the run's choices, objectives and
            budgets (``run.space.choices``, ``run.config.search.objectives``,
            ``run.config.budgets``), fresh for each search (it replays the study from
            its own start); or a registered name; default: the config's.
        trials: distinct subnets the study holds at the end (default: the config's).
        workers: local processes evaluating each batch.
        progress: show a progress bar.

    Returns:
        every evaluation of the study.

    Raises:
        HwnasError: the strategy does not fit the run, the supernet is not trained, or
            another command is writing the run.
    """
    run = run if isinstance(run, Run) else Run(run)
    # Held as `hwnas search` holds it: shared when the study is in a database.
    with _held(run.path, "search", shared=None) as held:
        return search_step(held, strategy=strategy, trials=trials, workers=workers,
                           progress=progress)


@contextlib.contextmanager
def _held(path: Path, what: str, *, shared: bool | None = False) -> Iterator[RunDir]:
    """The run directory at ``path``, held for writing (``Writer``) until the block ends."""
    writer = Writer(f"hwnas.{what}", shared=shared)
    try:
        yield RunDir.open(path, writer=writer)
    finally:
        writer.release()
