"""Nested weight sharing: a chain block's inverted residuals read one set of convolution weights.

With ``weight_sharing: nested`` (``ChainSpace``), the inverted residuals of a
block are views of the weights of its largest one, as in Once-for-All
(elastic kernel and width) and Single-Path NAS (the superkernel): a kxk
depthwise kernel is the centre of the largest kernel, an expansion e uses
the first ``in_channels * e`` hidden channels of the 1x1 expansion and of
the projection. Each view keeps batch normalization of its own (the
switchable BN of slimmable networks), since the statistics of a slice
depend on which slice it is. Every training step then trains the shared
weights, whichever inverted residual the path takes, where separate weights
give each option only its share of the steps.

An extracted subnet is an ordinary chain: its inverted residual holds copies
of the slices (``NestedWeights.arrays``) under the names the separate
supernet gives them.
"""
from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
from nnabla.initializer import UniformInitializer, calc_uniform_lim_glorot
from nnabla.parameter import get_parameter_or_create

from hwnas.supernet._ops import Op, relu

#: How a chain space's inverted residuals hold their weights.
WEIGHT_SHARING = ("separate", "nested")
#: Each shared weight's name within an ``InvertedResidual`` (nnabla's parametric functions
#: name them): where an extracted subnet keeps its slice.
PLAIN_NAMES = {"expand": "@expand/conv/conv/W", "depthwise": "@depthwise/conv/depthwise_conv/W",
               "project": "@project/conv/conv/W"}


class NestedWeights(Op):
    """The convolution weights of a block's largest inverted residual, which its smaller ones
    slice: 1x1 expansion (hidden, in), depthwise (hidden, k, k), 1x1 projection (out, hidden).

    Args:
        in_channels, out_channels: the block's.
        kernel: the largest depthwise kernel among the block's inverted residuals.
        expansion: the largest expansion ratio among them.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, expansion: int) -> None:
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.hidden = kernel, in_channels * expansion

    def call(self) -> dict[str, nn.Variable]:
        """The full weights, created on the first call with nnabla's initialisation of the
        largest layer (Glorot uniform)."""
        c, h, o, k = self.in_channels, self.hidden, self.out_channels, self.kernel
        shapes = {"expand": ((h, c, 1, 1), (c, h, (1, 1))),
                  "depthwise": ((h, k, k), (h, h, (k, k))),
                  "project": ((o, h, 1, 1), (h, o, (1, 1)))}
        return {name: get_parameter_or_create(
                    f"{name}/W", shape,
                    UniformInitializer(calc_uniform_lim_glorot(*fans)), True, not self.frozen)
                for name, (shape, fans) in shapes.items()}

    def _slices(self, kernel: int, expansion: int) -> dict[str, tuple[tuple, tuple]]:
        """(start, stop) of every weight for the option ``kernel`` x ``expansion``."""
        hidden = self.in_channels * expansion
        if kernel > self.kernel or kernel % 2 == 0 or hidden > self.hidden:
            raise ValueError(f"ir_k{kernel}_e{expansion} is not nested in the block's largest "
                             f"inverted residual (kernel {self.kernel}, {self.hidden} hidden)")
        first = (self.kernel - kernel) // 2
        return {"expand": ((0, 0, 0, 0), (hidden, self.in_channels, 1, 1)),
                "depthwise": ((0, first, first), (hidden, first + kernel, first + kernel)),
                "project": ((0, 0, 0, 0), (self.out_channels, hidden, 1, 1))}

    def weights(self, kernel: int, expansion: int) -> dict[str, nn.Variable]:
        """The slices the option ``kernel`` x ``expansion`` computes with (gradients flow back
        into the shared weights)."""
        full = self()
        return {name: full[name] if stop == full[name].shape
                else F.slice(full[name], start=start, stop=stop)
                for name, (start, stop) in self._slices(kernel, expansion).items()}

    def arrays(self, kernel: int, expansion: int) -> dict[str, np.ndarray]:
        """Copies of those slices, by their name within an ``InvertedResidual``."""
        full = self()
        return {PLAIN_NAMES[name]: full[name].d[tuple(map(slice, start, stop))].copy()
                for name, (start, stop) in self._slices(kernel, expansion).items()}


class _ConvBN(Op):
    """A convolution with a given weight, batch normalization of its own, optional ReLU."""

    def __init__(self, kernel: int, stride: int = 1, depthwise: bool = False, act: bool = True,
                 zero_gamma: bool = False) -> None:
        self.kernel, self.stride, self.depthwise = kernel, stride, depthwise
        self.act, self.zero_gamma = act, zero_gamma

    def call(self, x: nn.Variable, w: nn.Variable) -> nn.Variable:
        pad, stride = (self.kernel // 2,) * 2, (self.stride,) * 2
        if self.depthwise:
            h = F.depthwise_convolution(x, w, pad=pad, stride=stride)
        else:
            h = F.convolution(x, w, pad=pad, stride=stride)
        h = self.bn(h, "bn", self.zero_gamma)
        return relu(h) if self.act else h


class NestedInvertedResidual(Op):
    """An inverted residual computed with slices of its block's ``NestedWeights``.

    It computes what ``InvertedResidual`` with the same arguments computes, its
    batch normalizations under the same names; only the convolution weights come
    from ``source``.
    """

    def __init__(self, source: NestedWeights, kernel: int, expansion: int, stride: int) -> None:
        # Not a submodule: the weights belong to the block, which holds them once.
        self.__dict__["source"] = source
        self.kernel, self.expansion = kernel, expansion
        self.residual = stride == 1 and source.in_channels == source.out_channels
        self.expand = _ConvBN(1)
        self.depthwise = _ConvBN(kernel, stride, depthwise=True)
        self.project = _ConvBN(1, act=False, zero_gamma=self.residual)

    def call(self, x: nn.Variable) -> nn.Variable:
        w = self.source.weights(self.kernel, self.expansion)
        h = self.project(self.depthwise(self.expand(x, w["expand"]), w["depthwise"]),
                         w["project"])
        return F.add2(h, x) if self.residual else h
