"""The toy problem of the conformance checks: three choices, 100 subnets, three objectives,
two budgets, and evaluations that cost nothing (no nnabla, no training, no device)."""
from __future__ import annotations

import collections
from collections.abc import Callable

import optuna

from hwnas.arch import Arch
from hwnas.costs import Costs, LatencyProtocol
from hwnas.objectives import Evaluation

#: The toy problem's choices: 5 x 5 x 4 = 100 subnets.
TOY_CHOICES: dict[str, tuple[str, ...]] = {
    "b0": ("ir_k3_e2", "ir_k3_e3", "ir_k5_e2", "ir_k5_e3", "skip"),
    "b1": ("ir_k3_e2", "ir_k3_e3", "ir_k5_e2", "ir_k5_e3", "skip"),
    "b2": ("ir_k3_e2", "ir_k3_e3", "ir_k5_e2", "ir_k5_e3"),
}
#: The toy problem's minimised objectives.
TOY_OBJECTIVES: list[str] = ["error", "latency_ms", "params"]
#: The toy problem's budgets: some subnets break them, some fit.
TOY_BUDGETS: dict[str, float] = {"params": 3000.0, "latency_ms": 0.5}
#: The first proposals of every search, enqueued: the smallest and the largest options.
TOY_EXTREMES = (Arch({name: options[0] for name, options in TOY_CHOICES.items()}),
                Arch({name: options[-1] for name, options in TOY_CHOICES.items()}))


def toy_evaluation(arch: Arch) -> Evaluation:
    """Deterministic, arch-dependent numbers with awkward floats (to catch rounding), for a
    subnet of ``TOY_CHOICES``."""
    index = [TOY_CHOICES[n].index(o) for n, o in arch.items()]
    size = sum((i + 1) * (j + 2) for j, i in enumerate(index))
    accuracy = 0.5 + size / 97.0
    protocol = LatencyProtocol(context="cpu", device="Test CPU @ 1.00GHz", nnabla_version="1.39.0",
                               threads=1, batch_size=1, warmup=5, repeats=30,
                               statistic="cpu_median", spread=0.1 + size / 1000.0,
                               reliable=True)
    costs = Costs(latency_ms=0.1 + size / 37.0, params=1000 + 173 * size, macs=10_000 + 999 * size,
                  memory_bytes=40_000 + 4 * size, protocol=protocol)
    return Evaluation(arch, {"accuracy": accuracy, "error": 1.0 - accuracy}, costs)


class CountingEvaluator:
    """An evaluator (default ``toy_evaluation``) counting how often each subnet is evaluated.

    Args:
        evaluate: the numbers of a subnet; for a space other than the toy problem's.
    """

    def __init__(self, evaluate: Callable[[Arch], Evaluation] = toy_evaluation) -> None:
        self.evaluate = evaluate
        self.calls: collections.Counter[str] = collections.Counter()

    def __call__(self, arch: Arch) -> Evaluation:
        self.calls[arch.key] += 1
        return self.evaluate(arch)


def proposals(study: optuna.Study) -> list[str]:
    """The keys of a study's trials, in the order they were proposed."""
    return [t.user_attrs.get("key", "") for t in study.get_trials(deepcopy=False)]
