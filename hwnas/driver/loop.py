"""The one search loop: ask, evaluate (here, in worker processes, on Dask, as a database worker), tell."""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager
from typing import Union

import optuna

from hwnas.arch import Arch
from hwnas.driver.books import Books, Rules, failed_subnets, infeasible_subnets
from hwnas.errors import MeasurementError
from hwnas.objectives import Evaluation
from hwnas.strategies import BaseStrategy
from hwnas.studies import known_evaluations

#: Distinct subnets failing in a row after which a search stops: the machine
#: cannot measure (a subnet that failed before, proposed again, does not count).
MAX_FAILURES = 3
#: Further tries of a subnet whose evaluation failed before it is recorded as
#: never evaluable (one flaky measurement must not exclude a subnet for good).
RETRIES = 1
#: Consecutive proposals of already evaluated subnets after which a search
#: stops: the strategy has converged or the space is exhausted.
MAX_REPEATS = 200


@dataclasses.dataclass
class DriveResult:
    """What one call of :func:`drive` did (in this process).

    Attributes:
        evaluated: distinct subnets evaluated (the budget counts these).
        cached: proposals answered from the study without evaluating again (a
            subnet that failed before, and another encoding of a network
            evaluated before, included).
        failed: distinct subnets recorded as never evaluable: their evaluation
            raised MeasurementError, or gave a number out of range
            (``Evaluation.check``), on every try.
        infeasible: distinct proposals the space cannot build (``validate``),
            recorded as never evaluable without measuring anything.
        retried: evaluations tried again after a failure.
        stalled: the loop stopped early because the strategy only repeated itself.
        exhausted: the space holds fewer subnets than asked for; all were evaluated.
        seconds: wall time of the whole loop.
        evaluating_seconds: wall time spent waiting for evaluations; the rest
            went to the strategy, the study and bookkeeping.
    """

    evaluated: int = 0
    cached: int = 0
    failed: int = 0
    infeasible: int = 0
    retried: int = 0
    stalled: bool = False
    exhausted: bool = False
    seconds: float = 0.0
    evaluating_seconds: float = 0.0


Outcome = Union[Evaluation, MeasurementError]


class Sharing:
    """What the loop does about other processes writing the same study: here, nothing.

    ``hwnas search`` (serial, ``--workers``, ``--dask``) owns its study; a
    database worker shares it and fills these hooks in
    (``hwnas.driver.worker.DatabaseSharing``). Per round of asks the loop
    enters ``reserve()``, calls ``refresh(known)`` inside it and asks the
    strategy there; it waits for each batch inside ``evaluating(trials)``;
    and when the rest of the subnets it needs are being evaluated elsewhere,
    it calls ``wait()``.
    """

    def reserve(self) -> AbstractContextManager:
        """A context around counting the study's subnets and asking for the next ones."""
        return contextlib.nullcontext()

    def refresh(self, known: MutableMapping[str, Evaluation]) -> set[str]:
        """Adds the subnets other processes evaluated to ``known``; returns the keys
        they are evaluating now."""
        return set()

    def evaluating(self, trials: list[optuna.Trial]) -> AbstractContextManager:
        """A context around waiting for the evaluations of ``trials``."""
        return contextlib.nullcontext()

    def wait(self) -> bool:
        """Waits while other processes evaluate the last subnets; whether to look again."""
        return False


@dataclasses.dataclass
class _Batch:
    """Proposals asked together, and the evaluation of their new networks."""

    archs: list[Arch]  # every proposal, in the order asked
    networks: dict[str, Arch]  # key -> canonical encoding of each network evaluated for it,
    #                            in the order submitted
    trials: list[optuna.Trial]  # their trials
    answers: Callable[[], list[Outcome]]


class _Encodings(Mapping):
    """``known`` (network key -> evaluation) looked up by the key of any encoding: the
    evaluation of its network, under that encoding (what a strategy replays)."""

    def __init__(self, known: Mapping[str, Evaluation], books: Books) -> None:
        self._known, self._books = known, books

    def __getitem__(self, key: str) -> Evaluation:
        try:
            arch = Arch.from_key(key)
        except ValueError:
            raise KeyError(key) from None
        network = self._books.network(arch)
        if network is None or network.key not in self._known:
            raise KeyError(key)
        evaluation = self._known[network.key]
        return evaluation if evaluation.arch == arch else dataclasses.replace(evaluation,
                                                                              arch=arch)

    def __iter__(self) -> Iterator[str]:
        return iter(self._known)

    def __len__(self) -> int:
        return len(self._known)


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


def checked(outcome: Outcome) -> Outcome:
    """The outcome, or the MeasurementError of an evaluation with a number out of range:
    the one check of every number before it enters the study."""
    if isinstance(outcome, Evaluation):
        problem = outcome.problem()
        if problem is not None:
            return MeasurementError(problem)
    return outcome


def _answered(current: _Batch, submit: Callable[[list[Arch]], Callable[[], list[Outcome]]],
              result: DriveResult) -> dict[str, Outcome]:
    """Key -> checked outcome of each subnet a batch evaluated; a failed one is tried
    ``RETRIES`` more times first."""
    outcomes = {key: checked(o) for key, o in zip(current.networks, current.answers())}
    for _ in range(RETRIES):
        again = [current.networks[key] for key, o in outcomes.items()
                 if isinstance(o, MeasurementError)]
        if not again:
            break
        result.retried += len(again)
        outcomes.update((arch.key, checked(o)) for arch, o in zip(again, submit(again)()))
    return outcomes


def _deferred(evaluate_batch: Callable[[list[Arch]], list[Outcome]]
              ) -> Callable[[list[Arch]], Callable[[], list[Outcome]]]:
    """``submit`` for a synchronous evaluator: the work happens when the answer is wanted."""
    def submit(archs: list[Arch]) -> Callable[[], list[Outcome]]:
        return lambda: evaluate_batch(archs)
    return submit


def drive(strategy: BaseStrategy, evaluate: Callable[[Arch], Evaluation] | None,
          evaluations: int, *, study: optuna.Study,
          known: MutableMapping[str, Evaluation] | None = None,
          on_result: Callable[[Evaluation, bool], None] | None = None,
          max_repeats: int = MAX_REPEATS, batch: int = 1,
          evaluate_batch: Callable[[list[Arch]], list[Outcome]] | None = None,
          submit: Callable[[list[Arch]], Callable[[], list[Outcome]]] | None = None,
          depth: int = 2, sharing: Sharing | None = None,
          on_failure: Callable[[Arch, str], None] | None = None,
          result: DriveResult | None = None, space: Rules | None = None) -> DriveResult:
    """Runs ``strategy`` until ``known`` holds ``evaluations`` distinct subnets
    (or every subnet of a smaller space).

    Proposals come ``batch`` at a time and up to ``depth`` batches are in
    flight: batch k + 1 is asked (and handed to the workers) before batch k is
    told, so the workers never wait for the strategy. The new subnets of a
    batch are evaluated together (``submit``, for example by worker
    processes); every proposal is told in the order it was asked. What is
    proposed thus depends on the seed, the batch size and the depth, never on
    how many workers evaluate or which finishes first.

    Every proposal is one trial of ``study`` (``Books``). With a ``space``,
    a proposal stands for its network, the space's canonical encoding of it,
    and that is what is evaluated and what ``known`` is keyed by (the trial
    records both keys; the strategy is told the values under the encoding it
    proposed); one the space cannot build (``validate`` raises) is recorded as
    never evaluable at once, with the reason, and nothing is measured. A
    proposal whose network is already in ``known`` is answered from it (its
    trial is marked ``cached``) and not evaluated again; it does not count
    against the budget. Before the loop the strategy replays ``known``, so a
    resumed search goes on where it stopped.

    Every answer is checked before it enters the study (``Evaluation.problem``:
    finite numbers in range). A subnet whose evaluation fails (MeasurementError
    or a number out of range) is tried ``RETRIES`` more times at once; if it
    still fails it is recorded as never evaluable, once, with its reason
    (``Books.fail``): the strategy does not propose it again, and a proposal
    of it (or of a subnet the study records failed) is answered as failed
    without evaluating, like a cached one. ``MAX_FAILURES`` distinct subnets
    failing in a row stop the search. An interrupt fails the trial of every
    proposal not yet told, and is raised again.

    Args:
        strategy: proposes subnets.
        evaluate: scores one subnet; raises MeasurementError when it cannot.
        evaluations: the number of distinct evaluated subnets to reach.
        study: the run's study; a ``SamplerStrategy`` must ask this one.
        known: key -> evaluation of every subnet evaluated so far (default: the
            study's); new evaluations are added.
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
        sharing: other processes writing the study (a database worker's lock,
            heartbeat and count); default: none.
        on_failure: called with each subnet recorded as never evaluable and why.
        result: filled in as the loop goes (the counts stay with the caller when
            the loop raises); default: a new one.
        space: which encodings are one network, and which the space cannot build
            (``BaseSearchSpace.canonical`` and ``validate``); default: every
            encoding is a network of its own and can be built.

    Raises:
        MeasurementError: ``MAX_FAILURES`` distinct subnets in a row failed.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if submit is None:
        if evaluate_batch is None:
            if evaluate is None:
                raise ValueError("drive needs evaluate, evaluate_batch or submit")
            evaluate_batch = serial(evaluate)
        submit = _deferred(evaluate_batch)
    sharing = sharing or Sharing()
    known = known_evaluations(study) if known is None else known
    books = Books(study=study, strategy=strategy, space=space)
    # key -> reason of every subnet that can never be evaluated, the study's too
    failed = {k: r for k, r in failed_subnets(study).items() if k not in known}
    infeasible = infeasible_subnets(study)  # the keys of those the space cannot build
    size = math.prod(len(options) for options in strategy.choices.values())
    result = result if result is not None else DriveResult()

    def target() -> int:  # distinct subnets to reach: the space holds fewer evaluable ones
        result.exhausted = size - len(failed) < evaluations
        return min(evaluations, size - len(failed))

    start = time.perf_counter()
    strategy.exclude(failed)
    strategy.replay(_Encodings(known, books))
    repeats = failures = 0
    inflight: collections.deque[_Batch] = collections.deque()
    pending: set[str] = set()  # keys being evaluated by an in-flight batch
    asking = True
    untold: list[Arch] = []  # asked, neither in flight nor told yet
    try:
        while True:
            blocked = False  # the rest of the subnets are being evaluated elsewhere
            while asking and len(inflight) < depth:
                with sharing.reserve():
                    elsewhere = sharing.refresh(known) - pending
                    room = target() - len(known) - len(pending) - len(elsewhere)
                    if room <= 0:
                        blocked = bool(elsewhere)
                        break
                    opened = books.open(min(batch, room))
                if not opened:
                    break
                untold = [arch for arch, _ in opened]
                todo: dict[str, tuple[Arch, optuna.Trial]] = {}
                for arch, trial in opened:
                    key, network = books.key(arch), books.network(arch)
                    # one the space cannot build is recorded when told, and not measured
                    if network is not None and key not in known and key not in failed \
                            and key not in pending | elsewhere:
                        todo.setdefault(key, (network, trial))
                pending.update(todo)
                began = time.perf_counter()
                answers = submit([arch for arch, _ in todo.values()]) if todo else (lambda: [])
                result.evaluating_seconds += time.perf_counter() - began
                inflight.append(_Batch(untold, {k: a for k, (a, _) in todo.items()},
                                       [t for _, t in todo.values()], answers))
                untold = []
            if not inflight:
                if blocked and len(known) < target() and sharing.wait():
                    continue
                result.stalled = len(known) < target()
                break
            current = inflight.popleft()
            untold = current.archs
            began = time.perf_counter()
            with sharing.evaluating(current.trials):
                outcomes = _answered(current, submit, result)
            result.evaluating_seconds += time.perf_counter() - began
            pending.difference_update(current.networks)
            for i, arch in enumerate(current.archs):
                untold = current.archs[i + 1:]
                key = books.key(arch)
                outcome = known.get(key) or outcomes.pop(key, None)
                if outcome is None and key in failed:  # failed before: not again
                    books.fail(arch, reason=f"not evaluated again: {failed[key]}",
                               cached=True, infeasible=key in infeasible)
                    repeats += 1
                    result.cached += 1
                    continue
                refusal = books.refusal(arch)
                if outcome is None and refusal is not None:  # the space cannot build it
                    failed[key] = refusal
                    infeasible.add(key)
                    books.fail(arch, reason=refusal, infeasible=True)
                    result.infeasible += 1
                    continue
                if outcome is None:  # another process evaluates it
                    books.abandon(arch, reason="being evaluated by another worker")
                    continue
                if isinstance(outcome, MeasurementError):
                    # Recorded as failed, never as a zero cost; distinct subnets
                    # failing in a row mean the machine cannot measure.
                    failed[key] = str(outcome)
                    books.fail(arch, reason=str(outcome))
                    result.failed += 1
                    failures += 1
                    if on_failure is not None:
                        on_failure(arch, str(outcome))
                    if failures >= MAX_FAILURES:
                        raise MeasurementError(f"{failures} subnets in a row failed; "
                                               f"last: {outcome}")
                    continue
                cached = key in known
                if cached:
                    repeats += 1
                    result.cached += 1
                else:
                    repeats = failures = 0
                    known[key] = outcome
                    result.evaluated += 1
                books.tell(arch, outcome, cached=cached)
                if on_result is not None:
                    on_result(outcome, cached)
            if repeats >= max_repeats:
                result.stalled = True
                asking = False  # tell what is in flight, then stop
    except BaseException:
        for arch in reversed(untold + [a for b in inflight for a in b.archs]):
            books.abandon(arch, reason="interrupted")
        raise
    finally:
        result.seconds = time.perf_counter() - start
    return result
