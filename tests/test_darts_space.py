"""Tests of the DARTS cell space: its encoding, cell shapes, edges, derive and cost extremes."""
from __future__ import annotations

import itertools

import nnabla as nn
import numpy as np
import pytest
from conftest import randomize
from test_spaces import declared_weights, used_weights

from hwnas.arch import Arch
from hwnas.hwcost import count_macs, inference_output
from hwnas.supernet import CellSpace, CellSupernet, create_space
from hwnas.supernet._candidates import DARTS_OPS

SMALL = dict(input_shape=(1, 8, 8), n_classes=10, cells=3, channels=4, nodes=2)
FEW = ["zero", "skip", "max_k3", "sep_k3"]


def make_space(**overrides) -> CellSpace:
    return create_space("darts", **{**SMALL, **overrides})


def data(shape: tuple[int, ...], seed: int = 0) -> nn.Variable:
    return nn.Variable.from_numpy_array(
        np.random.default_rng(seed).normal(size=shape).astype(np.float32))


# ---------------------------------------------------------------- the encoding


@pytest.mark.parametrize("cells, nodes, kinds", [(3, 2, ("normal", "reduce")),
                                                 (8, 4, ("normal", "reduce")),
                                                 (2, 3, ("normal",)), (1, 1, ("normal",))])
def test_choices_are_inputs_and_two_operations_per_node(cells: int, nodes: int, kinds) -> None:
    space = make_space(cells=cells, nodes=nodes)
    assert space.kinds == kinds
    names = [f"{k}/n{i}/{c}" for k in kinds for i in range(nodes)
             for c in ("inputs", "op0", "op1")]
    assert list(space.choices) == names and len(names) == 3 * nodes * len(kinds)
    for kind in kinds:
        for i in range(nodes):
            pairs = space.choices[f"{kind}/n{i}/inputs"]
            assert set(pairs) == {f"{a}+{b}" for a, b in itertools.combinations(range(i + 2), 2)}
            assert len(pairs) == (i + 2) * (i + 1) // 2
            for op in ("op0", "op1"):
                assert space.choices[f"{kind}/n{i}/{op}"] == DARTS_OPS[1:]


def test_default_operations_and_a_chosen_subset() -> None:
    assert make_space().operations == DARTS_OPS
    assert make_space(operations=[]).operations == DARTS_OPS
    space = make_space(operations=["sep_k3", "zero", "skip"])
    assert space.operations == ("sep_k3", "zero", "skip")
    assert space.choices["normal/n0/op0"] == ("sep_k3", "skip")
    assert all(a.shape == (3,) for a in space.supernet().arch_parameters().values())


@pytest.mark.parametrize("overrides, word", [
    (dict(cells=0), "cells"), (dict(nodes=0), "nodes"), (dict(channels=0), "channels"),
    (dict(n_classes=1), "n_classes"), (dict(input_shape=(1, 3, 8)), "input_shape"),
    (dict(input_shape=(8, 8)), "input_shape"),
    (dict(operations=["skip", "sep_k4"]), "sep_k4"), (dict(operations=["conv"]), "conv"),
    (dict(operations=["zero"]), "zero"), (dict(operations=["skip", "max_k3", "skip"]), "skip"),
    (dict(operations=["skip", "bn"]), "bn"),  # bn cannot reduce
])
def test_invalid_spaces_raise_with_the_value(overrides: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        make_space(**overrides)


def test_bn_is_an_operation_where_no_cell_reduces() -> None:
    assert "bn" in make_space(cells=2, operations=["skip", "bn"]).operations


def test_validate_rejects_pairs_out_of_order_or_range_and_zero() -> None:
    space = make_space()
    good = dict(space.sample(np.random.default_rng(0)))
    for pair in ("2+1", "1+1", "0+3", "1+3", "0"):
        with pytest.raises(ValueError, match="inputs"):
            space.validate(Arch({**good, "normal/n1/inputs": pair}))
    with pytest.raises(ValueError, match="zero"):
        space.validate(Arch({**good, "reduce/n0/op1": "zero"}))


# ---------------------------------------------------------------- cells


@pytest.mark.parametrize("cells, reductions", [(1, []), (2, []), (3, [1, 2]), (5, [1, 3]),
                                               (8, [2, 5])])
def test_reduction_cells_halve_the_size_and_double_the_channels(cells: int, reductions) -> None:
    space = make_space(cells=cells, channels=2, nodes=2, input_shape=(1, 9, 9),
                       operations=["skip", "max_k3"])
    assert [k for k, p in enumerate(space.plans) if p.kind == "reduce"] == reductions
    net = space.supernet()
    net.training = False
    s0 = s1 = net.stem(nn.Variable((2, 1, 9, 9)))
    assert s0.shape == (2, 6, 9, 9)
    channels, size = 2, 9
    for k in range(cells):
        if k in reductions:
            channels, size = 2 * channels, (size - 1) // 2 + 1
        s0, s1 = s1, net.submodules[f"cell{k}"](s0, s1)
        assert s1.shape == (2, 2 * channels, size, size), k
    assert space.output_shape == s1.shape[1:]
    assert net(nn.Variable((2, 1, 9, 9))).shape == (2, 10)


def test_edges_share_architecture_parameters_by_cell_type() -> None:
    space = make_space(cells=5)
    net = space.supernet()
    mixed = net.mixed_ops()
    assert list(mixed) == [f"{k}/n{i}/in{j}" for k in ("normal", "reduce")
                           for i in range(2) for j in range(i + 2)]
    assert all(len(ops) == (3 if name.startswith("normal") else 2) for name, ops in mixed.items())
    alphas = net.arch_parameters()
    assert len(set(alphas.values())) == len(alphas)
    # Strided edges from a reduction cell's inputs, stride 1 from its nodes.
    reduce = net.cell1
    assert reduce.plan.kind == "reduce"
    reduce.edge(0, 0).active = reduce.edge(1, 2).active = "max_k3"
    x = nn.Variable((1,) + reduce.plan.edge_input(0))
    assert reduce.edge(0, 0)(x).shape[2:] == (4, 4)
    assert reduce.edge(1, 2)(nn.Variable((1,) + reduce.plan.node)).shape[2:] == (4, 4)


def _cell_output(cell, s0: nn.Variable, s1: nn.Variable) -> np.ndarray:
    y = cell(s0, s1)
    y.forward(clear_buffer=True)
    return y.d.copy()


def test_a_node_whose_edges_are_all_off_is_zeros() -> None:
    space = make_space(operations=FEW)
    net = space.supernet()
    randomize(net)
    net.training = False
    net.set_active(space.sample(np.random.default_rng(0)))
    for k in (0, 1):  # a normal and a reduction cell
        cell = net.submodules[f"cell{k}"]
        for j in range(3):
            cell.edge(1, j).active = None
        out = _cell_output(cell, data((2,) + cell.plan.in0), data((2,) + cell.plan.in1, 1))
        c = cell.plan.channels
        assert out.shape[1:] == (2 * c,) + cell.plan.node[1:]
        assert np.all(out[:, c:] == 0) and np.abs(out[:, :c]).max() > 0
        for j in range(2):
            cell.edge(0, j).active = None
        assert np.all(_cell_output(cell, data((2,) + cell.plan.in0),
                                   data((2,) + cell.plan.in1)) == 0)


def test_a_cell_with_one_edge_on_computes_that_edge_alone() -> None:
    space = make_space(operations=FEW)
    net = space.supernet()
    randomize(net)
    net.training = False
    cell = net.cell1  # a reduction cell: edges from its inputs are strided
    for i, j in cell.edges:
        cell.edge(i, j).active = None
    cell.edge(1, 0).active = "sep_k3"
    s0, s1 = data((2,) + cell.plan.in0), data((2,) + cell.plan.in1, 1)
    got = _cell_output(cell, s0, s1)
    assert cell.reads() == (True, True)  # node 0 is zeros made from input 1
    h = cell.edge(1, 0).submodules["sep_k3"](cell.pre0(s0))
    h.forward()
    c = cell.plan.channels
    assert np.all(got[:, :c] == 0)
    np.testing.assert_allclose(got[:, c:], h.d, atol=1e-6, rtol=0)


def test_unread_cells_and_preprocessings_are_not_active() -> None:
    space = make_space(operations=FEW)
    net = space.supernet()
    x = nn.Variable((2,) + space.input_shape)
    net.set_active(space.sample(np.random.default_rng(0)))
    # The last cell reads only c_{k-2}: cell 1 and cell 2's pre1 drop out of the graph.
    last = net.cell2
    for i, j in last.edges:
        last.edge(i, j).active = "max_k3" if j != 1 else None
    groups = net.active_groups()
    assert not any(g.startswith("cell1/") for g in groups) and "cell2/pre1" not in groups
    assert "cell2/pre0" in groups and "stem" in groups
    assert used_weights(net, net(x)) == declared_weights(net)


def test_extracted_subnet_holds_only_the_chosen_edges() -> None:
    space = make_space()
    net = space.supernet()
    arch = space.extremes()[1]
    subnet = net.extract(arch)
    for k, cell in enumerate(subnet.submodules[f"cell{k}"] for k in range(3)):
        chosen = space.edges(arch)[cell.plan.kind]
        assert set(cell.edges) == set(chosen)
        assert all(cell.edge(i, j).options == chosen[i, j] for i, j in cell.edges)
    groups = set(subnet.parameter_groups())
    assert {g.split("/")[-1] for g in groups if g.count("/") == 3} == {"sep_k5"}
    assert isinstance(subnet, CellSupernet) and subnet.training is False


# ---------------------------------------------------------------- derive


def test_derive_breaks_ties_to_the_lower_input_and_the_first_operation() -> None:
    space = make_space(nodes=3)
    net = space.supernet()
    derived = net.derive()  # every logit 0
    for kind in ("normal", "reduce"):
        for i in range(3):
            assert derived[f"{kind}/n{i}/inputs"] == "0+1"
            assert derived[f"{kind}/n{i}/op0"] == derived[f"{kind}/n{i}/op1"] == DARTS_OPS[1]


def test_derive_keeps_the_two_strongest_edges_ignoring_zero() -> None:
    space = make_space(nodes=3, operations=FEW)
    net = space.supernet()
    alphas = net.arch_parameters()
    # Node 2 of the normal cell: edge 3 strongest (sep_k3), edge 1 next (skip);
    # edge 0 is all "zero", edge 2 ties edge 1 but loses to the lower index.
    logits = {0: [9.0, 0, 0, 0], 1: [0, 2.0, 0, 0], 2: [0, 0, 2.0, 0], 3: [0, 0, 0, 4.0]}
    for j, v in logits.items():
        alphas[f"normal/n2/in{j}"].d = np.array(v, np.float32)
    derived = net.derive()
    assert derived["normal/n2/inputs"] == "1+3"
    assert (derived["normal/n2/op0"], derived["normal/n2/op1"]) == ("skip", "sep_k3")
    assert derived["reduce/n2/inputs"] == "0+1"


# ---------------------------------------------------------------- costs


def _macs(net: CellSupernet, arch: Arch) -> int:
    net.set_active(arch)
    return count_macs(inference_output(net, nn.Variable((1,) + net.space.input_shape)))


def _neighbours(space: CellSpace, arch: Arch) -> list[Arch]:
    return [Arch({**arch, name: option}) for name, options in space.choices.items()
            for option in options if option != arch[name]]


def test_extremes_are_the_cheapest_and_the_most_expensive_by_macs() -> None:
    space = make_space(operations=["zero", "skip", "avg_k3", "sep_k3", "dil_k3"])
    net = space.supernet()
    cheapest, priciest = space.extremes()
    low, high = _macs(net, cheapest), _macs(net, priciest)
    x = nn.Variable((1,) + space.input_shape)
    assert high == count_macs(inference_output(net.extract(priciest), x)) > low
    rng = np.random.default_rng(0)
    others = [space.sample(rng) for _ in range(6)]
    for arch in others + _neighbours(space, cheapest):
        assert _macs(net, arch) >= low, arch
    for arch in others + _neighbours(space, priciest):
        assert _macs(net, arch) <= high, arch
    # A strided skip is a convolution: the cheapest reduction cell pools instead.
    assert cheapest["reduce/n0/op0"] == cheapest["reduce/n0/op1"] == "avg_k3"
    assert cheapest["reduce/n1/inputs"] == "0+2" and cheapest["reduce/n1/op1"] == "skip"
    assert priciest["normal/n1/inputs"] == "1+2" and priciest["normal/n1/op0"] == "sep_k3"


def test_units_name_the_operation_shape_and_stride() -> None:
    space = make_space(operations=FEW)
    arch = Arch({**space.extremes()[0], "normal/n1/inputs": "1+2", "normal/n1/op1": "sep_k3",
                 "reduce/n0/op0": "skip", "reduce/n0/op1": "sep_k3"})
    keys = [u.key for u in space.units(arch)]
    assert keys[0] == "stem_conv3_bn|in=1x8x8|out=12|s=1"
    assert keys[-1] == "head_gap_fc|in=32x2x2|classes=10"
    assert keys[1:3] == ["pre_relu_conv1|in=12x8x8|out=4|s=1"] * 2
    # Identity skips have no unit; the normal cell's node 1 takes sep_k3 from node 0.
    assert keys[3] == "sep_k3|in=4x8x8|out=4|s=1"
    assert keys[4:9] == ["pre_relu_conv1|in=12x8x8|out=8|s=1", "pre_relu_conv1|in=8x8x8|out=8|s=1",
                         "skip|in=8x8x8|out=8|s=2", "sep_k3|in=8x8x8|out=8|s=2",
                         "max_k3|in=8x8x8|out=8|s=2"]
    assert "pre_relu_conv1|in=8x8x8|out=16|s=2" in keys  # c_{k-2} after a reduction
    fixed, edges, share = space.arch_units()
    assert len(fixed) == 1 + 2 * 3 + 1
    assert share == {f"{k}/n{i}/in{j}": 2 / (i + 2) for k in ("normal", "reduce")
                     for i in range(2) for j in range(i + 2)}
    assert edges["normal/n0/in0"]["zero"] == [] and edges["normal/n0/in0"]["skip"] == []
    assert [u.key for u in edges["reduce/n0/in0"]["skip"]] == [
        "skip|in=8x8x8|out=8|s=2", "skip|in=16x4x4|out=16|s=2"]
