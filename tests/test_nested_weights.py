"""Tests of nested weight sharing (``space.options.weight_sharing: nested``): a chain block's
inverted residuals slice the convolution weights of its largest one."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_SPACE, TINY_CONFIG, randomize

from hwnas.arch import Arch
from hwnas.cli import main
from hwnas.config import TrainConfig
from hwnas.data import Dataset
from hwnas.run.retrain import fresh_subnet
from hwnas.supernet import create_space
from hwnas.supernet.learners import UniformLearner

BATCH = 20


def _space(sharing: str):
    """The small chain space (kernels 3, 5; expansions 2, 3) with ``sharing``."""
    return create_space("mobilenet", **{**SMALL_SPACE, "weight_sharing": sharing})


def _arch(space, option: str) -> Arch:
    """The largest subnet with ``option`` in block b2 (8 -> 16 channels, stride 2: no
    residual, whose zero-initialised last BN scale would stop the first step's gradient)."""
    return Arch({**dict(space.extremes()[1]), "b2": option})


def _step(space, net, data: Dataset, arch: Arch) -> None:
    """One plain SGD step (no momentum, no weight decay) of the uniform learner on ``arch``."""
    cfg = TrainConfig(epochs=1, batch_size=BATCH, lr=0.1, momentum=0.0, weight_decay=0.0)
    learner = UniformLearner(space=space, supernet=net, data=data, config=cfg, seed=3,
                             run_dir=None, progress=False)
    learner.before_batch = lambda rng: net.set_active(arch)  # this path, not a sampled one
    learner.train_step(data.train.x[:BATCH], data.train.y[:BATCH], np.random.default_rng(0),
                       0.1)


def test_a_step_on_the_smallest_inverted_residual_trains_only_its_slice(
        small_data: Dataset) -> None:
    space = _space("nested")
    nn.seed(0)
    init = space.supernet().submodules["b2"].shared()["depthwise"].d.copy()
    nn.seed(0)
    net = space.supernet()
    _step(space, net, small_data, _arch(space, "ir_k3_e2"))
    w = net.submodules["b2"].shared()["depthwise"].d
    # 8 channels x expansion 3 hidden, kernel 5: the smallest option reads [:16, 1:4, 1:4].
    assert w.shape == init.shape == (24, 5, 5)
    assert not np.array_equal(w[:16, 1:4, 1:4], init[:16, 1:4, 1:4])
    ring = np.ones((5, 5), bool)
    ring[1:4, 1:4] = False
    np.testing.assert_array_equal(w[:, ring], init[:, ring])
    np.testing.assert_array_equal(w[16:], init[16:])


def test_the_largest_path_changes_only_when_its_weights_are_nested(small_data: Dataset) -> None:
    # The same step on block b2's smallest option moves what its largest option computes
    # only with nested sharing: compare the largest option's output on a fixed input.
    moved = {}
    for sharing in ("separate", "nested"):
        space = _space(sharing)
        nn.seed(0)
        net = space.supernet()
        layer = net.submodules["b2"]
        layer.active = "ir_k5_e3"
        layer.training = False
        h = nn.Variable.from_numpy_array(
            np.random.default_rng(1).normal(size=(4, 8, 8, 8)).astype(np.float32))
        y = layer(h)
        y.forward()
        before = y.d.copy()
        _step(space, net, small_data, _arch(space, "ir_k3_e2"))
        layer.active, layer.training = "ir_k5_e3", False
        y = layer(h)
        y.forward()
        moved[sharing] = float(np.abs(y.d - before).max())
    assert moved["separate"] == 0.0
    assert moved["nested"] > 1e-4


def test_darts_mode_sums_views_of_the_shared_weights_and_trains_them_all(
        small_data: Dataset) -> None:
    space = _space("nested")
    net = space.supernet()
    randomize(net)
    net.set_mode("darts")
    x = nn.Variable.from_numpy_array(small_data.train.x[:16])
    t = nn.Variable.from_numpy_array(small_data.train.y[:16].reshape(-1, 1))
    loss = F.mean(F.softmax_cross_entropy(net(x), t))
    params = net.get_parameters(grad_only=True)
    for p in params.values():
        p.grad.zero()
    loss.forward()
    loss.backward()
    for name in ("b0", "b1"):
        shared = net.submodules[name].shared.get_parameters(grad_only=True)
        assert shared and all(np.abs(p.g).max() > 0 for p in shared.values()), name
    assert all(np.abs(a.g).max() > 0 for a in net.arch_parameters().values())


def test_a_subnet_trained_from_scratch_starts_as_with_separate_weights() -> None:
    arch = _arch(_space("nested"), "ir_k3_e3")
    nested = fresh_subnet(_space("nested"), arch, seed=7).net_parameters()
    separate = fresh_subnet(_space("separate"), arch, seed=7).net_parameters()
    assert nested.keys() == separate.keys()
    assert all(np.array_equal(nested[k].d, separate[k].d) for k in nested)


def test_an_unknown_weight_sharing_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="weight_sharing must be one of separate, nested"):
        create_space("mobilenet", **{**SMALL_SPACE, "weight_sharing": "shared"})


def test_a_run_with_nested_weights_trains_searches_and_exports(tmp_path: Path) -> None:
    config = tmp_path / "nested.yaml"
    config.write_text(TINY_CONFIG.replace("  head_channels: 16\n",
                                          "  head_channels: 16\n"
                                          "  options: {weight_sharing: nested}\n"))
    run = tmp_path / "run"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["run", str(config), "--out", str(run), "--quiet"])
    assert status == 0, err.getvalue()
    with nn.parameter_scope("loaded"):
        nn.load_parameters(str(run / "supernet.h5"))
        shared = [k for k in nn.get_parameters(grad_only=False) if "/@shared/" in k]
    # Both blocks offer four inverted residuals (kernels 3, 5 x expansions 2, 3): each holds
    # one expansion, depthwise and projection weight.
    assert sorted(k.split("/")[0] for k in shared) == ["@b0"] * 3 + ["@b1"] * 3
    # A front subnet other than the selected (retrained) one exports with weights extracted
    # from the nested supernet, and the exported model computes what the subnet does.
    selected = json.loads((run / "selected.json").read_text())["key"]
    other = next(k for k in pd.read_csv(run / "front.csv")["key"] if k != selected)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["export", str(run), "--arch", other])
    assert status == 0, err.getvalue()
    info = json.loads((run / "export.json").read_text())
    assert (info["key"], info["weights"]) == (other, "supernet")
    assert all(entry["max_abs_diff"] <= 1e-5 for entry in info["formats"].values())
