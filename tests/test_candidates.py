"""Tests of the candidate-operation vocabulary: every form builds, trains, exports and costs."""
from __future__ import annotations

import re
import types
from pathlib import Path

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest
from conftest import randomize

from hwnas.deploy import export_module_nnp, run_nnp
from hwnas.hwcost import count_macs, count_params
from hwnas.supernet._candidates import (DARTS_OPS, KNOWN_FORMS, build_candidate, complexity,
                                        computes_nothing, describe, parse_candidate)
from hwnas.supernet._ops import Op

#: One option of each form in KNOWN_FORMS, in the same order.
REPRESENTATIVES = ("zero", "skip", "bn", "affine", "max_k3", "avg_k3", "conv_k3",
                   "conv_k3_bias", "dil_k3", "dil_k5_d3", "grp_k3_g2", "sep_k3", "ir_k3_e3")
#: (in_channels, out_channels, stride): a block that keeps its shape, and one that reduces.
SAME, REDUCE = (8, 8, 1), (8, 16, 2)
CASES = [pytest.param(option, shape, id=f"{option}-{'same' if shape == SAME else 'reduce'}")
         for option in REPRESENTATIVES for shape in (SAME, REDUCE)
         if not (option == "bn" and shape == REDUCE)]

RNG = np.random.default_rng(0)


def randomized(op: Op) -> None:
    """Random weights and BN statistics (conftest's helper reads a supernet's interface)."""
    randomize(types.SimpleNamespace(net_parameters=lambda: op.get_parameters(grad_only=False)))


def built(option: str, shape: tuple[int, int, int], training: bool,
          x: np.ndarray) -> tuple[Op, nn.Variable, nn.Variable]:
    """The candidate, its (need_grad) input holding ``x`` and its output, weights randomized."""
    op = build_candidate(option, *shape)
    op.training = training
    v = nn.Variable.from_numpy_array(x, need_grad=True)
    y = op(v)
    randomized(op)
    return op, v, y


def forward(y: nn.Variable) -> None:
    """Computes ``y``; the identity's output is its input, which has nothing to compute."""
    if y.parent is not None:
        y.forward()


def test_representatives_cover_every_known_form() -> None:
    for form, option in zip(KNOWN_FORMS, REPRESENTATIVES, strict=True):
        assert re.fullmatch(re.sub(r"<\w>", "[0-9]+", form), option), (form, option)
    assert len({parse_candidate(o) for o in REPRESENTATIVES}) == len(REPRESENTATIVES)


@pytest.mark.parametrize("option, shape", CASES)
@pytest.mark.parametrize("size", [9, 8])
def test_output_shape(option: str, shape: tuple[int, int, int], size: int) -> None:
    in_channels, out_channels, stride = shape
    x = RNG.normal(size=(2, in_channels, size, size)).astype(np.float32)
    _, _, y = built(option, shape, True, x)
    forward(y)
    side = (size - 1) // stride + 1
    assert y.shape == (2, out_channels, side, side)
    assert np.isfinite(y.d).all()


@pytest.mark.parametrize("option, shape", CASES)
def test_backward_reaches_every_parameter(option: str, shape: tuple[int, int, int]) -> None:
    x = RNG.normal(size=(2, shape[0], 8, 8)).astype(np.float32)
    op, v, y = built(option, shape, True, x)
    params = op.get_parameters(grad_only=True)
    # A random weighting: the plain sum of a training-mode BN's output has no gradient.
    weights = nn.Variable.from_numpy_array(RNG.normal(size=y.shape).astype(np.float32))
    loss = F.sum(F.mul2(y, weights))
    for p in params.values():
        p.grad.zero()
    loss.forward()
    loss.backward()
    if option == "zero":
        assert params == {} and op.get_parameters(grad_only=False) == {}
        assert np.array_equal(y.d, np.zeros(y.shape, np.float32))
        return
    assert params or computes_nothing(option, *shape)
    for name, p in params.items():
        assert np.abs(p.g).max() > 0, f"{option}: no gradient reaches {name}"
    assert np.abs(v.g).max() > 0


def test_bias_variant_trades_batch_normalization_for_a_bias() -> None:
    x = nn.Variable((1, 8, 8, 8))
    conv, biased = build_candidate("conv_k3", 8, 16, 2), build_candidate("conv_k3_bias", 8, 16, 2)
    conv(x), biased(x)
    weights = 16 * 8 * 3 * 3
    assert count_params(conv.get_parameters(grad_only=True)) == weights + 2 * 16  # gamma, beta
    assert count_params(biased.get_parameters(grad_only=True)) == weights + 16  # bias
    assert not any(key.endswith(("/mean", "/var")) for key in biased.get_parameters())


def test_separable_convolution_costs_far_fewer_macs() -> None:
    c, positions = 32, 8 * 8
    x = nn.Variable((1, c, 8, 8))
    conv = count_macs(build_candidate("conv_k3", c, c, 1)(x))
    separable = count_macs(build_candidate("sep_k3", c, c, 1)(x))
    assert conv == positions * 9 * c * c
    assert separable == positions * 2 * (9 * c + c * c)
    assert separable < conv / 3
    grouped = count_macs(build_candidate("grp_k3_g4", c, c, 1)(x))
    assert grouped == conv // 4


def test_dilated_convolution_skips_the_neighbours() -> None:
    # Positive inputs pass the leading ReLU, so only the depthwise taps decide what is read.
    x = RNG.uniform(0.5, 1.5, size=(1, 8, 9, 9)).astype(np.float32)
    _, v, y = built("dil_k3_d2", SAME, False, x)
    pixel = np.zeros(y.shape, np.float32)
    pixel[0, :, 4, 4] = 1.0
    loss = F.sum(F.mul2(y, nn.Variable.from_numpy_array(pixel)))
    v.grad.zero()
    loss.forward()
    loss.backward()
    read = {tuple(p) for p in np.argwhere(np.abs(v.g[0]).sum(axis=0) > 0)}
    assert read == {(i, j) for i in (2, 4, 6) for j in (2, 4, 6)}


@pytest.mark.parametrize("option, value", [("avg_k3", 1.0), ("max_k3", -1.0)])
def test_pooling_ignores_the_padding(option: str, value: float) -> None:
    # Fresh BN statistics (mean 0, var 1) leave the pooled values as they are.
    op = build_candidate(option, 8, 8, 1)
    op.training = False
    y = op(nn.Variable.from_numpy_array(np.full((1, 8, 5, 5), value, np.float32)))
    y.forward()
    np.testing.assert_allclose(y.d, value, atol=1e-4)  # a padded zero would pull corners to 0


# The identity (skip at the same shape) has no graph to export.
@pytest.mark.parametrize("option, shape", [c for c in CASES if tuple(c.values) != ("skip", SAME)])
def test_exported_candidate_matches_inference_mode(option: str, shape: tuple[int, int, int],
                                                   tmp_path: Path) -> None:
    # Batch 1: nnabla's .nnp writer keeps the saved batch size fixed unless the graph has a
    # function with a base axis (convolutions do; zero, bn and pooling alone do not).
    x = RNG.normal(size=(1, shape[0], 9, 9)).astype(np.float32)
    op, _, y = built(option, shape, False, x)
    y.forward()
    path = tmp_path / f"{option}.nnp"
    export_module_nnp(op, x.shape[1:], path)
    np.testing.assert_allclose(run_nnp(path, x), y.d, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("option", DARTS_OPS)
def test_darts_operations_build_for_a_reduction_cell(option: str) -> None:
    op = build_candidate(option, 8, 8, 2)
    y = op(nn.Variable.from_numpy_array(RNG.normal(size=(2, 8, 7, 7)).astype(np.float32)))
    forward(y)
    assert y.shape == (2, 8, 4, 4)


@pytest.mark.parametrize("option", ["", "foo", "conv", "conv_k", "conv_k3x", "conv_k3_b",
                                    "ir_k3", "ir_k3_e3_x", "max_k0", "sep_k4", "dil_k3_d0",
                                    "CONV_K3", "grp_k3", " skip"])
def test_unknown_options_list_the_known_forms(option: str) -> None:
    for call in (lambda: build_candidate(option, 8, 8, 1), lambda: describe(option),
                 lambda: complexity(option), lambda: computes_nothing(option, 8, 8, 1)):
        with pytest.raises(ValueError, match=re.escape(repr(option))) as info:
            call()
        assert all(form in str(info.value) for form in KNOWN_FORMS)


@pytest.mark.parametrize("option, shape, words", [
    ("grp_k3_g3", (8, 8, 1), "divisible by 3"),
    ("grp_k3_g4", (8, 6, 1), "divisible by 4"),
    ("bn", (8, 8, 2), "stride 2"),
    ("bn", (8, 16, 1), "16"),
    ("conv_k3", (8, 0, 1), "positive"),
])
def test_impossible_shapes_are_refused(option: str, shape: tuple[int, int, int],
                                       words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)) as info:
        build_candidate(option, *shape)
    assert repr(option) in str(info.value)


def test_options_decode_with_darts_defaults() -> None:
    assert parse_candidate("dil_k3").dilation == 2
    assert parse_candidate("dil_k5_d3").dilation == 3
    assert parse_candidate("grp_k5_g4").groups == 4
    assert parse_candidate("conv_k3_bias").bias and not parse_candidate("conv_k3").bias
    ir = parse_candidate("ir_k7_e6")
    assert (ir.form, ir.kernel, ir.expansion) == ("ir", 7, 6)


def test_describe_gives_one_distinct_line_each() -> None:
    lines = [describe(option) for option in REPRESENTATIVES]
    assert all(line and "\n" not in line for line in lines)
    assert len(set(lines)) == len(lines)
    assert "dilated by 3" in describe("dil_k5_d3") and "5x5" in describe("dil_k5_d3")


def test_computes_nothing() -> None:
    assert computes_nothing("zero", 8, 8, 1) and computes_nothing("zero", 8, 16, 2)
    assert computes_nothing("skip", 8, 8, 1)
    assert not computes_nothing("skip", 8, 8, 2) and not computes_nothing("skip", 8, 16, 1)
    assert not any(computes_nothing(o, 8, 8, 1) for o in REPRESENTATIVES[2:])


def test_complexity_orders_cheapest_first() -> None:
    ladder = ["zero", "skip", "avg_k3", "max_k3", "bn", "affine", "dil_k3", "sep_k3",
              "conv_k3", "ir_k7_e6"]
    assert sorted(reversed(ladder), key=complexity) == ladder
    assert complexity("conv_k3") < complexity("conv_k5")
    assert complexity("grp_k3_g4") < complexity("grp_k3_g2") < complexity("conv_k3")
    assert complexity("ir_k3_e3") < complexity("ir_k7_e6")
    assert sorted(DARTS_OPS, key=complexity)[:2] == ["zero", "skip"]
