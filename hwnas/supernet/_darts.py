"""The DARTS cell space: a stem, stacked normal and reduction cells of searchable edges, a head."""
from __future__ import annotations

from collections.abc import Iterator

import nnabla as nn
import numpy as np

from hwnas.arch import Arch
from hwnas.supernet._candidates import (DARTS_OPS, build_candidate, complexity, computes_nothing,
                                        parse_candidate)
from hwnas.supernet._cells import _ZERO, Cell, CellPlan, PoolHead
from hwnas.supernet._mixed import MixedOp
from hwnas.supernet._ops import ConvBNReLU, Op
from hwnas.supernet._space import BaseSearchSpace, Supernet, Unit, register_space, unit_key

#: The cell types, in the order of the choices.
CELL_TYPES = ("normal", "reduce")


class CellSupernet(Supernet):
    """Stem, DARTS cells whose edges are mixed operations, pooling head.

    Every edge (node i, input j) of every cell of one type shares the
    architecture parameters ``{type}/n{i}/in{j}`` (zero-initialised logits, one
    per operation of the space). ``set_active`` takes effect in ``single`` mode;
    a new supernet is set to the first option of every choice.

    Args:
        space: the space this network covers.
        arch: build only ``arch``'s path (a subnet without architecture
            parameters); None for the whole supernet.
    """

    def __init__(self, space: CellSpace, arch: Arch | None = None) -> None:
        self.space = space
        self.input_shape = space.input_shape
        self.stem = ConvBNReLU(space.stem_channels, 3, act=False)
        edges = space.edges(arch)
        k = len(space.operations)
        alphas = {kind: {e: None if arch is not None else nn.Variable.from_numpy_array(
            np.zeros(k, np.float32), need_grad=True) for e in edges[kind]}
            for kind in space.kinds}
        for c, plan in enumerate(space.plans):
            setattr(self, f"cell{c}", Cell(plan, space.nodes, edges[plan.kind], alphas[plan.kind]))
        self.head = PoolHead(space.n_classes)
        self._materialize()
        if arch is None:  # MixedOp starts on its first candidate, here "zero": a node of zeros
            self.set_active(Arch({name: options[0] for name, options in space.choices.items()}))

    def _cells(self) -> list[Cell]:
        return [self.submodules[f"cell{c}"] for c in range(len(self.space.plans))]

    def _parts(self) -> Iterator[tuple[str, Op, tuple[int, int, int]]]:
        """(parameter group, module, input (C, H, W)) of the stem, every preprocessing,
        every candidate of every edge, and the head."""
        yield "stem", self.stem, self.input_shape
        for c, cell in enumerate(self._cells()):
            yield f"cell{c}/pre0", cell.pre0, cell.plan.in0
            yield f"cell{c}/pre1", cell.pre1, cell.plan.in1
            for i, j in cell.edges:
                for option, module in cell.edge(i, j).submodules.items():
                    yield f"cell{c}/n{i}/in{j}/{option}", module, cell.plan.edge_input(j)
        yield "head", self.head, self.space.output_shape

    def _materialize(self) -> None:
        # Parametric functions create their weights on first call: build every
        # part once on a dummy input so that every shared weight exists now.
        training = self.training
        self.training = False
        for _, module, shape in self._parts():
            module(nn.Variable((1,) + shape))
        self.training = training

    def call(self, x: nn.Variable) -> nn.Variable:
        s0 = s1 = self.stem(x)
        for cell in self._cells():
            s0, s1 = s1, cell(s0, s1)
        return self.head(s1)

    def set_active(self, arch: Arch) -> None:
        chosen = self.space.edges(self.space.validate(arch))
        cells = self._cells()
        for cell in cells:  # check everything before changing anything
            for (i, j), (option,) in chosen[cell.plan.kind].items():
                if (i, j) not in cell.edges or option not in cell.edge(i, j).options:
                    raise ValueError(f"{cell.plan.kind} cell: edge n{i}/in{j} with {option!r} "
                                     f"is not in this network")
        for cell in cells:
            for i, j in cell.edges:
                picked = chosen[cell.plan.kind].get((i, j))
                cell.edge(i, j).active = None if picked is None else picked[0]

    def parameter_groups(self) -> dict[str, dict[str, nn.Variable]]:
        """``stem``, ``head``, ``cell{c}/pre0`` and ``/pre1``, and per edge candidate
        ``cell{c}/n{i}/in{j}/{op}`` (empty for candidates without weights)."""
        return {group: module.get_parameters(grad_only=True)
                for group, module, _ in self._parts()}

    def active_groups(self) -> list[str]:
        """The groups whose weights the next forward pass reads, in any mode.

        A cell whose output no later cell reads (every edge from it off or
        zero) drops out of the graph with everything in it, as does a
        preprocessing whose input no live edge reads.
        """
        cells = self._cells()
        reads = [cell.reads() for cell in cells]
        needed = [c == len(cells) - 1 for c in range(len(cells))]  # the head reads the last
        stem = False
        for c in reversed(range(len(cells))):
            if not needed[c]:
                continue
            for source, read in ((c - 2, reads[c][0]), (c - 1, reads[c][1])):
                if read and source >= 0:
                    needed[source] = True
                stem = stem or (read and source < 0)
        groups = ["stem"] if stem else []
        for c, cell in enumerate(cells):
            if not needed[c]:
                continue
            groups += [f"cell{c}/pre{k}" for k in (0, 1) if reads[c][k]]
            groups += [f"cell{c}/n{i}/in{j}/{option}" for i, j in cell.edges
                       for option in cell.edge(i, j).used()]
        return groups + ["head"]

    def mixed_ops(self) -> dict[str, list[MixedOp]]:
        ops: dict[str, list[MixedOp]] = {}
        for cell in self._cells():
            for i, j in cell.edges:
                if cell.edge(i, j).alpha is not None:
                    ops.setdefault(_alpha_name(cell.plan.kind, i, j), []).append(cell.edge(i, j))
        return ops  # cell 0 is a normal cell: normal edges first, then reduction edges

    def derive(self) -> Arch:
        """Per node the two strongest edges, each with its most likely operation but ``zero``.

        An edge's strength is the largest probability of its non-zero
        operations (DARTS); ties go to the lower input and the earlier operation.
        """
        if not self.mixed_ops():
            raise ValueError("this network has no architecture parameters to derive from")
        probabilities, options = self.probabilities(), self.arch_options()
        choices = {}
        for kind in self.space.kinds:
            for i in range(self.space.nodes):
                best = {}
                for j in range(i + 2):
                    name = _alpha_name(kind, i, j)
                    p, names = probabilities[name], options[name]
                    k = max((k for k, o in enumerate(names) if o != _ZERO), key=lambda k: p[k])
                    # Rounded: equal logits at other positions of the softmax differ in
                    # the last bits, and a tie must go to the lower input.
                    best[j] = (round(float(p[k]), 12), names[k])
                kept = sorted(best, key=lambda j: -best[j][0])[:2]
                choices.update(_node_choices(kind, i, {j: best[j][1] for j in kept}))
        return Arch(choices)

    def extract(self, arch: Arch) -> CellSupernet:
        return self._with_my_weights(CellSupernet(self.space, self.space.validate(arch)))


@register_space("darts")
class CellSpace(BaseSearchSpace):
    """The DARTS space (Liu et al., 2019): every node of the normal and of the reduction
    cell takes two earlier states, each through its own operation.

    Choices, per cell type and node i: ``{type}/n{i}/inputs`` (``"a+b"``,
    0 <= a < b < i + 2; 0 and 1 are the cell inputs, j >= 2 node j-2),
    ``{type}/n{i}/op0`` and ``/op1`` (the operations on the edges from a and
    b; any but ``zero``). Reduction cells sit at ``cells // 3`` and
    ``2 * cells // 3`` and double the channels; with fewer than 3 cells there is
    none, and no ``reduce`` choices.

    Every encoding is a network of its own, and every one can be built: every
    node enters the cell's output (the concatenation), so every edge's result
    is used; ``zero`` (whose edge would contribute nothing) is not an option of
    a choice; every other operation of every edge has its own weights; and the
    two inputs of a node are ordered (a < b), so no node has two encodings.
    ``canonical`` and ``validate`` are the base class's. (Every subnet of
    small configurations computed a function of its own; ``tests/test_canonical.py``
    checks that every one-choice move changes the network.)

    Args:
        input_shape: (C, H, W) of the input images; H, W >= 4.
        n_classes: classifier outputs.
        cells: how many cells.
        channels: node channels of the first cells (the stem has 3 times as many).
        nodes: nodes per cell.
        operations: the candidates of every edge; None or empty for :data:`DARTS_OPS`.
    """

    config_keys = ("cells", "channels", "nodes", "operations")

    def __init__(self, *, input_shape: tuple[int, int, int], n_classes: int, cells: int = 8,
                 channels: int = 16, nodes: int = 4, operations: list[str] | None = None) -> None:
        ops = tuple(operations) if operations else DARTS_OPS
        if len(input_shape) != 3 or input_shape[0] < 1 or min(input_shape[1:]) < 4:
            raise ValueError(f"input_shape must be (C, H, W) with H, W >= 4, got {input_shape}")
        for name, value, low in (("n_classes", n_classes, 2), ("cells", cells, 1),
                                 ("channels", channels, 1), ("nodes", nodes, 1)):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        repeated = sorted({o for o in ops if ops.count(o) > 1})
        if repeated:
            raise ValueError(f"operations repeat {repeated}: {list(ops)}")
        if all(o == _ZERO for o in ops):
            raise ValueError(f"operations need one besides 'zero', got {list(ops)}")
        reductions = {cells // 3, 2 * cells // 3} if cells >= 3 else set()
        for option in ops:
            for stride in (1, 2) if reductions else (1,):
                try:
                    build_candidate(option, channels, channels, stride)
                except ValueError as error:
                    raise ValueError(f"operation {option!r} cannot be an edge at stride "
                                     f"{stride}: {error}") from error
        self.input_shape = tuple(int(v) for v in input_shape)
        self.n_classes, self.nodes, self.operations = n_classes, nodes, ops
        self.stem_channels = 3 * channels
        self.kinds = CELL_TYPES if reductions else CELL_TYPES[:1]
        self.plans: list[CellPlan] = []
        c_pp = c_p = self.stem_channels
        hw_pp = hw_p = self.input_shape[1:]
        c, reduced = channels, False
        for k in range(cells):
            reduce = k in reductions
            c = 2 * c if reduce else c
            hw = tuple((v - 1) // 2 + 1 for v in hw_p) if reduce else hw_p
            self.plans.append(CellPlan("reduce" if reduce else "normal", (c_pp, *hw_pp),
                                       (c_p, *hw_p), c, 2 if reduced else 1, (c, *hw)))
            c_pp, hw_pp, c_p, hw_p, reduced = c_p, hw_p, nodes * c, hw, reduce
        self.output_shape = (c_p, *hw_p)
        ops_nonzero = tuple(o for o in ops if o != _ZERO)
        self.choices = {}
        for kind in self.kinds:
            for i in range(nodes):
                self.choices[f"{kind}/n{i}/inputs"] = tuple(
                    f"{a}+{b}" for b in range(i + 2) for a in range(b))
                self.choices[f"{kind}/n{i}/op0"] = ops_nonzero
                self.choices[f"{kind}/n{i}/op1"] = ops_nonzero

    def edges(self, arch: Arch | None = None) -> dict[str, dict[tuple[int, int], tuple[str, ...]]]:
        """Per cell type, (node, input) -> candidates: every operation on every edge, or
        ``arch``'s one operation on each of its chosen edges."""
        if arch is None:
            return {kind: {(i, j): self.operations for i in range(self.nodes)
                           for j in range(i + 2)} for kind in self.kinds}
        edges: dict[str, dict[tuple[int, int], tuple[str, ...]]] = {}
        for kind in self.kinds:
            edges[kind] = {}
            for i in range(self.nodes):
                a, b = (int(v) for v in arch[f"{kind}/n{i}/inputs"].split("+"))
                edges[kind][i, a] = (arch[f"{kind}/n{i}/op0"],)
                edges[kind][i, b] = (arch[f"{kind}/n{i}/op1"],)
        return edges

    def extremes(self) -> list[Arch]:
        """Per node, the two edges and operations cheapest, and most expensive, by ``complexity``
        (a strided ``skip`` rated as the 1x1 convolution it is); ties go to the lower inputs
        for the cheapest and to the deepest for the most expensive."""
        plans = {plan.kind: plan for plan in self.plans}
        archs = []
        for pick in (min, max):
            choices = {}
            for kind in self.kinds:
                for i in range(self.nodes):
                    def cost(j: int, option: str) -> tuple:
                        return _edge_cost(option, plans[kind].stride(j))
                    best = {j: pick(self.choices[f"{kind}/n{i}/op0"], key=lambda o: cost(j, o))
                            for j in range(i + 2)}
                    ranked = sorted(best, key=lambda j: (cost(j, best[j]), j), reverse=pick is max)
                    choices.update(_node_choices(kind, i, {j: best[j] for j in ranked[:2]}))
            archs.append(Arch(choices))
        return archs

    def supernet(self) -> CellSupernet:
        return CellSupernet(self)

    def arch_units(self) -> tuple[list[Unit], dict[str, dict[str, list[Unit]]], dict[str, float]]:
        """Stem, preprocessings and head are fixed; each operation of an edge adds its unit in
        every cell of the edge's type; a derived node keeps 2 of its i + 2 edges."""
        fixed = [self._stem_unit(), *[u for plan in self.plans for u in _pre_units(plan)],
                 self._head_unit()]
        edges = {_alpha_name(kind, i, j): {
            o: [u for plan in self.plans if plan.kind == kind
                for u in [_edge_unit(plan, j, o)] if u is not None] for o in self.operations}
            for kind in self.kinds for i in range(self.nodes) for j in range(i + 2)}
        share = {name: 2.0 / (int(name.split("/")[1][1:]) + 2) for name in edges}
        return fixed, edges, share

    def units(self, arch: Arch | None = None) -> list[Unit]:
        """Stem, per cell its two preprocessings and its chosen edges' operations, head.

        Node sums and concatenations belong to no unit: they are cheap, and
        the latency table's calibration absorbs them. Operations that compute
        nothing (``zero``, an identity ``skip``) have no unit. In a reduction
        cell an edge's unit depends on whether its input is a cell input
        (stride 2) or a node, i.e. on the ``inputs`` choice of its node.

        Args:
            arch: a subnet; None for every distinct unit of the space.

        Returns:
            ``arch``'s units in forward order, or each distinct unit of the space once.
        """
        edges = self.edges(None if arch is None else self.check_choices(arch))
        units = [self._stem_unit()]
        for plan in self.plans:
            units += [*_pre_units(plan), *[_edge_unit(plan, j, option) for (_, j), options
                                           in sorted(edges[plan.kind].items())
                                           for option in options]]
        units = [u for u in units + [self._head_unit()] if u is not None]
        return units if arch is not None else list({u.key: u for u in units}.values())

    def _stem_unit(self) -> Unit:
        out = self.stem_channels
        return Unit(unit_key("stem_conv3_bn", self.input_shape, out=out, s=1), self.input_shape,
                    lambda: ConvBNReLU(out, 3, act=False))

    def _head_unit(self) -> Unit:
        n_classes = self.n_classes
        return Unit(unit_key("head_gap_fc", self.output_shape, classes=n_classes),
                    self.output_shape, lambda: PoolHead(n_classes))


def _alpha_name(kind: str, i: int, j: int) -> str:
    return f"{kind}/n{i}/in{j}"


def _node_choices(kind: str, i: int, picks: dict[int, str]) -> dict[str, str]:
    """The three choices of node i from its two inputs and their operations."""
    (a, op_a), (b, op_b) = sorted(picks.items())
    return {f"{kind}/n{i}/inputs": f"{a}+{b}", f"{kind}/n{i}/op0": op_a, f"{kind}/n{i}/op1": op_b}


def _edge_cost(option: str, stride: int) -> tuple:
    # complexity() rates options at stride 1 where skip is the identity; strided, it is a
    # 1x1 convolution (pools at equal channels stay free).
    if stride > 1 and parse_candidate(option).form == "skip":
        return complexity("conv_k1")[:-1] + (option,)
    return complexity(option)


def _pre_units(plan: CellPlan) -> list[Unit]:
    def unit(shape: tuple[int, int, int], stride: int) -> Unit:
        c = plan.channels
        return Unit(unit_key("pre_relu_conv1", shape, out=c, s=stride), shape,
                    lambda: build_candidate("conv_k1", shape[0], c, stride))
    return [unit(plan.in0, plan.pre0_stride), unit(plan.in1, 1)]


def _edge_unit(plan: CellPlan, j: int, option: str) -> Unit | None:
    c, stride = plan.channels, plan.stride(j)
    if computes_nothing(option, c, c, stride):
        return None
    shape = plan.edge_input(j)
    return Unit(unit_key(option, shape, out=c, s=stride), shape,
                lambda: build_candidate(option, c, c, stride))
