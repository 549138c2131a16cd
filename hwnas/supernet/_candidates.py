"""The candidate-operation vocabulary: compact option names, decoded into modules and costs."""
from __future__ import annotations

import dataclasses
import re

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF

from hwnas.errors import shorten
from hwnas.supernet._ops import Op, Skip, build_option, relu

__all__ = ["DARTS_OPS", "KNOWN_FORMS", "REFERENCE_CHANNELS", "Candidate", "build_candidate",
           "complexity", "computes_nothing", "describe", "parse_candidate"]

#: The eight operations of the DARTS search space, "zero" being its "none".
DARTS_OPS = ("zero", "max_k3", "avg_k3", "skip", "sep_k3", "sep_k5", "dil_k3", "dil_k5")

#: The option patterns, as error messages list them (K odd; D, G, E positive).
KNOWN_FORMS = ("zero", "skip", "bn", "affine", "max_k<K>", "avg_k<K>", "conv_k<K>",
               "conv_k<K>_bias", "dil_k<K>", "dil_k<K>_d<D>", "grp_k<K>_g<G>", "sep_k<K>",
               "ir_k<K>_e<E>")

_DEFAULT_DILATION = 2  # DARTS's dil_conv_3x3 and dil_conv_5x5
_N = r"[1-9][0-9]*"
_GRAMMAR = [(form, re.compile(pattern)) for form, pattern in [
    ("zero", r"zero"), ("skip", r"skip"), ("bn", r"bn"), ("affine", r"affine"),
    ("max", rf"max_k(?P<kernel>{_N})"),
    ("avg", rf"avg_k(?P<kernel>{_N})"),
    ("conv", rf"conv_k(?P<kernel>{_N})(?P<bias>_bias)?"),
    ("dil", rf"dil_k(?P<kernel>{_N})(?:_d(?P<dilation>{_N}))?"),
    ("grp", rf"grp_k(?P<kernel>{_N})_g(?P<groups>{_N})"),
    ("sep", rf"sep_k(?P<kernel>{_N})"),
    ("ir", rf"ir_k(?P<kernel>{_N})_e(?P<expansion>{_N})"),
]]

#: Channel width at which :func:`complexity` estimates costs.
REFERENCE_CHANNELS = 32
# Forms that cost no multiply-accumulates, in the order they still cost something.
_FREE_TIERS = {"zero": 0, "skip": 1, "avg": 2, "max": 2, "bn": 3}


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A decoded option: its form (the name's first word) and its numbers (1 where unused)."""

    form: str
    kernel: int = 1
    dilation: int = 1
    groups: int = 1
    expansion: int = 1
    bias: bool = False


def _unknown(option: str, why: str) -> ValueError:
    return ValueError(f"{why} candidate option {shorten(option)}; "
                      f"known forms: {', '.join(KNOWN_FORMS)}")


def parse_candidate(option: str) -> Candidate:
    """Decodes an option name such as ``sep_k3`` or ``dil_k5_d3``.

    Raises:
        ValueError: for a name matching none of :data:`KNOWN_FORMS`, or an even kernel.
    """
    for form, pattern in _GRAMMAR:
        match = pattern.fullmatch(option) if isinstance(option, str) else None
        if match is None:
            continue
        numbers = {k: int(v) for k, v in match.groupdict().items() if k != "bias" and v}
        if form == "dil":
            numbers.setdefault("dilation", _DEFAULT_DILATION)
        if numbers.get("kernel", 1) % 2 == 0:
            # Only an odd kernel has a padding that keeps H and W at stride 1.
            raise _unknown(option, f"even kernel {numbers['kernel']} in")
        return Candidate(form, bias=bool(match.groupdict().get("bias")), **numbers)
    raise _unknown(option, "unknown")


def describe(option: str) -> str:
    """One line saying what the candidate ``option`` computes."""
    c = parse_candidate(option)
    k = f"{c.kernel}x{c.kernel}"
    return {
        "zero": "zeros of the output shape (DARTS 'none'), computing nothing",
        "skip": "identity; ReLU, strided 1x1 convolution and BN where the shape changes",
        "bn": "batch normalization alone",
        "affine": ("fully connected layer with bias over the channels at every position "
                   "(a 1x1 convolution)"),
        "max": f"{k} max pooling, BN (after a 1x1 convolution where channels change)",
        "avg": f"{k} average pooling without padding, BN (after a 1x1 convolution where "
               f"channels change)",
        "conv": f"ReLU, {k} convolution with bias" if c.bias else f"ReLU, {k} convolution, BN",
        "dil": f"ReLU, {k} depthwise convolution dilated by {c.dilation}, 1x1 convolution, BN",
        "grp": f"ReLU, {k} convolution in {c.groups} groups, BN",
        "sep": f"twice: ReLU, {k} depthwise convolution, 1x1 convolution, BN",
        "ir": f"inverted residual: 1x1 expansion by {c.expansion}, {k} depthwise "
              f"convolution, 1x1 projection",
    }[c.form]


def computes_nothing(option: str, in_channels: int, out_channels: int, stride: int) -> bool:
    """True where the candidate is free: ``zero``, and ``skip`` when it is the identity."""
    form = parse_candidate(option).form
    return form == "zero" or (form == "skip" and stride == 1 and in_channels == out_channels)


def complexity(option: str) -> tuple[int, int, int, int, str]:
    """A sort key from the cheapest option to the most expensive.

    The first entry estimates multiply-accumulates per output position at
    :data:`REFERENCE_CHANNELS` channels in and out, stride 1; options without
    any (zero < skip < pools < bn) and ties are ordered by the rest.
    """
    c = parse_candidate(option)
    n, k2 = REFERENCE_CHANNELS, c.kernel * c.kernel
    macs = {
        "affine": n * n,
        "conv": k2 * n * n,
        "grp": k2 * n * n // c.groups,
        "dil": k2 * n + n * n,
        "sep": 2 * (k2 * n + n * n),
        "ir": c.expansion * n * (2 * n + k2),
    }.get(c.form, 0)
    return macs, _FREE_TIERS.get(c.form, len(_FREE_TIERS)), k2, c.dilation, option


class Zero(Op):
    """Zeros of the output shape, batch size taken from the input (DARTS's ``none``)."""

    def __init__(self, out_channels: int, stride: int) -> None:
        self.out_channels, self.stride = out_channels, stride

    def call(self, x: nn.Variable) -> nn.Variable:
        c, height, width = x.shape[1:]
        h = x
        if self.stride > 1 or self.out_channels < c:
            # start/stop/step name the trailing axes only: no batch size in the saved graph.
            h = F.slice(h, start=(0, 0, 0), stop=(min(c, self.out_channels), height, width),
                        step=(1, self.stride, self.stride))
        h = F.mul_scalar(h, 0.0)
        if self.out_channels > c:
            h = F.pad(h, (0, self.out_channels - c, 0, 0, 0, 0))
        return h


class ProjectionShortcut(Op):
    """The ``skip`` of a block that changes the shape: ReLU, strided 1x1 convolution, BN."""

    def __init__(self, out_channels: int, stride: int) -> None:
        self.out_channels, self.stride = out_channels, stride

    def call(self, x: nn.Variable) -> nn.Variable:
        h = PF.convolution(relu(x), self.out_channels, (1, 1), stride=(self.stride,) * 2,
                           with_bias=False, name="conv", fix_parameters=self.frozen)
        return self.bn(h, "bn")


class Pool(Op):
    """Max or average (padding excluded) pooling, 1x1 convolution if channels change, BN."""

    def __init__(self, kind: str, kernel: int, out_channels: int, stride: int) -> None:
        self.kind, self.kernel, self.out_channels, self.stride = kind, kernel, out_channels, stride

    def call(self, x: nn.Variable) -> nn.Variable:
        window, stride, pad = (self.kernel,) * 2, (self.stride,) * 2, (self.kernel // 2,) * 2
        if self.kind == "max":
            h = F.max_pooling(x, window, stride, pad=pad)
        else:
            h = F.average_pooling(x, window, stride, pad=pad, including_pad=False)
        if h.shape[1] != self.out_channels:
            # One BN after the projection, not one before and one after: it folds into it.
            h = PF.convolution(h, self.out_channels, (1, 1), with_bias=False, name="proj",
                               fix_parameters=self.frozen)
        return self.bn(h, "bn")


class ReLUConvBN(Op):
    """ReLU, (grouped) convolution, then BN, or a bias instead of BN."""

    def __init__(self, out_channels: int, kernel: int, stride: int, groups: int = 1,
                 bias: bool = False) -> None:
        self.out_channels, self.kernel, self.stride = out_channels, kernel, stride
        self.groups, self.bias = groups, bias

    def call(self, x: nn.Variable) -> nn.Variable:
        kernel, stride, pad = (self.kernel,) * 2, (self.stride,) * 2, (self.kernel // 2,) * 2
        h = relu(x)
        if self.groups > 1 and self.groups == x.shape[1] == self.out_channels:
            # nnabla's CPU grouped convolution is an order of magnitude slower than depthwise.
            h = PF.depthwise_convolution(h, kernel, pad=pad, stride=stride,
                                         with_bias=self.bias, name="conv",
                                         fix_parameters=self.frozen)
        else:
            h = PF.convolution(h, self.out_channels, kernel, pad=pad, stride=stride,
                               group=self.groups, with_bias=self.bias, name="conv",
                               fix_parameters=self.frozen)
        return h if self.bias else self.bn(h, "bn")


class DilConv(Op):
    """DARTS's dil_conv: ReLU, dilated depthwise convolution, 1x1 convolution, BN."""

    def __init__(self, out_channels: int, kernel: int, stride: int, dilation: int) -> None:
        self.out_channels, self.kernel, self.stride = out_channels, kernel, stride
        self.dilation = dilation

    def call(self, x: nn.Variable) -> nn.Variable:
        pad = self.dilation * (self.kernel // 2)
        h = PF.depthwise_convolution(relu(x), (self.kernel,) * 2, pad=(pad, pad),
                                     stride=(self.stride,) * 2, dilation=(self.dilation,) * 2,
                                     with_bias=False, name="depthwise", fix_parameters=self.frozen)
        h = PF.convolution(h, self.out_channels, (1, 1), with_bias=False, name="pointwise",
                           fix_parameters=self.frozen)
        return self.bn(h, "bn")


class SepConv(Op):
    """DARTS's sep_conv: two undilated DilConvs, the first strided and keeping the channels."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
        self.first = DilConv(in_channels, kernel, stride, 1)
        self.second = DilConv(out_channels, kernel, 1, 1)

    def call(self, x: nn.Variable) -> nn.Variable:
        return self.second(self.first(x))


class BatchNorm(Op):
    """Batch normalization alone."""

    def call(self, x: nn.Variable) -> nn.Variable:
        return self.bn(x, "bn")


class PositionwiseAffine(Op):
    """A fully connected layer with bias over the channels, at every (subsampled) position.

    It is computed as a 1x1 convolution: ``PF.affine(h, out, base_axis=3)`` on
    NHWC computes the same, but nnabla's .nnp writer flattens such an affine
    layer to base axis 1 without reshaping its neighbours (nnabla 1.39,
    ``variable_batch_size``), so the saved file fails to load.
    """

    def __init__(self, out_channels: int, stride: int) -> None:
        self.out_channels, self.stride = out_channels, stride

    def call(self, x: nn.Variable) -> nn.Variable:
        return PF.convolution(x, self.out_channels, (1, 1), stride=(self.stride,) * 2,
                              with_bias=True, name="fc", fix_parameters=self.frozen)


def build_candidate(option: str, in_channels: int, out_channels: int, stride: int) -> Op:
    """The candidate module named by ``option``, mapping (N, in, H, W) to (N, out, H', W').

    H' = (H - 1) // stride + 1, and likewise W'.

    Raises:
        ValueError: for an unknown option, non-positive sizes, or a shape change
            the option cannot make (``bn``; ``grp`` with indivisible channels).
    """
    c = parse_candidate(option)
    if min(in_channels, out_channels, stride) < 1:
        raise ValueError(f"candidate {option!r} needs positive sizes, got in_channels="
                         f"{in_channels}, out_channels={out_channels}, stride={stride}")
    same = stride == 1 and in_channels == out_channels
    if c.form == "bn" and not same:
        raise ValueError(f"candidate 'bn' keeps the shape: it cannot map {in_channels} channels "
                         f"to {out_channels} at stride {stride}")
    if c.form == "grp" and (in_channels % c.groups or out_channels % c.groups):
        raise ValueError(f"candidate {option!r}: {in_channels} in and {out_channels} out "
                         f"channels must both be divisible by {c.groups} groups")
    if c.form == "zero":
        return Zero(out_channels, stride)
    if c.form == "skip":
        return Skip() if same else ProjectionShortcut(out_channels, stride)
    if c.form == "bn":
        return BatchNorm()
    if c.form == "affine":
        return PositionwiseAffine(out_channels, stride)
    if c.form in ("max", "avg"):
        return Pool(c.form, c.kernel, out_channels, stride)
    if c.form in ("conv", "grp"):
        return ReLUConvBN(out_channels, c.kernel, stride, c.groups, c.bias)
    if c.form == "dil":
        return DilConv(out_channels, c.kernel, stride, c.dilation)
    if c.form == "sep":
        return SepConv(in_channels, out_channels, c.kernel, stride)
    return build_option(option, in_channels, out_channels, stride)
