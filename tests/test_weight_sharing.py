"""Tests of supernet weight sharing: subnet extraction, shared parameters and parameter groups."""
from __future__ import annotations

import nnabla as nn
import numpy as np
import pytest
from _supernet_helpers import INPUT_SHAPE, _archs, make_space
from conftest import forward, graph_leaves, group_of, randomize, snapshot

from hwnas.arch import Arch


def bn_statistics(y: nn.Variable) -> set[nn.Variable]:
    stats: set[nn.Variable] = set()

    def visit(function) -> None:
        if function.info.type_name in ("BatchNormalization", "NumpyBatchNormalization"):
            stats.update(function.inputs[-2:])

    y.visit(visit)
    return stats


# ---------------------------------------------------------------- weight sharing


def test_extracted_subnet_computes_what_the_active_supernet_computes() -> None:
    space = make_space()
    net = space.supernet()
    randomize(net)
    x = np.random.default_rng(1).normal(size=(4,) + INPUT_SHAPE).astype(np.float32)
    outputs = {}
    for arch in _archs(space, 5):
        net.set_active(arch)
        net.training = False
        expected = forward(net, x)
        subnet = net.extract(arch)
        assert subnet.training is False
        got = forward(subnet, x)
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
        outputs[arch.key] = expected
    # The paths really differ, so routing through the wrong one would show.
    values = list(outputs.values())
    assert all(not np.allclose(values[0], v, atol=1e-3) for v in values[1:])


def test_extracted_subnet_holds_only_its_path() -> None:
    space = make_space()
    net = space.supernet()
    arch = _archs(space, 1)[0]
    subnet = net.extract(arch)
    groups = set(subnet.parameter_groups())
    assert groups == {"stem", "head"} | {f"{n}/{o}" for n, o in arch.items()}
    mine = net.net_parameters()
    for key, param in subnet.net_parameters().items():
        assert key in mine and param.shape == mine[key].shape
        assert param.need_grad == mine[key].need_grad


def test_extracted_weights_are_copies() -> None:
    space = make_space()
    net = space.supernet()
    randomize(net)
    arch = _archs(space, 1)[0]
    x = np.random.default_rng(2).normal(size=(2,) + INPUT_SHAPE).astype(np.float32)
    subnet = net.extract(arch)
    before = forward(subnet, x)
    sub_params = subnet.net_parameters()
    # Changing the supernet afterwards leaves the subnet alone ...
    for param in net.net_parameters().values():
        param.d = param.d + 1.0
    np.testing.assert_array_equal(forward(subnet, x), before)
    # ... and the other way round.
    snap = snapshot(net)
    for param in sub_params.values():
        param.d = np.zeros(param.shape)
    after = snapshot(net)
    assert all(np.array_equal(snap[k], after[k]) for k in snap)
    mine = net.net_parameters()
    assert all(sub_params[k] != mine[k] for k in sub_params)


def test_archs_sharing_an_option_share_its_parameters() -> None:
    space = make_space()
    net = space.supernet()
    groups = net.parameter_groups()
    x = nn.Variable((1,) + INPUT_SHAPE)
    a = Arch({"b0": "ir_k3_e2", "b1": "skip", "b2": "ir_k5_e3"})
    b = Arch({"b0": "ir_k3_e2", "b1": "ir_k5_e2", "b2": "ir_k3_e2"})
    net.set_active(a)
    leaves_a = graph_leaves(net(x))
    groups_a = net.parameter_groups()
    net.set_active(b)
    leaves_b = graph_leaves(net(x))
    groups_b = net.parameter_groups()
    shared = groups["b0/ir_k3_e2"]
    assert shared
    for key, param in shared.items():
        # One Variable object per option, whatever path is active ...
        assert groups_a["b0/ir_k3_e2"][key] is param and groups_b["b0/ir_k3_e2"][key] is param
        # ... and it is what both paths' graphs read.
        assert param in leaves_a and param in leaves_b
    for key in ("stem", "head"):
        assert all(p in leaves_a and p in leaves_b for p in groups[key].values())
    # Different options and different blocks do not share.
    assert not any(p in leaves_a for p in groups["b2/ir_k3_e2"].values())
    assert all(groups["b0/ir_k3_e2"][k] != groups["b1/ir_k3_e2"][k] for k in shared)
    assert all(groups["b0/ir_k3_e2"][k] != groups["b0/ir_k3_e3"].get(k) for k in shared)


def test_parameter_groups_partition_the_trainable_parameters() -> None:
    space = make_space()
    net = space.supernet()
    groups = net.parameter_groups()
    assert set(groups) == {"stem", "head"} | {f"{n}/{o}" for n, opts in space.choices.items()
                                              for o in opts}
    trainable = net.get_parameters(grad_only=True)
    members = [p for g in groups.values() for p in g.values()]
    assert len(members) == len(set(members)) == len(trainable)
    assert set(members) == set(trainable.values())
    for key, param in trainable.items():
        assert param in set(groups[group_of(key)].values())
    # Architecture parameters are apart from the weights: one logit per option of each block.
    alphas = net.arch_parameters()
    assert set(alphas) == set(space.choices)
    assert not set(alphas.values()) & set(members)
    assert all(alphas[n].shape == (len(o),) for n, o in space.choices.items())


@pytest.mark.parametrize("training", [False, True])
def test_active_groups_cover_exactly_the_parameters_the_graph_uses(training: bool) -> None:
    space = make_space()
    net = space.supernet()
    groups = net.parameter_groups()
    x = nn.Variable((2,) + INPUT_SHAPE)
    for arch in _archs(space, 4, seed=5):
        net.set_active(arch)
        net.training = training
        assert net.active_groups() == ["stem", "head"] + [f"{n}/{o}" for n, o in arch.items()]
        y = net(x)
        used = graph_leaves(y) - bn_statistics(y) - {x}
        declared = {p for g in net.active_groups() for p in groups[g].values()}
        assert used == declared
        assert all(p.need_grad for p in used)

