"""Candidate operations of the chain space: conv-BN-ReLU, inverted residual, skip."""
from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
from nnabla.initializer import ConstantInitializer

from hwnas.supernet._batchnorm import batch_normalization


def relu(x: nn.Variable) -> nn.Variable:
    """ReLU as ``max(x, 0)``: the same values, several times faster than ``F.relu`` on CPU."""
    return F.maximum_scalar(x, 0.0)


class Op(nn.Module):
    """A candidate operation; ``bn_decay`` is the running-statistics decay of its BNs.

    ``training`` (nnabla's recursive flag) selects batch statistics in batch
    normalization; a ``bn_decay`` of 0 makes one training-mode forward pass
    replace the running statistics (batch-norm recalibration). A graph built
    while ``frozen`` holds the weights as constants: its backward pass computes
    no weight gradients (an architecture step needs only the alphas').
    ``affine_bn`` False gives its batch normalizations no learnable scale and
    shift (DARTS's candidate operations; also about half the BN time).
    """

    _recursive_attrs = ["training", "bn_decay", "frozen", "affine_bn"]
    bn_decay = 0.9
    frozen = False
    affine_bn = True

    def bn(self, h: nn.Variable, name: str, zero_gamma: bool = False) -> nn.Variable:
        init = {"gamma": ConstantInitializer(0.0)} if zero_gamma else None
        return batch_normalization(h, batch_stat=self.training, decay_rate=self.bn_decay,
                                   param_init=init, name=name, fix_parameters=self.frozen,
                                   no_scale=not self.affine_bn, no_bias=not self.affine_bn)


class ConvBNReLU(Op):
    """Convolution without bias, batch normalization, optional ReLU."""

    def __init__(self, out_channels: int, kernel: int, stride: int = 1, group: int = 1,
                 act: bool = True, zero_gamma: bool = False) -> None:
        self.out_channels, self.kernel, self.stride = out_channels, kernel, stride
        self.group, self.act, self.zero_gamma = group, act, zero_gamma

    def call(self, x: nn.Variable) -> nn.Variable:
        pad = self.kernel // 2
        if self.group > 1 and self.group == x.shape[1] == self.out_channels:
            # nnabla's CPU grouped convolution runs one im2col per group; its
            # depthwise kernel is an order of magnitude faster.
            h = PF.depthwise_convolution(x, (self.kernel, self.kernel), pad=(pad, pad),
                                         stride=(self.stride, self.stride), with_bias=False,
                                         name="conv", fix_parameters=self.frozen)
        else:
            h = PF.convolution(x, self.out_channels, (self.kernel, self.kernel), pad=(pad, pad),
                               stride=(self.stride, self.stride), group=self.group,
                               with_bias=False, name="conv", fix_parameters=self.frozen)
        h = self.bn(h, "bn", self.zero_gamma)
        return relu(h) if self.act else h


class InvertedResidual(Op):
    """MobileNetV2 block: 1x1 expand, kxk depthwise, 1x1 project, residual when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, expansion: int,
                 stride: int) -> None:
        hidden = in_channels * expansion
        self.residual = stride == 1 and in_channels == out_channels
        self.expand = ConvBNReLU(hidden, 1)
        self.depthwise = ConvBNReLU(hidden, kernel, stride, group=hidden)
        # A residual block starts as the identity (its last BN scale is 0), so
        # that every path of the supernet starts out as a trainable shallow net.
        self.project = ConvBNReLU(out_channels, 1, act=False, zero_gamma=self.residual)

    def call(self, x: nn.Variable) -> nn.Variable:
        h = self.project(self.depthwise(self.expand(x)))
        return F.add2(h, x) if self.residual else h


class Skip(Op):
    """Identity: the block is left out of the subnet."""

    def call(self, x: nn.Variable) -> nn.Variable:
        return x


class Head(Op):
    """1x1 conv-BN-ReLU, global average pooling and the classifier."""

    def __init__(self, channels: int, n_classes: int) -> None:
        self.n_classes = n_classes
        self.conv = ConvBNReLU(channels, 1)

    def call(self, x: nn.Variable) -> nn.Variable:
        h = F.global_average_pooling(self.conv(x))
        return PF.affine(h, self.n_classes, name="fc", fix_parameters=self.frozen)


def parse_option(option: str) -> tuple[int, int] | None:
    """Decodes ``ir_k{kernel}_e{expansion}`` into (kernel, expansion); None for ``skip``."""
    if option == "skip":
        return None
    parts = option.split("_")
    if len(parts) != 3 or parts[0] != "ir" or parts[1][:1] != "k" or parts[2][:1] != "e":
        raise ValueError(f"unknown block option {option!r}; expected 'skip' or 'ir_k<K>_e<E>'")
    return int(parts[1][1:]), int(parts[2][1:])


def build_option(option: str, in_channels: int, out_channels: int, stride: int) -> Op:
    """The candidate module named by ``option``."""
    decoded = parse_option(option)
    if decoded is None:
        return Skip()
    kernel, expansion = decoded
    return InvertedResidual(in_channels, out_channels, kernel, expansion, stride)
