"""Tests of the optimised inference graph: BN folding, fastest activations, counts."""
from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
import numpy as np
import pytest
from _optimize_helpers import ARCHS, close, like_trained
from conftest import SMALL_SPACE

from hwnas.hwcost import count_graph_params, count_macs, inference_output
from hwnas.hwcost._optimize import FOLDED_BIAS, FOLDED_WEIGHT, optimize_inference_graph
from hwnas.supernet._ops import ConvBNReLU, Head, InvertedResidual

BATCH = 4


def types(y: nn.Variable) -> list[str]:
    names: list[str] = []
    y.visit(lambda f: names.append(f.info.type_name))
    return names


def plain_and_optimised(build, x_shape, seed: int = 1):
    """Outputs of the graph ``build(x)`` before and after optimisation, and the optimised graph."""
    x = nn.Variable(x_shape)
    y = build(x)
    x.d = np.random.default_rng(seed).normal(0.0, 1.0, x_shape)
    y.forward(clear_buffer=True)
    plain, plain_types = y.d.copy(), types(y)
    created = optimize_inference_graph(y)
    y.forward(clear_buffer=True)
    return plain, y.d.copy(), plain_types, types(y), created


def module_outputs(module: nn.Module, x_shape, seed: int = 1):
    """(plain, optimised) outputs of ``module`` in inference mode, and the optimised graph."""
    like_trained(module.get_parameters(grad_only=False), seed)
    images = np.random.default_rng(seed).normal(0.0, 1.0, x_shape).astype(np.float32)
    module.training = False
    x = nn.Variable(x_shape)
    plain = module(x)
    optimised = inference_output(module, x)
    x.d = images
    plain.forward(clear_buffer=True)
    optimised.forward(clear_buffer=True)
    return plain.d.copy(), optimised.d.copy(), x, plain, optimised


@pytest.fixture(params=ARCHS, ids=lambda a: a.key)
def subnet(request, space):
    net = space.supernet()
    like_trained(net.net_parameters(), seed=3)
    return net.extract(request.param)


# ---------------------------------------------------------------- every op of the chain space


@pytest.mark.parametrize("kernel,stride,with_bias", [(3, 1, False), (1, 1, False), (3, 2, True)])
def test_convolution_bn_folds(kernel: int, stride: int, with_bias: bool) -> None:
    def build(x):
        h = PF.convolution(x, 6, (kernel, kernel), pad=(kernel // 2,) * 2, stride=(stride,) * 2,
                           with_bias=with_bias, name="conv")
        return PF.batch_normalization(h, batch_stat=False, name="bn")

    build(nn.Variable((1, 3, 8, 8)))
    like_trained(nn.get_parameters(grad_only=False))
    plain, opt, before, after, created = plain_and_optimised(build, (BATCH, 3, 8, 8))
    close(opt, plain)
    assert before == ["Convolution", "BatchNormalization"] and after == ["Convolution"]
    assert [v.shape for v in created.values()] == [(6, 3, kernel, kernel), (6,)]


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_convolution_bn_folds(multiplier: int) -> None:
    def build(x):
        h = PF.depthwise_convolution(x, (5, 5), pad=(2, 2), multiplier=multiplier,
                                     with_bias=False, name="dw")
        return PF.batch_normalization(h, batch_stat=False, name="bn")

    build(nn.Variable((1, 4, 8, 8)))
    like_trained(nn.get_parameters(grad_only=False))
    plain, opt, _, after, _ = plain_and_optimised(build, (BATCH, 4, 8, 8))
    close(opt, plain)
    assert after == ["DepthwiseConvolution"]


def test_affine_bn_folds_and_a_plain_affine_stays() -> None:
    def build(x):
        h = PF.batch_normalization(PF.affine(x, 7, name="fc1"), batch_stat=False, name="bn")
        return PF.affine(F.maximum_scalar(h, 0.0), 3, name="fc2")

    build(nn.Variable((1, 5)))
    like_trained(nn.get_parameters(grad_only=False))
    plain, opt, _, after, created = plain_and_optimised(build, (BATCH, 5))
    close(opt, plain)
    assert after == ["Affine", "MaximumScalar", "Affine"]
    assert len(created) == 2


def test_bn_without_scale_or_shift_folds() -> None:
    def build(x):
        h = PF.convolution(x, 4, (3, 3), pad=(1, 1), with_bias=False, name="conv")
        h = PF.batch_normalization(h, batch_stat=False, no_scale=True, name="bn1")
        h = PF.convolution(h, 4, (1, 1), with_bias=False, name="conv2")
        return PF.batch_normalization(h, batch_stat=False, no_bias=True, name="bn2")

    build(nn.Variable((1, 2, 6, 6)))
    like_trained(nn.get_parameters(grad_only=False))
    plain, opt, _, after, _ = plain_and_optimised(build, (BATCH, 2, 6, 6))
    close(opt, plain)
    assert after == ["Convolution", "Convolution"]


@pytest.mark.parametrize("act", [True, False])
def test_conv_bn_relu_op(act: bool) -> None:
    plain, opt, _, _, y = module_outputs(ConvBNReLU(6, 3, act=act), (BATCH, 3, 8, 8))
    close(opt, plain)
    assert types(y) == ["Convolution"] + (["MaximumScalar"] if act else [])


def test_depthwise_op_folds() -> None:
    op = ConvBNReLU(6, 5, stride=2, group=6)
    plain, opt, _, _, y = module_outputs(op, (BATCH, 6, 8, 8))
    close(opt, plain)
    assert types(y) == ["DepthwiseConvolution", "MaximumScalar"]


@pytest.mark.parametrize("stride,cout", [(1, 8), (2, 16)], ids=["residual", "strided"])
def test_inverted_residual_block(stride: int, cout: int) -> None:
    block = InvertedResidual(8, cout, kernel=5, expansion=3, stride=stride)
    plain, opt, _, _, y = module_outputs(block, (BATCH, 8, 8, 8))
    close(opt, plain)
    assert "BatchNormalization" not in types(y)
    assert ("Add2" in types(y)) == block.residual


def test_head() -> None:
    plain, opt, _, _, y = module_outputs(Head(16, 10), (BATCH, 8, 4, 4))
    close(opt, plain)
    assert types(y) == ["Convolution", "MaximumScalar", "GlobalAveragePooling", "Affine"]


def test_whole_subnet_with_trained_like_statistics(subnet) -> None:
    plain, opt, _, plain_y, y = module_outputs(subnet, (16,) + SMALL_SPACE["input_shape"],
                                               seed=5)
    close(opt, plain)
    assert np.ptp(plain, axis=0).max() > 1e-2  # not degenerate
    assert types(y).count("BatchNormalization") == 0
    assert types(plain_y).count("BatchNormalization") > 0
    # Fewer functions, none of them new: no graph the optimisation makes is longer.
    assert len(types(y)) < len(types(plain_y))
    assert set(types(y)) <= set(types(plain_y))


# ---------------------------------------------------------------- what stays


def test_training_mode_bn_stays() -> None:
    def build(x):
        h = PF.convolution(x, 4, (3, 3), pad=(1, 1), name="conv")
        return PF.batch_normalization(h, batch_stat=True, name="bn")

    build(nn.Variable((1, 2, 6, 6)))
    plain, opt, before, after, created = plain_and_optimised(build, (BATCH, 2, 6, 6))
    np.testing.assert_array_equal(opt, plain)
    assert after == before and created == {}


def test_bn_of_a_forked_layer_output_stays() -> None:
    def build(x):
        h = PF.convolution(x, 4, (3, 3), pad=(1, 1), name="conv")
        return F.add2(PF.batch_normalization(h, batch_stat=False, name="bn"), h)

    build(nn.Variable((1, 2, 6, 6)))
    like_trained(nn.get_parameters(grad_only=False))
    plain, opt, _, after, created = plain_and_optimised(build, (BATCH, 2, 6, 6))
    np.testing.assert_array_equal(opt, plain)
    assert "BatchNormalization" in after and created == {}


def test_bn_after_anything_else_stays() -> None:
    def build(x):
        return PF.batch_normalization(F.add_scalar(x, 1.0), batch_stat=False, name="bn")

    build(nn.Variable((1, 2, 6, 6)))
    like_trained(nn.get_parameters(grad_only=False))
    _, _, before, after, _ = plain_and_optimised(build, (BATCH, 2, 6, 6))
    assert after == before


def test_relu_and_relu6_become_their_fastest_equivalents() -> None:
    def build(x):
        return F.add2(F.relu(x), F.relu6(F.mul_scalar(x, 4.0)))

    plain, opt, _, after, _ = plain_and_optimised(build, (BATCH, 3, 5, 5))
    np.testing.assert_array_equal(opt, plain)
    assert "ReLU" not in after and "ReLU6" not in after
    assert after.count("MaximumScalar") == 2 and after.count("MinimumScalar") == 1


# ---------------------------------------------------------------- identity and counts


def test_inputs_and_output_keep_their_identity(subnet) -> None:
    x = nn.Variable((2,) + SMALL_SPACE["input_shape"])
    subnet.training = False
    y = subnet(x)
    x_data, y_data = x.data, y.data
    optimize_inference_graph(y)
    leaves: list[nn.Variable] = []
    y.visit(lambda f: leaves.extend(v for v in f.inputs if v.parent is None))
    assert any(v.data == x_data for v in leaves)
    assert y.data == y_data and y.parent.info.type_name == "Affine"


def test_folded_names_follow_the_layer_weights(subnet) -> None:
    x = nn.Variable((1,) + SMALL_SPACE["input_shape"])
    subnet.training = False
    y = subnet(x)
    params = subnet.get_parameters(grad_only=False)
    created = optimize_inference_graph(y, names=params)
    layers = sorted(k.rpartition("/")[0] for k in params if k.endswith("/W")
                    and "/fc/" not in k)
    assert sorted(created) == sorted([f"{s}/{FOLDED_WEIGHT}" for s in layers]
                                     + [f"{s}/{FOLDED_BIAS}" for s in layers])
    for key, var in created.items():
        original = params[key.rpartition("/")[0] + "/W"]
        assert var.shape == (original.shape if key.endswith(FOLDED_WEIGHT)
                             else original.shape[:1])


def test_deployed_params_are_weights_and_folded_biases(subnet) -> None:
    """The deployed count: every BN's beta and gamma (2C) become one bias (C)."""
    x = nn.Variable((1,) + SMALL_SPACE["input_shape"])
    subnet.training = False
    plain = count_graph_params(subnet(x), inputs=[x])
    y = inference_output(subnet, x)
    params = subnet.get_parameters(grad_only=False)
    weights = sum(v.size for k, v in params.items() if k.endswith("/W"))
    folded_biases = sum(v.shape[0] for k, v in params.items()
                        if k.endswith("/W") and "/fc/" not in k)
    fc_bias = sum(v.size for k, v in params.items() if k.endswith("/fc/affine/b"))
    bn_channels = sum(v.size for k, v in params.items() if k.endswith("/beta"))
    assert count_graph_params(y, inputs=[x]) == weights + folded_biases + fc_bias
    assert count_graph_params(y, inputs=[x]) == plain - bn_channels
    # Without inputs, the input is still told apart from the (trainable) folded weights.
    assert count_graph_params(y) == count_graph_params(y, inputs=[x])


def test_the_profiler_times_the_optimised_graph(subnet, monkeypatch) -> None:
    from hwnas.config import LatencyConfig
    from hwnas.hwcost import _profiler

    timed: list[list[str]] = []

    def fake(output, inputs, **kwargs):
        timed.append(types(output))
        return 1.0, None

    monkeypatch.setattr(_profiler, "measure_graph_latency", fake)
    _profiler.NnablaProfiler(LatencyConfig()).measure(subnet, SMALL_SPACE["input_shape"])
    assert timed and "BatchNormalization" not in timed[0] and "Convolution" in timed[0]


def test_macs_do_not_change(subnet) -> None:
    x = nn.Variable((3,) + SMALL_SPACE["input_shape"])
    subnet.training = False
    assert count_macs(inference_output(subnet, x)) == count_macs(subnet(x))
