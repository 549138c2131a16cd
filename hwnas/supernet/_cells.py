"""The pieces of a DARTS cell network: a cell's plan, the cell itself, the pooling head."""
from __future__ import annotations

import dataclasses

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF

from hwnas.supernet._candidates import build_candidate
from hwnas.supernet._mixed import MixedOp
from hwnas.supernet._ops import Op

_ZERO = "zero"


def _edge(i: int, j: int) -> str:
    return f"n{i}_in{j}"


@dataclasses.dataclass(frozen=True)
class CellPlan:
    """Where one cell sits: its type and the (C, H, W) of what it reads and computes.

    Attributes:
        kind: ``normal`` or ``reduce``.
        in0: the cell input c_{k-2} (the output of the cell two back, or the stem).
        in1: the cell input c_{k-1}.
        channels: C, the channels of every node.
        pre0_stride: 2 where the previous cell reduced (c_{k-2} is twice as large), else 1.
        node: (C, H, W) of every node.
    """

    kind: str
    in0: tuple[int, int, int]
    in1: tuple[int, int, int]
    channels: int
    pre0_stride: int
    node: tuple[int, int, int]

    def stride(self, j: int) -> int:
        """The stride of an edge from input ``j`` (2 from a reduction cell's inputs)."""
        return 2 if self.kind == "reduce" and j < 2 else 1

    def edge_input(self, j: int) -> tuple[int, int, int]:
        """(C, H, W) that an edge from input ``j`` reads (the cell inputs after preprocessing)."""
        return (self.channels,) + self.in1[1:] if j < 2 else self.node


class PoolHead(Op):
    """Global average pooling and the classifier."""

    def __init__(self, n_classes: int) -> None:
        self.n_classes = n_classes

    def call(self, x: nn.Variable) -> nn.Variable:
        return PF.affine(F.global_average_pooling(x), self.n_classes, name="fc",
                         fix_parameters=self.frozen)


class Cell(Op):
    """One DARTS cell: preprocessed inputs, then nodes summing their edges' mixed operations.

    Edge ``n{i}_in{j}`` feeds node i from input j (0: c_{k-2}, 1: c_{k-1},
    j >= 2: node j-2). A node whose every edge is off or zero is zeros; the
    output is the nodes concatenated on the channel axis.

    Args:
        plan: the cell's type and shapes.
        nodes: how many nodes.
        edges: (node, input) -> the candidates to build on that edge; absent edges are not built.
        alphas: (node, input) -> the shared architecture parameters of that edge, or None.
    """

    def __init__(self, plan: CellPlan, nodes: int, edges: dict[tuple[int, int], tuple[str, ...]],
                 alphas: dict[tuple[int, int], nn.Variable | None]) -> None:
        self.plan, self.nodes, self.edges = plan, nodes, tuple(edges)
        c = plan.channels
        self.pre0 = build_candidate("conv_k1", plan.in0[0], c, plan.pre0_stride)
        self.pre1 = build_candidate("conv_k1", plan.in1[0], c, 1)
        # Zeros made from the preprocessed c_{k-1}: batch-size agnostic, and saved graphs keep them.
        self.zeros = build_candidate(_ZERO, c, c, plan.stride(0))
        for (i, j), options in edges.items():
            ops = {o: build_candidate(o, c, c, plan.stride(j)) for o in options}
            for op in ops.values():
                # As in DARTS: no learnable BN scale that would rescale a candidate's weight.
                op.affine_bn = False
            zero = [_ZERO] if _ZERO in ops else []
            setattr(self, _edge(i, j), MixedOp(ops, alphas[i, j], zero=zero))

    def edge(self, i: int, j: int) -> MixedOp:
        return self.submodules[_edge(i, j)]

    def call(self, s0: nn.Variable, s1: nn.Variable) -> nn.Variable:
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(self.nodes):
            outputs = [self.edge(i, j)(states[j]) for (n, j) in self.edges if n == i]
            outputs = [o for o in outputs if o is not None]
            if not outputs:
                states.append(self.zeros(states[1]))
            else:
                states.append(outputs[0] if len(outputs) == 1 else F.add_n(*outputs))
        nodes = states[2:]
        return nodes[0] if len(nodes) == 1 else F.concatenate(*nodes, axis=1)

    def reads(self) -> tuple[bool, bool]:
        """Whether the next forward pass reads input 0 and input 1 (through the preprocessings)."""
        live = {(i, j) for i, j in self.edges if self.edge(i, j).used()}
        dead_node = any(not any(n == i for n, _ in live) for i in range(self.nodes))
        return (any(j == 0 for _, j in live), dead_node or any(j == 1 for _, j in live))
