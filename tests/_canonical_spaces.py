"""Two small search spaces for the tests of canonical encodings and infeasible subnets."""
from __future__ import annotations

import itertools

from conftest import SMALL_SPACE

from hwnas.arch import Arch
from hwnas.supernet import CellSpace, ChainSpace, InfeasibleArch

ZERO = "zero"


class ZeroCells(CellSpace):
    """The DARTS cell space with ``zero`` kept as an option of every edge: a real space with
    real equivalences.

    An edge whose operation is ``zero`` computes nothing (its mixed operation returns
    no tensor, so it adds nothing to the graph), and ``skip`` at stride 1 is the
    identity, so a node whose one other edge is ``skip`` from state k *is* state k
    (the same variable) and a ``skip`` from it is a ``skip`` from k. A node's
    network is thus the multiset of its live edges, each resolved that way: every
    encoding with the same resolved edges has the same extracted graph.
    ``canonical`` sets each node to the first of its options (in the order of the
    choices) with the same resolved edges. (A ``skip`` from an all-zero node is
    another network: it computes zeros too, but not with the same graph.)
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in self.choices:
            if not name.endswith("/inputs"):
                self.choices[name] = self.operations

    def canonical(self, arch: Arch) -> Arch:
        choices = dict(arch)
        for kind in self.kinds:
            stride = {plan.kind: plan for plan in self.plans}[kind].stride
            root: dict[int, int] = {0: 0, 1: 1}  # state -> the state it is (an alias) or itself

            def edges(inputs: str, op0: str, op1: str) -> tuple[tuple[int, str], ...]:
                a, b = (int(v) for v in inputs.split("+"))
                return tuple(sorted((root[j] if op == "skip" else j, op)
                                    for j, op in ((a, op0), (b, op1)) if op != ZERO))

            for i in range(self.nodes):
                names = [f"{kind}/n{i}/{c}" for c in ("inputs", "op0", "op1")]
                live = edges(*(arch[n] for n in names))
                choices.update(zip(names, next(
                    combo for combo in itertools.product(*(self.choices[n] for n in names))
                    if edges(*combo) == live)))
                alias = len(live) == 1 and live[0][1] == "skip" and stride(live[0][0]) == 1
                root[i + 2] = live[0][0] if alias else i + 2
        return Arch(choices)


class PickyChain(ChainSpace):
    """The small chain of the unit tests (``SMALL_SPACE``), refusing to skip both blocks of
    its first stage: a space with an infeasible combination (4 of its 100 subnets)."""

    def __init__(self) -> None:
        super().__init__(**SMALL_SPACE)

    def validate(self, arch: Arch) -> Arch:
        arch = super().validate(arch)
        if arch["b0"] == arch["b1"] == "skip":
            raise InfeasibleArch(arch, ["b0", "b1"], "a stage keeps at least one block")
        return arch


#: Small configurations of ZeroCells: one with a reduction cell, one with normal cells only.
ZERO_CELLS = dict(input_shape=(1, 8, 8), n_classes=10, cells=3, channels=4, nodes=2,
                  operations=[ZERO, "skip", "max_k3", "sep_k3"])
ZERO_NORMAL = dict(input_shape=(1, 8, 8), n_classes=10, cells=1, channels=4, nodes=2,
                   operations=[ZERO, "skip", "max_k3"])
