"""Tests of the optimised inference graph: BN folding, fastest activations, the deployed .nnp."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
import numpy as np
import pytest
from conftest import SMALL_SPACE

from hwnas.export import export_module_nnp, export_nnp, inference_graph, pixels, save_nnp
from hwnas.hwcost import count_graph_params, count_macs, inference_output
from hwnas.hwcost._optimize import FOLDED_BIAS, FOLDED_WEIGHT, optimize_inference_graph
from hwnas.supernet import Arch, create_space
from hwnas.supernet._ops import ConvBNReLU, Head, InvertedResidual

ARCHS = [Arch({"b0": "ir_k5_e3", "b1": "skip", "b2": "ir_k3_e2"}),
         Arch({"b0": "ir_k3_e2", "b1": "ir_k5_e2", "b2": "ir_k5_e3"})]
BATCH = 4


def close(got: np.ndarray, want: np.ndarray) -> None:
    """Equal within 1e-5, absolute near 0 and relative where magnitudes are large."""
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def like_trained(params: dict[str, nn.Variable], seed: int = 0) -> None:
    """Random weights and BN statistics far from their initial values, so folding shows."""
    rng = np.random.default_rng(seed)
    for key, param in params.items():
        name = key.rsplit("/", 1)[-1]
        if name == "var":
            param.d = rng.uniform(0.3, 3.0, param.shape)
        elif name == "gamma":
            param.d = rng.uniform(-1.5, 1.5, param.shape)
        elif name in ("mean", "beta", "b"):
            param.d = rng.normal(0.0, 1.0, param.shape)
        else:
            param.d = rng.normal(0.0, 0.5, param.shape)


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


@pytest.fixture
def space():
    return create_space("mobilenet", **SMALL_SPACE)


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


# ---------------------------------------------------------------- the deployed .nnp

# Loads an .nnp with nnabla alone: logits, function types, parameter names; hwnas must not load.
LOADER = textwrap.dedent("""
    import json, sys
    from collections import OrderedDict
    import nnabla as nn
    import numpy as np
    from nnabla.utils.nnp_graph import NnpLoader

    path, inputs, outputs = sys.argv[1:4]
    x = np.load(inputs)
    scope = OrderedDict()
    with nn.parameter_scope("", scope):
        net = NnpLoader(path).get_network("net", batch_size=len(x))
        names = list(nn.get_parameters(grad_only=False))
    net.inputs["x"].d = x
    y = net.outputs["y"]
    y.forward(clear_buffer=True)
    np.save(outputs, y.d)
    functions = []
    y.visit(lambda f: functions.append(f.info.type_name))
    print(json.dumps({"functions": functions, "parameters": names}))
    leaked = [m for m in sys.modules if m == "hwnas" or m.startswith("hwnas.")]
    assert not leaked, leaked
""")


def load_elsewhere(path: Path, images: np.ndarray, tmp_path: Path) -> tuple[np.ndarray, dict]:
    np.save(tmp_path / "x.npy", images)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", LOADER, str(path), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.load(tmp_path / "y.npy"), json.loads(proc.stdout.strip().splitlines()[-1])


def test_exported_module_round_trips_without_hwnas(subnet, tmp_path: Path) -> None:
    shape = SMALL_SPACE["input_shape"]
    images = np.random.default_rng(7).normal(0.0, 1.0, (6,) + shape).astype(np.float32)
    path = tmp_path / "subnet.nnp"
    export_module_nnp(subnet, shape, path)
    assert nn.get_parameters(grad_only=False) == {}  # export leaves the global scope alone
    theirs, info = load_elsewhere(path, images, tmp_path)

    x = nn.Variable.from_numpy_array(images)
    y = inference_output(subnet, x)
    y.forward(clear_buffer=True)
    np.testing.assert_allclose(theirs, y.d, atol=1e-6, rtol=0)  # the very same graph
    subnet.training = False
    y_plain = subnet(x)
    y_plain.forward(clear_buffer=True)
    close(theirs, y_plain.d)
    assert "BatchNormalization" not in info["functions"]
    # The file holds exactly the deployed weights: folded ones, no BN parameters, no unfolded W.
    names = info["parameters"]
    assert not [n for n in names if "/bn/" in n]
    assert all(n.endswith((FOLDED_WEIGHT, FOLDED_BIAS)) or "/fc/" in n for n in names)
    assert sum(n.endswith(FOLDED_WEIGHT) for n in names) == sum(
        k.endswith("/W") and "/fc/" not in k for k in subnet.get_parameters())


def test_exported_subnet_with_normalisation_round_trips(subnet, data, tmp_path: Path) -> None:
    path = tmp_path / "model.nnp"
    export_nnp(subnet, data, path)
    images = pixels(data, data.val.x[:8])
    theirs, info = load_elsewhere(path, images, tmp_path)
    assert "BatchNormalization" not in info["functions"]
    assert {"preprocess/mean", "preprocess/std"} <= set(info["parameters"])
    x, y = inference_graph(subnet, data, batch_size=len(images))
    x.d = images
    y.forward(clear_buffer=True)
    np.testing.assert_allclose(theirs, y.d, atol=1e-6, rtol=0)
    subnet.training = False
    direct = subnet(nn.Variable.from_numpy_array(data.val.x[:8]))
    direct.forward(clear_buffer=True)
    np.testing.assert_allclose(theirs, direct.d, atol=1e-4, rtol=1e-4)  # normalisation rounding


def test_save_refuses_a_graph_reading_an_unnamed_weight(tmp_path: Path) -> None:
    op = ConvBNReLU(4, 3)
    op(nn.Variable((1, 2, 5, 5)))  # its weights exist, so only the stray one is unnamed

    def build(scope: OrderedDict):
        x = nn.Variable((1, 2, 5, 5))
        op.training = False
        stray = nn.Variable.from_numpy_array(np.ones((1, 4, 1, 1), np.float32))
        return x, F.mul2(op(x), stray)

    with pytest.raises(ValueError, match="unnamed weight"):
        save_nnp(op, tmp_path / "op.nnp", build)
    assert not (tmp_path / "op.nnp").exists()
