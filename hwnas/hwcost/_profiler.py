"""Profilers: measure the latency of a standalone network on a target device."""
from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING

import nnabla as nn
from hwnas.costs import LatencyProtocol
from hwnas.hwcost._latency import describe_device, measure_graph_latency
from hwnas.hwcost._optimize import optimize_inference_graph

if TYPE_CHECKING:  # hwnas.config imports the cost records
    from hwnas.config import LatencyConfig


def inference_output(module: nn.Module, x: nn.Variable) -> nn.Variable:
    """The graph a deployed ``module`` runs on ``x``: inference mode, optimised.

    Batch normalization is folded into the convolution, depthwise convolution
    or affine layer before it and activations use their fastest equivalents
    (see :func:`~hwnas.hwcost._optimize.optimize_inference_graph`), as in the
    exported .nnp: the same values within float32 rounding, with a bias per
    folded layer in place of its BN's beta and gamma (so parameter counts of
    this graph are the deployed ones).
    """
    module.training = False
    y = module(x)
    optimize_inference_graph(y)
    return y


class BaseProfiler(abc.ABC):
    """Measures the forward latency of a standalone network.

    A profiler owns its protocol (batch size, repeats, statistic, ...) and
    records it with every number. ``measure`` raises ``MeasurementError`` when
    the measurement fails or stays unreliable; it never returns 0.

    Args:
        config: the latency protocol.
    """

    def __init__(self, config: LatencyConfig) -> None:
        self.config = config

    @property
    @abc.abstractmethod
    def device(self) -> str:
        """A description of the device that runs the network."""

    @abc.abstractmethod
    def measure(self, module: nn.Module, input_shape: Sequence[int]) -> tuple[float,
                                                                              LatencyProtocol]:
        """Latency in ms of ``module`` on inputs of shape (batch_size, *input_shape)."""


class NnablaProfiler(BaseProfiler):
    """Times the network in this process on an nnabla context (``cpu``, ``cudnn``)."""

    def __init__(self, config: LatencyConfig) -> None:
        super().__init__(config)
        self._device = describe_device(config.context)

    @property
    def device(self) -> str:
        return self._device

    def measure(self, module: nn.Module, input_shape: Sequence[int]) -> tuple[float,
                                                                              LatencyProtocol]:
        cfg = self.config
        x = nn.Variable((cfg.batch_size,) + tuple(input_shape))
        y = inference_output(module, x)
        return measure_graph_latency(
            y, [x], warmup=cfg.warmup, repeats=cfg.repeats, statistic=cfg.statistic,
            max_spread=cfg.max_spread, retries=cfg.retries, context=cfg.context,
            device=self.device, batch_size=cfg.batch_size)
