"""Tests of the deployed .nnp: the optimised graph, loaded back with nnabla alone."""
from __future__ import annotations

import json
import textwrap
from collections import OrderedDict
from pathlib import Path

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest
from _optimize_helpers import ARCHS, close, like_trained
from conftest import SMALL_SPACE, run_alone

from hwnas.deploy import export_module_nnp, export_nnp, inference_graph, pixels, save_nnp
from hwnas.hwcost import inference_output
from hwnas.hwcost._optimize import FOLDED_BIAS, FOLDED_WEIGHT
from hwnas.supernet._ops import ConvBNReLU


@pytest.fixture(params=ARCHS, ids=lambda a: a.key)
def subnet(request, space):
    net = space.supernet()
    like_trained(net.net_parameters(), seed=3)
    return net.extract(request.param)


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
    logits, out = run_alone(LOADER, path, images, tmp_path)
    return logits, json.loads(out.strip().splitlines()[-1])


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
