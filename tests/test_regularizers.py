"""Tests of the hardware regularizers: expected costs, their gradients, and budgets in a search."""
from __future__ import annotations

import nnabla as nn
import numpy as np
import pytest
from _learner_helpers import make_learner
from conftest import SMALL_SPACE

from hwnas.arch import Arch
from hwnas.data import Dataset
from hwnas.supernet import create_space
from hwnas.supernet.learners import Regularizer
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


@pytest.mark.parametrize("form", ["additive", "multiplicative"])
def test_regularizer_gradient_pushes_towards_cheaper_options(form: str) -> None:
    space = create_space("mobilenet", **SMALL_SPACE)
    net = space.supernet()
    reg = _params_regularizer(net, budget=1000.0, form=form, weight=0.5)
    alphas = net.arch_parameters()
    loss = nn.Variable.from_numpy_array(np.array(2.0, np.float32))
    total = reg.apply(loss, alphas)
    for a in alphas.values():
        a.grad.zero()
    total.forward()
    total.backward()
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
