"""Conformance tests every registered search space and its supernet must pass."""
from __future__ import annotations

from collections.abc import Callable

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest
from conftest import SMALL_SPACE, forward, graph_leaves, randomize, snapshot

from hwnas.arch import Arch
from hwnas.supernet import BaseSearchSpace, Supernet, create_space, list_spaces
from hwnas.testing import SPACE_CHECKS, check_space

#: A small configuration of every registered space (a new space must add one); a variant
#: ``NAME/what`` is the space NAME with other settings, checked by the same tests.
CONFIGS = {
    "mobilenet": SMALL_SPACE,
    "mobilenet/nested": {**SMALL_SPACE, "weight_sharing": "nested"},
    "darts": dict(input_shape=(1, 8, 8), n_classes=10, cells=3, channels=4, nodes=2),
}
BATCH = 2


def used_weights(net: Supernet, y: nn.Variable) -> set[nn.Variable]:
    """The trainable leaves the graph ending at ``y`` reads, architecture parameters aside."""
    alphas = set(net.arch_parameters().values())
    return {v for v in graph_leaves(y) if v.need_grad} - alphas


def declared_weights(net: Supernet) -> set[nn.Variable]:
    groups = net.parameter_groups()
    return {p for g in net.active_groups() for p in groups[g].values()}


def inputs(space: BaseSearchSpace, seed: int = 1) -> np.ndarray:
    shape = (BATCH,) + tuple(space.input_shape)
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def random_alphas(net: Supernet, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for alpha in net.arch_parameters().values():
        alpha.d = rng.normal(0.0, 1.0, alpha.shape)


def _favour_chain(net: Supernet, arch: Arch, rng: np.random.Generator) -> None:
    for name, alpha in net.arch_parameters().items():
        d = rng.uniform(-1.0, 1.0, alpha.shape)
        d[net.arch_options()[name].index(arch[name])] = 3.0
        alpha.d = d


def _favour_cells(net: Supernet, arch: Arch, rng: np.random.Generator) -> None:
    # The chosen edges' operations get 3, every other logit less; ``zero`` gets
    # the largest logit of all, which derive must ignore.
    chosen = {}
    for kind, edges in net.space.edges(arch).items():
        for (i, j), (option,) in edges.items():
            chosen[f"{kind}/n{i}/in{j}"] = option
    for name, alpha in net.arch_parameters().items():
        options = net.arch_options()[name]
        d = rng.uniform(-1.0, 1.0, alpha.shape)
        if name in chosen:
            d[options.index(chosen[name])] = 3.0
        if "zero" in options:
            d[options.index("zero")] = 6.0
        alpha.d = d


#: Per space: sets the architecture parameters so that ``derive`` must give ``arch``.
FAVOUR: dict[str, Callable[[Supernet, Arch, np.random.Generator], None]] = {
    "mobilenet": _favour_chain, "darts": _favour_cells}


@pytest.fixture(params=list_spaces() + [v for v in CONFIGS if "/" in v])
def name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def space(name: str) -> BaseSearchSpace:
    assert name in CONFIGS, f"search space {name!r} has no small config in tests/test_spaces.py"
    return create_space(name.split("/")[0], **CONFIGS[name])


@pytest.fixture
def net(space: BaseSearchSpace) -> Supernet:
    net = space.supernet()
    randomize(net)
    return net


def archs(space: BaseSearchSpace, n: int, seed: int = 0) -> list[Arch]:
    rng = np.random.default_rng(seed)
    return space.extremes() + [space.sample(rng) for _ in range(n)]


# ---------------------------------------------------------------- the library's suite


@pytest.mark.parametrize("check", list(SPACE_CHECKS))
def test_the_conformance_suite_passes(space: BaseSearchSpace, check: str) -> None:
    # The checks ``hwnas check-space`` runs on a user's space (hwnas.testing): sample and
    # validate, keys, extract against set_active, parameter groups, units and counters, export.
    result, = check_space(space, checks=[check])
    assert result.ok, result.failures


# ---------------------------------------------------------------- weight sharing


def test_extracted_subnet_holds_copies_of_its_path_only(name: str, space: BaseSearchSpace,
                                                        net: Supernet) -> None:
    arch = space.sample(np.random.default_rng(4))
    x = inputs(space)
    subnet = net.extract(arch)
    mine, theirs = net.net_parameters(), subnet.net_parameters()
    # With nested sharing, an inverted residual's convolutions hold slices of its block's
    # shared weights, under names the supernet does not have; the rest are copies.
    sliced = {k for k in set(theirs) - set(mine)
              if arch[k.split("/")[0][1:]] in net.submodules[k.split("/")[0][1:]].sharing}
    assert set(theirs) - sliced < set(mine)
    assert (len(sliced) == 3 * sum(o.startswith("ir_") for o in arch.values())
            if name == "mobilenet/nested" else not sliced)
    for key, param in ((k, p) for k, p in theirs.items() if k not in sliced):
        assert param.shape == mine[key].shape and param.need_grad == mine[key].need_grad
        assert param is not mine[key] and np.array_equal(param.d, mine[key].d)
    assert subnet.mixed_ops() == {} and subnet.arch_parameters() == {}
    with pytest.raises(ValueError):
        subnet.derive()
    with pytest.raises(ValueError):
        subnet.set_mode("darts")
    subnet.set_active(arch)  # its own path is fine ...
    other = next(a for a in archs(space, 20, seed=5) if a != arch)
    with pytest.raises(ValueError):  # ... another is not there
        subnet.set_active(other)
    before = forward(subnet, x)
    for param in mine.values():
        param.d = param.d + 1.0
    np.testing.assert_array_equal(forward(subnet, x), before)
    snap = snapshot(net)
    for param in theirs.values():
        param.d = np.zeros(param.shape)
    after = snapshot(net)
    assert all(np.array_equal(v, after[k]) for k, v in snap.items())


def test_set_active_rejects_invalid_archs(space: BaseSearchSpace, net: Supernet) -> None:
    good = dict(space.sample(np.random.default_rng(0)))
    first = next(iter(space.choices))
    with pytest.raises(ValueError):
        net.set_active(Arch({**good, first: "no_such_option"}))


def test_parameter_groups_partition_the_trainable_parameters(space: BaseSearchSpace,
                                                             net: Supernet) -> None:
    groups = net.parameter_groups()
    members = [p for g in groups.values() for p in g.values()]
    trainable = net.get_parameters(grad_only=True)
    assert len(members) == len(set(members)) == len(trainable)
    assert set(members) == set(trainable.values())
    alphas = net.arch_parameters()
    assert alphas and not set(alphas.values()) & set(members)
    options = net.arch_options()
    assert set(options) == set(alphas) == set(net.mixed_ops()) == set(net.probabilities())
    for key, alpha in alphas.items():
        assert alpha.shape == (len(options[key]),) and alpha.need_grad
        assert alpha.d.dtype == np.float32
        assert all(op.alpha is alpha and op.options == options[key]
                   for op in net.mixed_ops()[key])
    # Zero-initialised: every candidate starts equally likely.
    assert all(np.all(a.d == 0) for a in space.supernet().arch_parameters().values())


def _check_active_groups(net: Supernet, x: nn.Variable) -> None:
    y = net(x)
    assert set(net.active_groups()) <= set(net.parameter_groups())
    assert len(net.active_groups()) == len(set(net.active_groups()))
    assert used_weights(net, y) == declared_weights(net)


@pytest.mark.parametrize("training", [False, True])
def test_active_groups_are_what_the_single_path_graph_reads(space: BaseSearchSpace,
                                                            net: Supernet,
                                                            training: bool) -> None:
    x = nn.Variable((BATCH,) + tuple(space.input_shape))
    net.training = training
    for arch in archs(space, 3, seed=5):
        net.set_active(arch)
        _check_active_groups(net, x)
    # The single paths ProxylessNAS trains: every mixed operation at a random candidate.
    rng = np.random.default_rng(2)
    for _ in range(3):
        for ops in net.mixed_ops().values():
            for op in ops:
                op.active = op.options[rng.integers(len(op.options))]
        _check_active_groups(net, x)


def test_active_groups_are_what_the_weighted_graphs_read(space: BaseSearchSpace,
                                                         net: Supernet) -> None:
    x = nn.Variable((BATCH,) + tuple(space.input_shape))
    net.set_mode("darts")
    _check_active_groups(net, x)
    groups = net.parameter_groups()
    assert {g for g in net.active_groups() if groups[g]} == {g for g, p in groups.items() if p}
    net.set_mode("proxyless")
    rng = np.random.default_rng(0)
    for _ in range(3):
        for ops in net.mixed_ops().values():
            for op in ops:
                op.sample_gates(rng)
        _check_active_groups(net, x)


# ---------------------------------------------------------------- architecture parameters


def _record(op) -> dict[str, nn.Variable]:
    """Remembers the input and output of ``op``'s next call."""
    seen: dict[str, nn.Variable] = {}
    original = op.call

    def call(x):
        seen["x"], seen["y"] = x, original(x)
        return seen["y"]

    op.call = call
    return seen


def test_darts_mode_is_the_softmax_weighted_sum_of_the_candidates(space: BaseSearchSpace,
                                                                  net: Supernet) -> None:
    random_alphas(net)
    net.set_mode("darts")
    net.training = False
    mixed = net.mixed_ops()
    ops = [mixed[min(mixed)][0], mixed[max(mixed)][-1]]
    seen = [_record(op) for op in ops]
    y = net(nn.Variable.from_numpy_array(inputs(space)))
    y.forward(clear_buffer=False)
    for op, s in zip(ops, seen):
        p = op.probabilities()
        x = nn.Variable.from_numpy_array(s["x"].d.copy())
        want = np.zeros(s["y"].shape)
        for k, option in enumerate(op.options):
            alone = op.submodules[option](x)
            if alone.parent is not None:  # skip returns its input
                alone.forward()
            want += p[k] * alone.d
        np.testing.assert_allclose(s["y"].d, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["darts", "proxyless"])
def test_gradients_reach_every_architecture_parameter(space: BaseSearchSpace, net: Supernet,
                                                      mode: str) -> None:
    random_alphas(net)
    net.set_mode(mode)
    if mode == "proxyless":
        rng = np.random.default_rng(0)
        for ops in net.mixed_ops().values():
            for op in ops:
                op.sample_gates(rng)
    net.training = True
    loss = F.mean(net(nn.Variable.from_numpy_array(inputs(space))))
    for alpha in net.arch_parameters().values():
        alpha.grad.zero()
    loss.forward()
    loss.backward()
    for name, alpha in net.arch_parameters().items():
        assert np.all(np.isfinite(alpha.g)) and np.abs(alpha.g).max() > 0, name


def test_derive_follows_the_architecture_parameters(name: str, space: BaseSearchSpace,
                                                    net: Supernet) -> None:
    rng = np.random.default_rng(0)
    for target in archs(space, 4, seed=9):
        FAVOUR[name.split("/")[0]](net, target, rng)
        assert net.derive() == target
    random_alphas(net, seed=3)
    derived = net.derive()
    assert space.validate(derived) is derived
    assert net.derive() == derived


def test_arch_units_of_a_chosen_path_are_the_subnets_units() -> None:
    # A block with one option has no architecture parameter, but its unit is in every
    # subnet: it belongs to the fixed units, or expected costs (the regularizers') miss it.
    space = create_space("mobilenet", **{**SMALL_SPACE, "stages": [(8, 1, 1), (16, 1, 2)],
                                         "kernels": [3], "expansions": [2]})
    assert any(len(options) == 1 for options in space.choices.values())
    result, = check_space(space, checks=["units and counters"])
    assert result.ok, result.failures
