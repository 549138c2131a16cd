"""Evaluating a batch of subnets in parallel: local worker processes or a Dask cluster.

Each worker loads the run's workspace (data, supernet weights, latency table)
once and keeps it; the driver keeps the strategy and the study. Results come
back in the order asked, so what the search proposes never depends on how
many workers there are or which finishes first.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError, MeasurementError
from hwnas.objectives import Evaluation
from hwnas.arch import Arch

#: run directory -> its evaluator, one per worker process.
_EVALUATORS: dict[str, Callable[[Arch], Evaluation]] = {}
_LOCK = threading.Lock()
#: Builds a worker's evaluator from the run directory's path (module-level, so it pickles).
EvaluatorFactory = Callable[[str], Callable[[Arch], Evaluation]]


def _evaluator(run_path: str, factory: EvaluatorFactory) -> Callable[[Arch], Evaluation]:
    if run_path not in _EVALUATORS:
        _EVALUATORS[run_path] = factory(run_path)
    return _EVALUATORS[run_path]


def evaluate_remote(run_path: str, factory: EvaluatorFactory,
                    choices: dict[str, str]) -> dict[str, Any]:
    """Scores one subnet in a worker: ``{"evaluation": ...}`` or ``{"error": message}``.

    nnabla graphs are not thread safe: one evaluation at a time per process.
    """
    with _LOCK:
        try:
            return {"evaluation": _evaluator(run_path, factory)(Arch(choices)).to_dict()}
        except MeasurementError as exc:
            return {"error": str(exc)}


def _outcome(answer: dict[str, Any]) -> Evaluation | MeasurementError:
    if "error" in answer:
        return MeasurementError(answer["error"])
    return Evaluation.from_dict(answer["evaluation"])


def _warm(run_path: str, factory: EvaluatorFactory) -> None:
    _evaluator(run_path, factory)


class ProcessPool:
    """``workers`` local processes (nnabla's CPU backend uses one core per process).

    Args:
        run_path: the run directory; its supernet and table must be ready.
        workers: processes to start; each loads the workspace once.
        factory: builds a process's evaluator from ``run_path``.
    """

    def __init__(self, run_path: str | Path, workers: int, factory: EvaluatorFactory) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.run_path = str(Path(run_path).resolve())
        self.workers = workers
        self.factory = factory
        self._pool = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm, initargs=(self.run_path, factory))

    def submit(self, archs: list[Arch]) -> Callable[[], list[Evaluation | MeasurementError]]:
        """Starts evaluating ``archs``; returns a function that waits for the answers in order."""
        futures = [self._pool.submit(evaluate_remote, self.run_path, self.factory, dict(a))
                   for a in archs]

        def answers() -> list[Evaluation | MeasurementError]:
            try:
                return [_outcome(f.result()) for f in futures]
            except concurrent.futures.process.BrokenProcessPool:
                raise HwnasError("a worker process died; run the same command again to "
                                 "resume") from None
        return answers

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaskPool:
    """Evaluation on a Dask cluster: the driver keeps the strategy, Dask workers evaluate.

    The run directory must be readable at the same path on every worker
    (a shared file system); each worker process loads it once.

    Args:
        run_path: the run directory.
        address: the scheduler, e.g. ``tcp://10.0.0.5:8786``.
        factory: builds a worker process's evaluator from ``run_path``.
        timeout: seconds to wait for the scheduler.
    """

    def __init__(self, run_path: str | Path, address: str, factory: EvaluatorFactory,
                 timeout: float = 5.0) -> None:
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - a dependency of hwnas
            raise HwnasError("--dask needs the 'distributed' package") from None
        self.run_path = str(Path(run_path).resolve())
        self.factory = factory
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise HwnasError(f"--dask: cannot reach the Dask scheduler at {address} "
                             f"({type(exc).__name__}: {exc})") from None
        if not self.client.scheduler_info().get("workers"):
            self.client.close()
            raise HwnasError(f"--dask: the scheduler at {address} has no workers")

    def submit(self, archs: list[Arch]) -> Callable[[], list[Evaluation | MeasurementError]]:
        """Starts evaluating ``archs``; returns a function that waits for the answers in order."""
        futures = self.client.map(evaluate_remote, [self.run_path] * len(archs),
                                  [self.factory] * len(archs), [dict(a) for a in archs],
                                  pure=False)
        return lambda: [_outcome(answer) for answer in self.client.gather(futures)]

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> DaskPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
