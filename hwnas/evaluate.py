"""Evaluator: scores a subnet with inherited weights and its hardware costs."""
from __future__ import annotations

from typing import TYPE_CHECKING

import nnabla as nn
import numpy as np

from hwnas.config import LatencyConfig
from hwnas.data import Dataset, Split
from hwnas.errors import MeasurementError
from hwnas.hwcost import (BaseProfiler, Costs, LatencyProtocol, NnablaProfiler,
                          count_graph_params, count_macs, inference_output, param_bytes,
                          peak_activation_bytes)
from hwnas.objectives import Evaluation
from hwnas.supernet import Arch, BaseSearchSpace, SplitWeights, Supernet

if TYPE_CHECKING:
    from hwnas.hwcost import LatencyTable

#: Examples per forward pass when scoring a split.
EVAL_BATCH = 256


class Evaluator:
    """Turns an Arch into an Evaluation; results are cached by Arch key.

    Accuracy is measured on the validation split with the supernet's shared
    weights after batch-norm recalibration: the running statistics of the
    subnet's batch norms are replaced by those of ``bn_samples`` training
    examples, since the statistics accumulated while training every path
    match no single path. A few-shot supernet (``split``) scores a subnet with the copy of
    the weights of its option of the split choice, put into the supernet before
    recalibration (and left there: ``recalibrate`` is what prepares the supernet for
    ``arch``, for scoring as for extraction). Costs are counted and measured on the extracted
    standalone subnet in inference mode.

    Args:
        space: the search space.
        supernet: its trained supernet.
        data: the dataset (train for recalibration, val for accuracy).
        latency: the latency measurement protocol.
        bn_samples: training examples used for recalibration.
        profiler: measures latency; in this process on ``latency.context`` when None.
        table: a calibrated latency table; when given, latency is predicted
            from it instead of measured (``Costs.latency_source`` says which).
        split: a few-shot supernet's copies of the weights; None for a one-shot supernet,
            whose weights stay as they are.
    """

    def __init__(self, *, space: BaseSearchSpace, supernet: Supernet, data: Dataset,
                 latency: LatencyConfig, bn_samples: int = 512,
                 profiler: BaseProfiler | None = None, table: LatencyTable | None = None,
                 split: SplitWeights | None = None) -> None:
        if bn_samples < 1:
            raise ValueError(f"bn_samples must be >= 1, got {bn_samples}")
        self.space, self.supernet, self.data, self.latency = space, supernet, data, latency
        self.calibration = data.train.x[:bn_samples]
        self.profiler = profiler or NnablaProfiler(latency)
        self.table = table
        self.split = split
        self.cache: dict[str, Evaluation] = {}

    def __call__(self, arch: Arch) -> Evaluation:
        """The evaluation of ``arch``, computed once per Arch key."""
        if arch.key not in self.cache:
            # The search loop validates every proposal before it gets here (an infeasible one
            # is recorded, not measured); a direct caller still gets the ValueError first.
            self.space.validate(arch)
            accuracy = self.accuracy(arch, self.data.val)
            self.cache[arch.key] = Evaluation(
                arch, {"accuracy": accuracy, "error": 1.0 - accuracy}, self.costs(arch))
        return self.cache[arch.key]

    def recalibrate(self, arch: Arch) -> None:
        """Replaces the running BN statistics of ``arch``'s path with fresh training-data ones
        (in the copy of ``arch``'s option, for a few-shot supernet)."""
        net = self.supernet
        if self.split is not None:
            self.split.use(net, arch)
        net.set_active(arch)
        net.training, net.bn_decay = True, 0.0
        try:
            out = net(nn.Variable.from_numpy_array(self.calibration))
            out.forward(clear_buffer=True)
        finally:
            net.training, net.bn_decay = False, 0.9

    def accuracy(self, arch: Arch, split: Split) -> float:
        """Top-1 accuracy of ``arch`` on ``split`` with recalibrated inherited weights."""
        self.recalibrate(arch)
        return split_accuracy(self.supernet, split)

    def costs(self, arch: Arch) -> Costs:
        """Parameters, MACs, memory and latency (predicted or measured) of the standalone subnet."""
        subnet = self.supernet.extract(arch)
        x = nn.Variable((1,) + tuple(self.data.input_shape))
        y = inference_output(subnet, x)
        params = count_graph_params(y, inputs=[x])
        macs = count_macs(y)
        memory = param_bytes(y, inputs=[x]) + peak_activation_bytes(y, inputs=[x])
        if self.table is not None:
            latency_ms, uncertainty = self.table.predict(arch)
            return Costs(latency_ms=latency_ms, params=params, macs=macs, memory_bytes=memory,
                         protocol=self.table.protocol, latency_source="predicted",
                         latency_uncertainty_ms=uncertainty)
        latency_ms, protocol = self._measure(subnet, arch)
        return Costs(latency_ms=latency_ms, params=params, macs=macs, memory_bytes=memory,
                     protocol=protocol)

    def _measure(self, subnet: nn.Module, arch: Arch) -> tuple[float, LatencyProtocol]:
        latency_ms, protocol = self.profiler.measure(subnet, self.data.input_shape)
        if not protocol.reliable:
            cfg = self.latency
            raise MeasurementError(
                f"latency of {arch.key} is unreliable: spread {protocol.spread:.0%} exceeds "
                f"{cfg.max_spread:.0%} after {cfg.retries + 1} attempts; the machine is too "
                "busy, or raise latency.max_spread / latency.repeats")
        return latency_ms, protocol


def split_accuracy(net: nn.Module, split: Split, batch_size: int = EVAL_BATCH) -> float:
    """Top-1 accuracy of ``net`` (in its current mode) on ``split``."""
    n = len(split)
    batch = min(batch_size, n)
    x = nn.Variable((batch,) + split.x.shape[1:])
    y = net(x)
    correct = 0
    for start in range(0, n, batch):
        chunk = split.x[start:start + batch]
        x.d[:len(chunk)] = chunk
        y.forward(clear_buffer=True)
        correct += int(np.sum(np.argmax(y.d[:len(chunk)], axis=1) == split.y[start:start + batch, 0]))
    return correct / n
