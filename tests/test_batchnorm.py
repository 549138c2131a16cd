"""The numpy training-mode batch normalization against nnabla's own kernel."""
from __future__ import annotations

import contextlib

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest
from conftest import snapshot

from hwnas.config import DataConfig, TrainConfig
from hwnas.data import load_dataset
from hwnas.hwcost import count_graph_params
from hwnas.supernet import create_space
from hwnas.supernet import _batchnorm
from hwnas.supernet._batchnorm import batch_normalization, nnabla_batchnorm
from hwnas.supernet.learners import LEARNERS

SHAPES = [(6, 5, 7, 3), (16, 3), (4, 8, 5, 5, 2)]


def _run(shape, affine: bool, frozen: bool, numpy_kernel: bool, decay: float, seed: int = 0):
    """Output, input gradient (accumulated onto 1s), running statistics and parameter
    gradients after forward, a second forward on other data, then backward."""
    rng = np.random.default_rng(seed)
    x = nn.Variable(shape, need_grad=True)
    with nn.parameter_scope(f"bn-{numpy_kernel}-{affine}-{frozen}-{len(shape)}"):
        make = (lambda: batch_normalization(
            x, batch_stat=True, decay_rate=decay, name="bn", fix_parameters=frozen,
            no_scale=not affine, no_bias=not affine))
        if numpy_kernel:
            y = make()
        else:
            with nnabla_batchnorm():
                y = make()
        params = nn.get_parameters(grad_only=False)
    assert (y.parent.info.type_name == "NumpyBatchNormalization") == numpy_kernel
    for p in params.values():
        p.d = rng.normal(1.0, 0.5, p.shape)
        p.g = 0.25
    x.d = rng.normal(3.0, 2.0, shape)  # a first forward on other data must not matter
    y.forward()
    x.d = rng.normal(-1.0, 4.0, shape)
    x.g = 1.0
    y.forward()
    y.backward(rng.normal(size=shape))
    return (y.d.copy(), x.g.copy(), {k.rsplit("/", 1)[1]: (p.d.copy(), p.g.copy())
                                     for k, p in params.items()})


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine,frozen", [(True, False), (True, True), (False, False)])
@pytest.mark.parametrize("decay", [0.9, 0.0])
def test_numpy_kernel_computes_what_nnabla_computes(shape, affine, frozen, decay) -> None:
    nn.clear_parameters()
    want_y, want_dx, want_p = _run(shape, affine, frozen, False, decay)
    got_y, got_dx, got_p = _run(shape, affine, frozen, True, decay)
    np.testing.assert_allclose(got_y, want_y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_dx, want_dx, rtol=1e-4, atol=1e-4)
    assert set(got_p) == set(want_p) == ({"beta", "gamma", "mean", "var"} if affine
                                         else {"mean", "var"})
    for name, (data, grad) in want_p.items():
        np.testing.assert_allclose(got_p[name][0], data, rtol=1e-5, atol=1e-5)  # running stats
        # beta's and gamma's gradients are sums over every element: relative tolerance.
        np.testing.assert_allclose(got_p[name][1], grad, rtol=1e-4, atol=1e-3)
    if frozen or not affine:  # no gradient for fixed parameters: the 0.25 stays
        assert all(np.all(g == 0.25) for _, g in got_p.values())
    else:  # gradients accumulate onto what was there
        assert not np.allclose(got_p["gamma"][1], 0.25)


def test_reading_parameters_leaves_them_exactly_as_they_were() -> None:
    """Weights set from float64 arrays keep their float64 values (a float32 cast would round
    them, and tests that an architecture step leaves the weights alone would fail)."""
    nn.clear_parameters()
    x = nn.Variable((4, 3, 2, 2), need_grad=True)
    y = batch_normalization(x, batch_stat=True, decay_rate=0.9, name="bn", fix_parameters=True)
    params = nn.get_parameters(grad_only=False)
    values = {k: np.random.default_rng(1).normal(size=p.shape) for k, p in params.items()}
    for k, p in params.items():
        p.d = values[k]
    x.d = np.random.default_rng(2).normal(size=x.shape)
    y.forward()
    y.backward(np.ones(y.shape))
    for k in ("bn/bn/beta", "bn/bn/gamma"):
        assert params[k].d.dtype == np.float64 and np.array_equal(params[k].d, values[k])
    assert not np.allclose(params["bn/bn/mean"].d, values["bn/bn/mean"])  # the running mean moved


def test_input_gradient_matches_finite_differences() -> None:
    nn.clear_parameters()
    rng = np.random.default_rng(3)
    x = nn.Variable((5, 3, 2, 2), need_grad=True)
    y = batch_normalization(x, batch_stat=True, decay_rate=0.9, name="bn")
    weights = rng.normal(size=y.shape)
    loss = F.sum(y * nn.Variable.from_numpy_array(weights) + y * y)
    x0 = rng.normal(size=x.shape)
    x.d, x.g = x0, 0.0
    loss.forward()
    loss.backward()
    analytic = x.g.copy()
    numeric = np.zeros_like(x0)
    step = 1e-2
    for index in np.ndindex(x0.shape):
        values = []
        for sign in (1, -1):
            shifted = x0.copy()
            shifted[index] += sign * step
            x.d = shifted
            loss.forward()
            values.append(float(loss.d))
        numeric[index] = (values[0] - values[1]) / (2 * step)
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-2)


def test_inference_and_non_cpu_graphs_keep_nnabla_batch_normalization(monkeypatch) -> None:
    nn.clear_parameters()
    x = nn.Variable((2, 3, 4, 4))
    assert batch_normalization(x, batch_stat=False, decay_rate=0.9,
                               name="a").parent.info.type_name == "BatchNormalization"
    monkeypatch.setattr(_batchnorm, "_cpu_context", lambda: False)
    assert batch_normalization(x, batch_stat=True, decay_rate=0.9,
                               name="b").parent.info.type_name == "BatchNormalization"


@pytest.mark.parametrize("variant", [{"learner": "darts", "order": 1},
                                     {"learner": "darts", "order": 2},
                                     {"learner": "uniform"}])
def test_a_darts_space_search_trains_to_the_same_weights_with_either_kernel(variant) -> None:
    data = load_dataset(DataConfig(name="synthetic", image_size=8, limit=96), seed=0)
    space = create_space("darts", input_shape=(1, 8, 8), n_classes=10, cells=3, channels=4,
                         nodes=2, operations=["zero", "avg_k3", "skip", "sep_k3", "dil_k3"])
    # The search epochs only: DARTS's default fine-tuning samples single paths, where a
    # 'zero' edge feeds batch norm a constant channel; there the two kernels' float32 batch
    # variances differ by rounding around 0, which rstd ~ 1/sqrt(eps) turns into input
    # gradients about 1 % apart (measured: 3.8 on a constant 0.3), and the runs part.
    config = TrainConfig(**{"epochs": 2, "batch_size": 16, "lr": 0.05, "arch_lr": 0.05,
                            "finetune_epochs": 0, **variant})
    init = snapshot(space.supernet())
    results = []
    for numpy_kernel in (False, True):
        with contextlib.nullcontext() if numpy_kernel else nnabla_batchnorm():
            net = space.supernet()
            for key, param in net.net_parameters().items():
                param.d = init[key]
            LEARNERS[config.learner](space=space, supernet=net, data=data, config=config,
                                     seed=5, run_dir=None, progress=False).fit()
        results.append({**snapshot(net), **{k: v.d.copy()
                                            for k, v in net.arch_parameters().items()}})
    want, got = results
    assert set(want) == set(got) and any(k.endswith("/mean") for k in want)
    for key in want:
        # 12 steps of SGD apart: float32 rounding differences may grow a little.
        np.testing.assert_allclose(got[key], want[key], rtol=2e-3, atol=2e-3, err_msg=key)
    moved = [k for k in want if k in init and not np.allclose(want[k], init[k])]
    assert moved  # the comparison is between trained weights, not the initial ones


@pytest.fixture(autouse=True)
def _clean_parameters(monkeypatch):
    # These tests use small tensors; in use, those keep nnabla's kernel (tested below).
    monkeypatch.setattr(_batchnorm, "MIN_ELEMENTS", 0)
    yield
    nn.clear_parameters()


def test_small_inputs_keep_nnabla_batch_normalization(monkeypatch) -> None:
    monkeypatch.setattr(_batchnorm, "MIN_ELEMENTS", 2 * 3 * 4 * 4)
    kinds = [batch_normalization(nn.Variable(shape), batch_stat=True, decay_rate=0.9,
                                 name=f"bn{i}").parent.info.type_name
             for i, shape in enumerate([(2, 3, 4, 4), (2, 3, 4, 3), (3, 3, 4, 4)])]
    assert kinds == ["NumpyBatchNormalization", "BatchNormalization",
                     "NumpyBatchNormalization"]


def test_module_graph_uses_the_numpy_kernel_in_training_and_nnabla_in_inference() -> None:
    space = create_space("darts", input_shape=(1, 8, 8), n_classes=10, cells=3, channels=4,
                         nodes=2, operations=["avg_k3", "sep_k3"])
    net = space.supernet()
    net.set_mode("darts")
    kinds: dict[bool, set[str]] = {}
    params: dict[bool, int] = {}
    for training in (True, False):
        net.training = training
        y = net(nn.Variable((2, 1, 8, 8)))
        seen: set[str] = set()
        y.visit(lambda f: seen.add(f.info.type_name))
        kinds[training] = seen
        params[training] = count_graph_params(y)
    # Running statistics are not parameters, whichever kernel reads them.
    assert params[True] == params[False] > 0
    assert "NumpyBatchNormalization" in kinds[True] and "BatchNormalization" not in kinds[True]
    assert "BatchNormalization" in kinds[False]
    assert "NumpyBatchNormalization" not in kinds[False]
