"""Tests of hwnas.supernet._weighted: both weighted sums against a numpy reference."""
from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from hwnas.supernet._weighted import (weighted_sum, weighted_sum_broadcast,
                                      weighted_sum_stacked)

METHODS = [weighted_sum_broadcast, weighted_sum_stacked, weighted_sum]
SHAPE = (2, 3, 4, 5)
#: Which candidates output zeros (None) in each case.
PATTERNS = {"all": [False] * 4, "none_between": [False, True, False, True],
            "one_left": [True, False, True], "single": [False]}


def leaves(pattern: list[bool], rng: np.random.Generator):
    outputs = [None if zero else nn.Variable.from_numpy_array(
        rng.standard_normal(SHAPE).astype(np.float32), need_grad=True) for zero in pattern]
    weights = nn.Variable.from_numpy_array(rng.uniform(-1, 1, len(pattern)).astype(np.float32),
                                           need_grad=True)
    return outputs, weights


def reference(outputs, w: np.ndarray, dy: np.ndarray):
    """y = sum_k w_k o_k, dL/dw_k = <o_k, dy> (0 for a zero output), dL/do_k = w_k dy."""
    y = np.zeros(SHAPE)
    grad_w = np.zeros(len(w))
    for k, o in enumerate(outputs):
        if o is not None:
            y += w[k] * o.d.astype(np.float64)
            grad_w[k] = np.sum(o.d.astype(np.float64) * dy)
    return y, grad_w, [None if o is None else w[k] * dy for k, o in enumerate(outputs)]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_values_and_gradients_match_numpy(method, pattern):
    rng = np.random.default_rng(0)
    outputs, weights = leaves(PATTERNS[pattern], rng)
    dy = rng.standard_normal(SHAPE)
    y = method(outputs, weights)
    assert y.shape == SHAPE
    y.forward()
    y.backward(dy.astype(np.float32))
    want_y, want_gw, want_go = reference(outputs, weights.d.astype(np.float64), dy)
    np.testing.assert_allclose(y.d, want_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weights.g, want_gw, rtol=1e-5, atol=1e-5)
    for o, want in zip(outputs, want_go):
        if o is not None:
            np.testing.assert_allclose(o.g, want, rtol=1e-5, atol=1e-6)


def test_methods_agree_through_softmax():
    """The DARTS use: weights = softmax(alpha); both give alpha the analytic gradient."""
    rng = np.random.default_rng(1)
    outputs, _ = leaves([False, True, False, False, True], rng)
    alpha = nn.Variable.from_numpy_array(rng.standard_normal(5).astype(np.float32),
                                         need_grad=True)
    dy = rng.standard_normal(SHAPE)
    a = alpha.d.astype(np.float64)
    p = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
    _, grad_p, _ = reference(outputs, p, dy)
    want = p * (grad_p - p @ grad_p)
    for method in (weighted_sum_broadcast, weighted_sum_stacked):
        alpha.grad.zero()
        y = method(outputs, F.softmax(alpha, axis=0))
        y.forward()
        y.backward(dy.astype(np.float32))
        np.testing.assert_allclose(alpha.g, want, rtol=1e-5, atol=1e-6,
                                   err_msg=method.__name__)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_invalid_arguments_raise(method):
    rng = np.random.default_rng(2)
    outputs, weights = leaves([False, False], rng)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        method(outputs + [None], weights)
    with pytest.raises(ValueError, match="every output is None"):
        method([None, None], weights)
    other = nn.Variable.from_numpy_array(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="differ in shape"):
        method([outputs[0], other], weights)
