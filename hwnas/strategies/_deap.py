"""DEAP's evolutionary strategies (NSGA-II, NSGA-III, SPEA2) over integer genomes."""
from __future__ import annotations

import abc
import functools
import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from deap import algorithms, base, tools

from hwnas.arch import Arch
from hwnas.strategies._base import ProposingStrategy

#: Probability that a pair of mates is recombined (``tools.cxUniform``).
CROSSOVER_PROB = 0.9
#: Probability that uniform crossover swaps one gene between the mates.
GENE_SWAP_PROB = 0.5
#: Individuals per generation unless a strategy is given another size.
POPULATION = 20


class ConstrainedFitness(base.Fitness):
    """Minimised objective values under Deb's constrained domination.

    A feasible fitness (``violation`` 0) dominates every infeasible one, of
    two infeasible ones the smaller violation dominates, and equal violations
    (feasible ones included) fall back to Pareto dominance of the values. The
    relation is thus violation first, then Pareto: a strict partial order, so
    DEAP's non-dominated sorting ranks every feasible individual before any
    infeasible one. Equality and hashing include the violation, because
    ``sortNondominated`` groups individuals by equal fitness and a budget may
    lie on an objective that is not optimised.

    DEAP keeps ``weights`` on the class: use ``fitness_class(n)``.

    Args:
        values: the objective values.
        violation: how far the individual breaks its budgets; 0 when feasible.
    """

    def __init__(self, values: Sequence[float] = (), violation: float = 0.0) -> None:
        super().__init__(values)
        self.violation = float(violation)

    @base.Fitness.values.deleter
    def values(self) -> None:
        self.wvalues = ()
        self.violation = 0.0

    def dominates(self, other: ConstrainedFitness, obj: slice = slice(None)) -> bool:
        if self.violation != other.violation:
            return self.violation < other.violation
        return super().dominates(other, obj)

    def __hash__(self) -> int:
        return hash((self.wvalues, self.violation))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ConstrainedFitness) and self.wvalues == other.wvalues
                and self.violation == other.violation)

    def __deepcopy__(self, memo: dict) -> ConstrainedFitness:
        copy = self.__class__(violation=self.violation)
        copy.wvalues = self.wvalues
        return copy

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.values!r}, violation={self.violation!r})"


@functools.lru_cache(maxsize=None)
def fitness_class(n_objectives: int) -> type[ConstrainedFitness]:
    """The ConstrainedFitness for ``n_objectives`` minimised objectives."""
    if n_objectives < 1:
        raise ValueError(f"a fitness needs at least one objective, got {n_objectives!r}")
    return type(f"ConstrainedFitness{n_objectives}", (ConstrainedFitness,),
                {"weights": (-1.0,) * n_objectives})


class _Individual(list):
    """A genome, one option index per choice, with its ``fitness``."""

    fitness: ConstrainedFitness


class _Ranked:
    """What a selection operator sees of one individual: its place in the pool
    and a fitness with normalised values."""

    __slots__ = ("index", "fitness")

    def __init__(self, index: int, fitness: ConstrainedFitness) -> None:
        self.index = index
        self.fitness = fitness


class _GlobalRandom:
    """A private ``random`` (and ``numpy.random``) state, installed as the global
    one for the duration of a ``with`` block.

    DEAP's operators draw from the global generators (NSGA-III's niching from
    numpy's). Swapping the strategy's own state in around every call makes the
    proposals depend on the seed alone, and leaves other code's draws alone.
    """

    def __init__(self, seed: Any) -> None:
        python = random.Random(seed)
        self._numpy = np.random.RandomState(python.getrandbits(32)).get_state()
        self._python = python.getstate()
        self._saved: tuple | None = None

    def __enter__(self) -> None:
        if self._saved is not None:
            raise RuntimeError("the strategy's random state is already installed")
        self._saved = (random.getstate(), np.random.get_state())
        random.setstate(self._python)
        np.random.set_state(self._numpy)

    def __exit__(self, *exc_info: object) -> None:
        self._python, self._numpy = random.getstate(), np.random.get_state()
        random.setstate(self._saved[0])
        np.random.set_state(self._saved[1])
        self._saved = None


class DeapStrategy(ProposingStrategy):
    """Generational (mu + lambda) evolution with DEAP's operators.

    A genome holds one option index per choice. Generation 0 is the enqueued
    subnets followed by random ones up to ``population`` (all enqueued ones
    are kept, even beyond it). Each later generation is ``population``
    offspring of mates drawn at random from the survivors
    (``tools.selRandom``), recombined by ``tools.cxUniform`` with probability
    ``CROSSOVER_PROB`` and mutated by ``tools.mutUniformInt`` with one expected
    gene per genome. Once every individual of a generation is told, the
    subclass's selection operator keeps ``population`` of the survivors and
    the generation, ranked by constrained domination (``ConstrainedFitness``)
    on objective values normalised to [0, 1] over that pool (dominance does
    not change, SPEA2's distances then weigh every objective alike).

    Every individual is its own proposal, a repeated subnet too (the driver
    answers it from the study); tells of one subnet are matched to its
    proposals in order. ``_propose`` returns nothing while a generation waits
    for tells.

    Args:
        population: individuals per generation (mu = lambda); at least 2.
        **kwargs: see ``BaseStrategy``.
    """

    def __init__(self, *, population: int = POPULATION, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(population, bool) or not isinstance(population, int) or population < 2:
            raise ValueError(f"population must be an integer >= 2, got {population!r}")
        self.population = population
        self._random = _GlobalRandom(self.seed)
        self._fitness = fitness_class(len(self.objectives))
        self._sizes = [len(options) for options in self.choices.values()]
        self._toolbox = base.Toolbox()
        self._toolbox.register("mate", tools.cxUniform, indpb=GENE_SWAP_PROB)
        self._toolbox.register("mutate", tools.mutUniformInt, low=[0] * len(self._sizes),
                               up=[size - 1 for size in self._sizes], indpb=1.0 / len(self._sizes))
        self._seeds: list[list[int]] = []
        self._survivors: list[_Individual] = []
        self._generation = -1  # none built yet: enqueue may still add to generation 0
        self._brood: list[_Individual] = []
        self._proposed = 0
        self._told = 0
        self._waiting: dict[str, list[int]] = {}  # key -> brood indices proposed, not told

    @abc.abstractmethod
    def _select(self, individuals: list[_Ranked], k: int) -> list[_Ranked]:
        """The DEAP selection operator: ``k`` of ``individuals`` (random draws allowed)."""

    # -- the strategy contract --------------------------------------------------------

    def enqueue(self, archs: list[Arch]) -> None:
        """Makes ``archs`` members of generation 0; call it before the first ask."""
        if self._generation >= 0:
            raise ValueError(f"enqueue comes too late: generation {self._generation} is built")
        for arch in archs:
            genome = self._genome(arch)
            if genome not in self._seeds:
                self._seeds.append(genome)

    def trial_attrs(self, arch: Arch) -> dict[str, Any]:
        # A generation is only replaced once all its proposals are told, so
        # every proposal awaiting its trial belongs to the current one.
        return {"generation": self._generation}

    def _propose(self, n: int) -> list[Arch]:
        if self._generation < 0:
            self._start()
        start = self._proposed
        archs = [self._arch(individual) for individual in self._brood[start:start + n]]
        for index, arch in enumerate(archs, start):
            self._waiting.setdefault(arch.key, []).append(index)
        self._proposed += len(archs)
        return archs

    def _learn(self, arch: Arch, values: list[float], violation: float) -> None:
        if len(values) != len(self.objectives) or not all(math.isfinite(v) for v in values):
            raise ValueError(f"expected {len(self.objectives)} finite values for "
                             f"{self.objectives}, got {values!r}")
        self._settle(arch, self._fitness(tuple(float(v) for v in values), violation))

    def fail(self, arch: Arch) -> None:
        """Never proposes ``arch`` again; its proposal counts as infeasible (infinite
        values and violation), so its generation completes without it and it ranks
        below every evaluated individual."""
        super().fail(arch)
        self._settle(arch, self._fitness((math.inf,) * len(self.objectives), math.inf))

    def _settle(self, arch: Arch, fitness: ConstrainedFitness) -> None:
        """Gives the oldest waiting proposal of ``arch`` its fitness; the last one of a
        generation starts the next."""
        indices = self._waiting.get(arch.key)
        if not indices:
            raise ValueError(f"{arch.key!r} is no proposal of generation {self._generation} "
                             "awaiting its values")
        index = indices.pop(0)
        if not indices:
            del self._waiting[arch.key]
        self._brood[index].fitness = fitness
        self._told += 1
        if self._told == len(self._brood):
            self._advance()

    # -- generations --------------------------------------------------------------------

    def _genome(self, arch: Arch) -> list[int]:
        if list(arch) != list(self.choices):
            raise ValueError(f"{arch.key!r} does not assign the choices {list(self.choices)}")
        try:
            return [self.choices[name].index(option) for name, option in arch.items()]
        except ValueError:
            raise ValueError(f"{arch.key!r} picks an option outside the space") from None

    def _arch(self, genome: Sequence[int]) -> Arch:
        return Arch({name: options[i] for (name, options), i in zip(self.choices.items(), genome)})

    def _start(self) -> None:
        with self._random:
            fill = [[random.randrange(size) for size in self._sizes]
                    for _ in range(self.population - len(self._seeds))]
        self._begin([_Individual(genome) for genome in self._seeds + fill])

    def _advance(self) -> None:
        self._survivors = self._environmental_selection(self._survivors + self._brood)
        with self._random:
            mates = tools.selRandom(self._survivors, self.population)
            offspring = algorithms.varAnd(mates, self._toolbox, CROSSOVER_PROB, 1.0)
        self._begin(offspring)

    def _begin(self, individuals: list[_Individual]) -> None:
        for individual in individuals:
            individual.fitness = self._fitness()
        self._generation += 1
        self._brood = individuals
        self._proposed = self._told = 0
        self._waiting = {}

    def _environmental_selection(self, pool: list[_Individual]) -> list[_Individual]:
        F = np.array([individual.fitness.values for individual in pool], dtype=float)
        # Failed individuals (infinite values) take the worst normalised value, 1,
        # so every operator sees finite numbers; their violation ranks them last.
        finite = np.isfinite(F).all(axis=1)
        seen = F[finite] if finite.any() else np.zeros((1, F.shape[1]))
        low, span = seen.min(axis=0), np.ptp(seen, axis=0)
        span[span == 0] = 1.0
        normalised = (F - low) / span
        normalised[~finite] = 1.0
        ranked = [_Ranked(i, self._fitness(tuple(row.tolist()), individual.fitness.violation))
                  for i, (row, individual) in enumerate(zip(normalised, pool))]
        with self._random:
            chosen = self._select(ranked, self.population)
        return [pool[r.index] for r in chosen]


class DeapNSGA2(DeapStrategy):
    """NSGA-II: non-dominated sorting, then crowding distance (``tools.selNSGA2``)."""

    name = "deap-nsga2"
    summary = "DEAP NSGA-II, constrained domination"

    def _select(self, individuals: list[_Ranked], k: int) -> list[_Ranked]:
        return tools.selNSGA2(individuals, k, nd="standard")


def reference_divisions(n_objectives: int, population: int) -> int:
    """The most divisions whose uniform reference points do not outnumber ``population``.

    ``p`` divisions of ``M`` objectives give ``C(M + p - 1, p)`` points; at least 1.
    """
    if n_objectives < 2:
        return 1
    p = 1
    while math.comb(n_objectives + p, p + 1) <= population:
        p += 1
    return p


class DeapNSGA3(DeapStrategy):
    """NSGA-III: non-dominated sorting, then niching on uniform reference points
    (``tools.selNSGA3``, about one point per individual)."""

    name = "deap-nsga3"
    summary = "DEAP NSGA-III (reference points), constrained domination"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._reference_points = tools.uniform_reference_points(
            len(self.objectives), reference_divisions(len(self.objectives), self.population))

    def _select(self, individuals: list[_Ranked], k: int) -> list[_Ranked]:
        return tools.selNSGA3(individuals, k, self._reference_points, nd="standard")


class DeapSPEA2(DeapStrategy):
    """SPEA2: strength Pareto fitness with density truncation (``tools.selSPEA2``)."""

    name = "deap-spea2"
    summary = "DEAP SPEA2, constrained domination"

    def _select(self, individuals: list[_Ranked], k: int) -> list[_Ranked]:
        return tools.selSPEA2(individuals, k)


__all__ = ["ConstrainedFitness", "DeapNSGA2", "DeapNSGA3", "DeapSPEA2", "DeapStrategy",
           "fitness_class", "reference_divisions"]
