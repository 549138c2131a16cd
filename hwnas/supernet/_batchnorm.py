"""Training-mode batch normalization computed with numpy on CPU.

nnabla 1.39's CPU kernel for batch normalization over the channel axis of an
NCHW tensor took a third of a DARTS search step. The same arithmetic in
numpy, done as reductions over contiguous (N, C, H*W) views, takes 0.3-0.6x
its time, forward and backward, at the DARTS space's shapes
(``bench/bench_batchnorm.py``); below ``MIN_ELEMENTS`` nnabla's kernel is
faster. Only the batch-statistics mode (training) runs here: inference
graphs, which export, folding and latency measurement read, keep nnabla's
``BatchNormalization`` function, and so does any non-CPU context.

The parameters are the ones ``PF.batch_normalization`` creates, under the same
names, so checkpoints and extracted subnets do not depend on which
implementation trained them. The running statistics follow nnabla's rule:
``running = decay * running + (1 - decay) * batch``, with the unbiased batch
variance.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import nnabla as nn
import nnabla.parametric_functions as PF
import numpy as np
from nnabla.function import PythonFunction

EPS = 1e-5
#: Smaller inputs keep nnabla's kernel: each call of a Python function costs
#: about 1 ms of fixed overhead (reading an NdArray from Python alone takes
#: 20-50 us), so numpy wins only from about 50,000 elements (bench_batchnorm.py).
MIN_ELEMENTS = 65536
_enabled = True


@contextlib.contextmanager
def nnabla_batchnorm() -> Iterator[None]:
    """Graphs built inside use nnabla's own kernel in training mode too (benchmarks, tests)."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


def _cpu_context() -> bool:
    return all(b.startswith("cpu") for b in nn.get_current_context().backend)


class NumpyBatchNorm(PythonFunction):
    """Inputs ``x[, beta, gamma], mean, var``; one output; batch statistics over axes 0, 2, ...

    Like nnabla's kernel, the backward pass uses the batch mean and variance
    of the latest forward pass.
    """

    def __init__(self, ctx, affine: bool, decay_rate: float, eps: float) -> None:
        super().__init__(ctx)
        self.affine, self.decay_rate, self.eps = affine, decay_rate, eps
        self._batch: tuple[np.ndarray, np.ndarray] | None = None  # mean, 1 / std

    @property
    def name(self) -> str:
        return "NumpyBatchNormalization"

    def min_outputs(self) -> int:
        return 1

    def setup_impl(self, inputs, outputs) -> None:
        outputs[0].reset_shape(inputs[0].shape, True)

    def grad_depends_output_data(self, i, o) -> bool:
        return False

    def grad_depends_input_data(self, i, j) -> bool:
        return True

    def forward_impl(self, inputs, outputs) -> None:
        x = _by_channel(_f32(inputs[0].data))
        count = x.shape[0] * x.shape[2]
        mean = x.sum(axis=2).sum(axis=0) / count
        y = _f32(outputs[0].data, "w").reshape(x.shape)
        np.subtract(x, mean[None, :, None], out=y)
        var = np.einsum("ncm,ncm->c", y, y) / count
        rstd = (1.0 / np.sqrt(var + self.eps)).astype(np.float32)
        self._batch = mean, rstd
        y *= (rstd * _f32(inputs[2].data).reshape(-1) if self.affine else rstd)[None, :, None]
        if self.affine:
            y += _f32(inputs[1].data).reshape(-1)[None, :, None]
        keep = self.decay_rate
        running_mean = _f32(inputs[-2].data, "rw").reshape(-1)
        running_var = _f32(inputs[-1].data, "rw").reshape(-1)
        running_mean[...] = keep * running_mean + (1 - keep) * mean
        running_var[...] = keep * running_var + (1 - keep) * var * (count / max(count - 1, 1))

    def backward_impl(self, inputs, outputs, propagate_down, accum) -> None:
        x = _by_channel(_f32(inputs[0].data))
        count = x.shape[0] * x.shape[2]
        mean, rstd = self._batch
        dy = _f32(outputs[0].grad).reshape(x.shape)
        sum_dy = dy.sum(axis=2).sum(axis=0)
        centred = x - mean[None, :, None]
        sum_dy_centred = np.einsum("ncm,ncm->c", dy, centred)
        if self.affine:
            _store(inputs[1], sum_dy, propagate_down[1], accum[1])
            _store(inputs[2], sum_dy_centred * rstd, propagate_down[2], accum[2])
        if not propagate_down[0]:
            return
        # dx = gamma * rstd * (dy - mean(dy) - xhat * mean(dy * xhat)), in place in centred.
        scale = rstd * _f32(inputs[2].data).reshape(-1) if self.affine else rstd
        centred *= (scale * rstd * rstd * sum_dy_centred / count)[None, :, None]
        centred += (scale * sum_dy / count)[None, :, None]
        dx = _f32(inputs[0].grad, "rw" if accum[0] else "w").reshape(x.shape)
        if accum[0]:
            dx -= centred
            dx += dy * scale[None, :, None]
        else:
            np.multiply(dy, scale[None, :, None], out=dx)
            dx -= centred


def _by_channel(x: np.ndarray) -> np.ndarray:
    """An (N, C, ...) array as (N, C, M)."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _f32(array, mode: str = "r") -> np.ndarray:
    """The float32 numpy view of an nnabla NdArray: ``mode`` 'r' (another dtype stays as it is,
    unlike with ``cast``), 'w' or 'rw'."""
    return array.get_data(mode, np.float32)


def _store(variable, value: np.ndarray, propagate: bool, accum: bool) -> None:
    if not propagate:
        return
    grad = _f32(variable.grad, "rw" if accum else "w").reshape(value.shape)
    if accum:
        grad += value
    else:
        grad[...] = value


def batch_normalization(h: nn.Variable, *, batch_stat: bool, decay_rate: float, name: str,
                        fix_parameters: bool = False, param_init: dict | None = None,
                        no_scale: bool = False, no_bias: bool = False) -> nn.Variable:
    """``PF.batch_normalization`` over axis 1, with the numpy kernel when training on CPU."""
    y = PF.batch_normalization(h, batch_stat=batch_stat, decay_rate=decay_rate, eps=EPS,
                               param_init=param_init, name=name, fix_parameters=fix_parameters,
                               no_scale=no_scale, no_bias=no_bias)
    if not (batch_stat and no_scale == no_bias and _enabled and h.size >= MIN_ELEMENTS
            and _cpu_context()):
        return y
    # The parameters exactly as PF created them (names, initial values, need_grad)
    # are the inputs of its BatchNormalization node, which is then left unused.
    args = y.parent.info.args
    function = NumpyBatchNorm(nn.get_current_context(), not no_scale, args["decay_rate"],
                              args["eps"])
    return function(h, *list(y.parent.inputs)[1:])
