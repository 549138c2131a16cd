"""The search loop shared by the pipeline and the benchmarks: ask, answer, tell."""
from __future__ import annotations

import collections
import dataclasses
import math
import time
from collections.abc import Callable, MutableMapping
from typing import Union

from hwnas.errors import MeasurementError
from hwnas.records import Evaluation
from hwnas.strategies import BaseStrategy
from hwnas.arch import Arch

#: Consecutive failed evaluations after which a search stops.
MAX_FAILURES = 3
#: Consecutive proposals of already evaluated subnets after which a search
#: stops: the strategy has converged or the space is exhausted.
MAX_REPEATS = 200


@dataclasses.dataclass
class DriveResult:
    """What one call of :func:`drive` did.

    Attributes:
        evaluated: distinct subnets evaluated (the budget counts these).
        cached: proposals answered from the study without evaluating again.
        failed: evaluations that raised MeasurementError (trial marked failed).
        stalled: the loop stopped early because the strategy only repeated itself.
        exhausted: the space holds fewer subnets than asked for; all were evaluated.
        seconds: wall time of the whole loop.
        evaluating_seconds: wall time spent waiting for evaluations; the rest
            went to the strategy, the study and bookkeeping.
    """

    evaluated: int = 0
    cached: int = 0
    failed: int = 0
    stalled: bool = False
    exhausted: bool = False
    seconds: float = 0.0
    evaluating_seconds: float = 0.0


Outcome = Union[Evaluation, MeasurementError]


def serial(evaluate: Callable[[Arch], Evaluation]) -> Callable[[list[Arch]], list[Outcome]]:
    """Evaluates a batch one subnet after the other in this process."""
    def run(archs: list[Arch]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for arch in archs:
            try:
                outcomes.append(evaluate(arch))
            except MeasurementError as exc:
                outcomes.append(exc)
        return outcomes
    return run


def _deferred(evaluate_batch: Callable[[list[Arch]], list[Outcome]]
              ) -> Callable[[list[Arch]], Callable[[], list[Outcome]]]:
    """``submit`` for a synchronous evaluator: the work happens when the answer is wanted."""
    def submit(archs: list[Arch]) -> Callable[[], list[Outcome]]:
        return lambda: evaluate_batch(archs)
    return submit


def drive(strategy: BaseStrategy, evaluate: Callable[[Arch], Evaluation] | None,
          evaluations: int, *, known: MutableMapping[str, Evaluation],
          on_result: Callable[[Evaluation, bool], None] | None = None,
          max_repeats: int = MAX_REPEATS, batch: int = 1,
          evaluate_batch: Callable[[list[Arch]], list[Outcome]] | None = None,
          submit: Callable[[list[Arch]], Callable[[], list[Outcome]]] | None = None,
          depth: int = 2) -> DriveResult:
    """Runs ``strategy`` until ``known`` holds ``evaluations`` distinct subnets
    (or every subnet of a smaller space).

    Proposals come ``batch`` at a time and up to ``depth`` batches are in
    flight: batch k + 1 is asked (and handed to the workers) before batch k is
    told, so the workers never wait for the strategy. The new subnets of a
    batch are evaluated together (``submit``, for example by worker
    processes); every proposal is told in the order it was asked. What is
    proposed thus depends on the seed, the batch size and the depth, never on
    how many workers evaluate or which finishes first.

    A proposal already in ``known`` is answered from it (its trial is marked
    ``cached``) and not evaluated again; it does not count against the budget.
    Before the loop the strategy replays ``known``, so a resumed search goes
    on where it stopped.

    Args:
        strategy: proposes subnets; its trials go to its study.
        evaluate: scores one subnet; raises MeasurementError when it cannot.
        evaluations: the number of distinct evaluated subnets to reach.
        known: key -> evaluation of every subnet evaluated so far (the study's);
            new evaluations are added.
        on_result: called with each evaluation and whether it was cached.
        max_repeats: stop after this many cached answers in a row.
        batch: proposals asked at once.
        evaluate_batch: scores a list of distinct subnets, returning an
            Evaluation or the MeasurementError of each, in order; default:
            ``evaluate`` on each in turn.
        submit: starts scoring a list of distinct subnets and returns a
            function that waits for ``evaluate_batch``'s answer (worker pools);
            default: ``evaluate_batch``, run when its answer is wanted.
        depth: batches in flight at once.

    Raises:
        MeasurementError: ``MAX_FAILURES`` evaluations in a row failed.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if submit is None:
        if evaluate_batch is None:
            if evaluate is None:
                raise ValueError("drive needs evaluate, evaluate_batch or submit")
            evaluate_batch = serial(evaluate)
        submit = _deferred(evaluate_batch)
    size = math.prod(len(options) for options in strategy.choices.values())
    target = min(evaluations, size)
    result = DriveResult(exhausted=size < evaluations)
    start = time.perf_counter()
    strategy.replay(known)
    repeats = failures = 0
    inflight: collections.deque = collections.deque()  # (archs, keys evaluated, result)
    pending: set[str] = set()  # keys being evaluated by an in-flight batch
    failed: dict[str, MeasurementError] = {}  # failures that in-flight repeats share
    asking = True
    archs: list[Arch] = []
    told = 0
    try:
        while True:
            while asking and len(inflight) < depth and len(known) + len(pending) < target:
                archs = strategy.ask(min(batch, target - len(known) - len(pending)))
                if not archs:
                    break
                todo = list({a.key: a for a in archs
                             if a.key not in known and a.key not in pending}.values())
                pending.update(a.key for a in todo)
                began = time.perf_counter()
                handle = submit(todo) if todo else (lambda: [])
                result.evaluating_seconds += time.perf_counter() - began
                inflight.append((archs, [a.key for a in todo], handle))
            if not inflight:
                result.stalled = len(known) < target
                break
            archs, keys, handle = inflight.popleft()
            told = 0
            began = time.perf_counter()
            outcomes = dict(zip(keys, handle()))
            result.evaluating_seconds += time.perf_counter() - began
            pending.difference_update(keys)
            for arch in archs:
                outcome = known.get(arch.key) or outcomes.get(arch.key) or failed.get(arch.key)
                told += 1
                if isinstance(outcome, MeasurementError):
                    # Recorded as failed, never as a zero cost; a run of
                    # failures means the machine cannot measure reliably.
                    failed[arch.key] = outcome
                    strategy.abandon(arch, reason=str(outcome))
                    result.failed += 1
                    failures += 1
                    if failures >= MAX_FAILURES:
                        raise MeasurementError(f"{failures} measurements in a row failed; "
                                               f"last: {outcome}")
                    continue
                cached = arch.key in known
                if cached:
                    repeats += 1
                    result.cached += 1
                else:
                    repeats = failures = 0
                    known[arch.key] = outcome
                    result.evaluated += 1
                strategy.tell(arch, outcome, cached=cached)
                if on_result is not None:
                    on_result(outcome, cached)
            if not inflight:
                failed.clear()
            if repeats >= max_repeats:
                result.stalled = True
                asking = False  # tell what is in flight, then stop
    except BaseException:
        untold = archs[told:] + [a for batch_archs, _, _ in inflight for a in batch_archs]
        for arch in reversed(untold):
            strategy.abandon(arch, reason="interrupted")
        raise
    result.seconds = time.perf_counter() - start
    return result
