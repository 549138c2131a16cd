"""Tests of the hardware regularizers: expected costs, their gradients, and budgets in a search."""
from __future__ import annotations

import itertools

import nnabla as nn
import numpy as np
import pytest
from _learner_helpers import make_learner
from conftest import SMALL_SPACE, randomize

from hwnas.arch import Arch
from hwnas.data import Dataset
from hwnas.supernet import create_space
from hwnas.supernet.learners import FORMS, Regularizer
from hwnas.run.train import unit_cost


# ---------------------------------------------------------------- regularizers


def _params_regularizer(net, **kwargs) -> Regularizer:
    return Regularizer.for_supernet(net, unit_cost("params"), objective="params", **kwargs)


def _params_of(net, arch: Arch) -> int:
    from hwnas.hwcost import count_graph_params, inference_output
    x = nn.Variable((1,) + tuple(net.space.input_shape))
    return count_graph_params(inference_output(net.extract(arch), x), inputs=[x])


def test_expected_params_are_exact_for_a_chain() -> None:
    space = create_space("mobilenet", **SMALL_SPACE)
    net = space.supernet()
    reg = _params_regularizer(net, budget=1e4)
    rng = np.random.default_rng(0)
    for _ in range(4):
        arch = space.sample(rng)
        counts = {n: np.array([o == arch[n] for o in net.arch_options()[n]], float)
                  for n in net.arch_options()}
        assert reg.path_cost(counts) == pytest.approx(_params_of(net, arch))
    # The graph and the numbers agree, and equal the mean over every subnet.
    alphas = net.arch_parameters()
    for alpha in alphas.values():
        alpha.d = rng.normal(0, 1, alpha.shape)
    expected = reg.expected(alphas)
    expected.forward()
    probs = net.probabilities()
    assert float(expected.d) == pytest.approx(reg.expected_value(probs), rel=1e-5)
    total = 0.0
    options = net.arch_options()
    for combo in np.ndindex(*[len(options[n]) for n in options]):
        weight = np.prod([probs[n][i] for n, i in zip(options, combo)])
        counts = {n: np.eye(len(options[n]))[i] for n, i in zip(options, combo)}
        total += weight * reg.path_cost(counts)
    assert reg.expected_value(probs) == pytest.approx(total, rel=1e-9)


def _penalised_gradients(reg, alphas) -> nn.Variable:
    """The regularized total of a constant loss 2.0, with its gradient in ``alphas``."""
    loss = nn.Variable.from_numpy_array(np.array(2.0, np.float32))
    total = reg.apply(loss, alphas)
    for a in alphas.values():
        a.grad.zero()
    total.forward()
    total.backward()
    return total


@pytest.mark.parametrize("form", ["additive", "multiplicative"])
def test_regularizer_gradient_pushes_towards_cheaper_options(form: str) -> None:
    space = create_space("mobilenet", **SMALL_SPACE)
    net = space.supernet()
    reg = _params_regularizer(net, budget=1000.0, form=form, weight=0.5)
    alphas = net.arch_parameters()
    total = _penalised_gradients(reg, alphas)
    for name, alpha in alphas.items():
        costs = reg.costs[name]
        # Descending the gradient raises the cheapest option's logit relative to the dearest.
        assert alpha.g[np.argmin(costs)] < alpha.g[np.argmax(costs)], name
    ratio = reg.expected_value(net.probabilities()) / 1000.0
    want = 2.0 + 0.5 * max(0.0, ratio - 1) if form == "additive" else 2.0 * ratio ** 0.5
    assert float(total.d) == pytest.approx(want, rel=1e-4)


def test_regularizer_rejects_bad_arguments() -> None:
    space = create_space("mobilenet", **SMALL_SPACE)
    net = space.supernet()
    for kwargs in ({"budget": 0.0}, {"budget": 1.0, "form": "cubic"},
                   {"budget": 1.0, "weight": -1.0}):
        with pytest.raises(ValueError):
            _params_regularizer(net, **kwargs)


@pytest.mark.parametrize("variant,form,arch_lr", [("darts1", "additive", 0.1),
                                                  ("gate", "multiplicative", 0.1),
                                                  ("reinforce", "additive", 0.1)])
def test_a_params_budget_pulls_the_derived_arch_under_it(variant: str, form: str, arch_lr: float,
                                                         small_data: Dataset) -> None:
    space = create_space("mobilenet", **SMALL_SPACE)
    plain_net = space.supernet()
    make_learner(space, plain_net, small_data, variant, epochs=2, arch_lr=0.1).fit()
    plain = _params_of(plain_net, plain_net.derive())
    cheapest = min(_params_of(plain_net, a) for a in space.extremes())
    budget = 1.05 * cheapest
    assert plain > 1.1 * budget  # the budget binds
    net = space.supernet()
    weight = 5.0 if form == "additive" else 2.0
    reg = _params_regularizer(net, budget=budget, form=form, weight=weight)
    learner = make_learner(space, net, small_data, variant, epochs=2, arch_lr=arch_lr,
                           regularizer=reg)
    history = learner.fit()
    derived = _params_of(net, net.derive())
    assert derived <= 1.1 * budget, (derived, budget, plain)
    assert derived < plain
    assert "expected_params" in history[-1]


# ---------------------------------------------------------------- landing on the budget


def test_absolute_penalty_is_zero_at_the_budget_and_grows_on_both_sides() -> None:
    form = FORMS.get("absolute")
    loss = nn.Variable.from_numpy_array(np.array(2.0, np.float32))
    for r, want in ((0.5, 2.25), (1.0, 2.0), (1.5, 2.25), (3.0, 3.0)):
        total = form.penalize(loss, nn.Variable.from_numpy_array(np.array(r, np.float32)), 0.5)
        total.forward()
        assert float(total.d) == pytest.approx(want), r
    # TuNAS's reward: 0.9 - 0.5 * |1.2 - 1| and 0.9 - 0.5 * |0.6 - 1|.
    assert form.reward(0.9, 1.2, 0.5) == pytest.approx(0.8)
    assert form.reward(0.9, 0.6, 0.5) == pytest.approx(0.7)
    assert form.in_reward and form.target
    assert not FORMS.get("additive").target


@pytest.mark.parametrize("side", [3.0, 0.3])
def test_absolute_gradient_points_at_the_budget_from_either_side(side: float) -> None:
    space = create_space("mobilenet", **SMALL_SPACE)
    net = space.supernet()
    start = _params_regularizer(net, budget=1.0).expected_value(net.probabilities())
    reg = _params_regularizer(net, budget=side * start, form="absolute", weight=0.5)
    alphas = net.arch_parameters()
    total = _penalised_gradients(reg, alphas)
    assert float(total.d) == pytest.approx(2.0 + 0.5 * abs(1 / side - 1), rel=1e-4)
    for name, alpha in alphas.items():
        costs = reg.costs[name]
        up = alpha.g[np.argmax(costs)] < alpha.g[np.argmin(costs)]  # descent favours the dearest
        assert up == (side > 1), name


def _steps(variant: str, data: Dataset, form: str | None, side: float, steps: int = 3) -> float:
    """E[params] / its start after ``steps`` architecture steps, budget ``side`` x the start."""
    space = create_space("mobilenet", **SMALL_SPACE)
    net = space.supernet()
    randomize(net)  # the same weights in every call
    for alpha in net.arch_parameters().values():
        alpha.d = np.zeros(alpha.shape)
    start = _params_regularizer(net, budget=1.0).expected_value(net.probabilities())
    reg = (None if form is None else
           _params_regularizer(net, budget=side * start, form=form, weight=5.0))
    learner = make_learner(space, net, data, variant, regularizer=reg)
    rng = np.random.default_rng(3)
    xa, ya = learner.arch_split.x[:16], learner.arch_split.y[:16].reshape(-1, 1)
    x, y = learner.weight_split.x[:16], learner.weight_split.y[:16].reshape(-1, 1)
    for _ in range(steps):
        learner.arch_step(xa, ya, x, y, rng, 0.05)
    return _params_regularizer(net, budget=1.0).expected_value(net.probabilities()) / start


@pytest.mark.parametrize("variant", ["darts1", "gate"])
def test_an_absolute_arch_step_moves_the_expected_cost_towards_the_budget(
        variant: str, small_data: Dataset) -> None:
    plain = _steps(variant, small_data, None, 1.0)
    above = _steps(variant, small_data, "absolute", 3.0)  # the budget above: cost goes up
    below = _steps(variant, small_data, "absolute", 0.3)
    assert above > plain + 0.02 and above > 1.02, (above, plain)
    assert below < plain - 0.02 and below < 0.98, (below, plain)
    # The one-sided penalty is zero under the budget: the steps are the task's alone.
    assert _steps(variant, small_data, "additive", 3.0) == pytest.approx(plain)


def _all_archs(space):
    names = list(space.choices)
    for combo in itertools.product(*(space.choices[n] for n in names)):
        yield Arch(dict(zip(names, combo)))


def test_budget_aware_derivation_lands_under_the_budget_not_at_the_argmax() -> None:
    space = create_space("mobilenet", **SMALL_SPACE)
    net = space.supernet()
    rng = np.random.default_rng(1)
    for name, alpha in net.arch_parameters().items():
        alpha.d = rng.normal(0, 0.5, alpha.shape)
        alpha.d[np.argmin(_params_regularizer(net, budget=1.0).costs[name])] += 3.0
    probe = _params_regularizer(net, budget=1.0)
    cheapest, dearest = (probe.arch_cost(net, a) for a in space.extremes())
    budget = (cheapest + dearest) / 2
    reg = _params_regularizer(net, budget=budget, form="absolute")
    argmax = net.derive()
    assert probe.arch_cost(net, argmax) < 0.5 * budget  # the argmax is far below
    derived = reg.derive(net)
    cost = reg.arch_cost(net, derived)
    assert 0.85 * budget <= cost <= 0.95 * budget
    assert cost == pytest.approx(_params_of(net, derived))  # the prediction is the count
    # The most likely subnet of the band, by brute force over the space.
    logp = {n: np.log(p) for n, p in net.probabilities().items()}

    def likelihood(arch: Arch) -> float:
        return sum(float(logp[n][net.arch_options()[n].index(arch[n])]) for n in logp)

    band = [a for a in _all_archs(space) if 0.85 * budget <= reg.arch_cost(net, a) <= 0.95 * budget]
    assert likelihood(derived) == pytest.approx(max(map(likelihood, band)), abs=1e-6)
    # A one-sided form derives the argmax; a budget below every subnet the cheapest.
    assert _params_regularizer(net, budget=budget, form="additive").derive(net) == argmax
    assert _params_regularizer(net, budget=0.5 * cheapest).derive(net) == min(
        space.extremes(), key=lambda a: probe.arch_cost(net, a))
    # A band holding no subnet: the costliest subnet under it.
    above = _params_regularizer(net, budget=2 * dearest).derive(net)
    assert above == max(space.extremes(), key=lambda a: probe.arch_cost(net, a))


def test_budget_aware_derivation_leaves_a_cell_space_to_its_own_derivation() -> None:
    # A DARTS cell keeps two edges per node: no choice is one architecture parameter.
    space = create_space("darts", input_shape=(1, 8, 8), n_classes=10, cells=2, channels=4,
                         nodes=2, operations=["zero", "skip", "max_k3", "sep_k3"])
    net = space.supernet()
    rng = np.random.default_rng(2)
    for alpha in net.arch_parameters().values():
        alpha.d = rng.normal(0, 1, alpha.shape)
    reg = _params_regularizer(net, budget=1e3, form="absolute")
    assert reg.derive(net) == net.derive()


@pytest.mark.parametrize("form", ["absolute", "additive"])
def test_reinforce_prices_the_sampled_path_in_its_reward_under_absolute(
        form: str, small_data: Dataset) -> None:
    space = create_space("mobilenet", **SMALL_SPACE)
    net = space.supernet()
    cheapest = min(_params_of(net, a) for a in space.extremes())
    # Every path costs at least 10x the budget: TuNAS's reward is under 1 - 0.5 * 9.
    reg = _params_regularizer(net, budget=cheapest / 10, form=form, weight=0.5)
    learner = make_learner(space, net, small_data, "reinforce", regularizer=reg)
    xa, ya = learner.arch_split.x[:16], learner.arch_split.y[:16].reshape(-1, 1)
    x, y = learner.weight_split.x[:16], learner.weight_split.y[:16].reshape(-1, 1)
    reward = learner.arch_step(xa, ya, x, y, np.random.default_rng(0), 0.05)["reward"]
    if form == "absolute":
        assert reward < 1 - 0.5 * 9
    else:  # the additive penalty is on the expected cost, not in the reward
        assert 0 <= reward <= 1
