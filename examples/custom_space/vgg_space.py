"""A VGG-like search space written only against hwnas's public API.

The network is a chain: a 3x3 stem, then stages of searchable blocks; between
two stages a searchable pooling halves the resolution; a head (1x1 conv, global
average pooling, classifier) ends it. Every block chooses

* the kind of its kxk convolution: plain (``conv``), dilated by 2 (``dil``) or
  in two groups (``grp``),
* its kernel size (``k3``, ``k5``),
* its width: the kxk convolution computes ``w`` channels, a 1x1 convolution
  brings them to the stage's width,

and a block after a stage's first may be left out (``skip``). Pooling is ``max``
or ``avg``. Options are named ``{kind}_k{kernel}_w{width}``, e.g. ``dil_k5_w32``.

Load it in a config with ``space.name: ./vgg_space.py:VggSpace`` (the path is
relative to the config file); ``space.options`` sets the keyword arguments below.
"""
from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF

from hwnas.supernet import (Arch, BaseSearchSpace, ConvBNReLU, Head, MixedChain, Op, Unit,
                            head_unit, unit_key)

KINDS = ("conv", "dil", "grp")
POOLS = ("max", "avg")


class ConvBlock(Op):
    """A kxk convolution (plain, dilated or grouped) to ``width`` channels, BN, ReLU, then a
    1x1 convolution to ``out_channels``, BN, ReLU. ``Op.bn`` gives the batch normalizations
    what hwnas needs of them (running statistics it can recalibrate, frozen weights)."""

    def __init__(self, kind: str, kernel: int, width: int, out_channels: int) -> None:
        self.kind, self.kernel, self.width, self.out_channels = kind, kernel, width, out_channels

    def call(self, x: nn.Variable) -> nn.Variable:
        dilation = 2 if self.kind == "dil" else 1
        group = 2 if self.kind == "grp" else 1
        pad = (self.kernel // 2) * dilation
        h = PF.convolution(x, self.width, (self.kernel, self.kernel), pad=(pad, pad),
                           dilation=(dilation, dilation), group=group, with_bias=False,
                           name="conv", fix_parameters=self.frozen)
        h = F.relu(self.bn(h, "bn"))
        h = PF.convolution(h, self.out_channels, (1, 1), with_bias=False, name="project",
                           fix_parameters=self.frozen)
        return F.relu(self.bn(h, "project_bn"))


class Skip(Op):
    """The block left out."""

    def call(self, x: nn.Variable) -> nn.Variable:
        return x


class Pool(Op):
    """2x2 max or average pooling, stride 2."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def call(self, x: nn.Variable) -> nn.Variable:
        if self.kind == "max":
            return F.max_pooling(x, (2, 2), (2, 2))
        return F.average_pooling(x, (2, 2), (2, 2))


def build_option(option: str, in_channels: int, out_channels: int) -> Op:
    """The module an option names (``skip``, ``max``, ``avg`` or ``{kind}_k{k}_w{w}``)."""
    if option == "skip":
        return Skip()
    if option in POOLS:
        return Pool(option)
    kind, kernel, width = option.split("_")
    return ConvBlock(kind, int(kernel[1:]), int(width[1:]), out_channels)


class VggSupernet(MixedChain):
    """Stem, one ``MixedOp`` per choice (block or pooling), head: ``MixedChain`` routes,
    groups the weights and holds the architecture parameters; this class builds the
    options.

    Args:
        space: the space.
        choices: the options to build per choice (one each in an extracted subnet).
    """

    def __init__(self, space: VggSpace, choices: dict[str, tuple[str, ...]]) -> None:
        self.space = space
        super().__init__(
            input_shape=space.input_shape, stem=ConvBNReLU(space.widths[0], 3),
            layers={name: {o: build_option(o, cin, cout) for o in choices[name]}
                    for name, (cin, cout) in space.layers.items()},
            head=Head(space.head_channels, space.n_classes))

    def extract(self, arch: Arch) -> VggSupernet:
        self.space.validate(arch)
        return self._with_my_weights(
            VggSupernet(self.space, {name: (option,) for name, option in arch.items()}))


class VggSpace(BaseSearchSpace):
    """A VGG-like chain: stages of searchable blocks, searchable pooling between stages.

    Args:
        input_shape: (C, H, W) of the input images (from the data).
        n_classes: classifier outputs (from the data).
        widths: channels of each stage; the stem has the first stage's.
        blocks: searchable blocks per stage.
        kernels: kernel sizes offered to every block.
        kinds: convolution kinds offered (``conv``, ``dil``, ``grp``).
        width_ratios: a block's inner width as a multiple of its stage's width.
        optional: blocks after a stage's first may be skipped.
        head_channels: channels of the head's 1x1 convolution.
    """

    def __init__(self, *, input_shape: tuple[int, int, int], n_classes: int,
                 widths: list[int] | None = None, blocks: int = 2,
                 kernels: list[int] | None = None, kinds: list[str] | None = None,
                 width_ratios: list[float] | None = None, optional: bool = True,
                 head_channels: int = 32) -> None:
        widths = list(widths) if widths is not None else [16, 32]
        kernels = list(kernels) if kernels is not None else [3, 5]
        kinds = list(kinds) if kinds is not None else list(KINDS)
        ratios = list(width_ratios) if width_ratios is not None else [0.5, 1.0]
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape}")
        if not widths or any(w < 2 or w % 2 for w in widths):
            raise ValueError(f"widths must be even numbers >= 2 (grouped convolutions "
                             f"split them in two), got {widths}")
        if any(k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(f"kernels must be odd, got {kernels}")
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ValueError(f"kinds must be some of {list(KINDS)}, got {kinds}")
        if blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {blocks}")
        self.input_shape = tuple(int(v) for v in input_shape)
        self.n_classes = int(n_classes)
        self.widths = widths
        self.head_channels = head_channels
        #: choice name -> (input channels, output channels), in forward order.
        self.layers: dict[str, tuple[int, int]] = {}
        self.choices = {}
        cin = widths[0]
        for s, width in enumerate(widths):
            if s > 0:
                self.layers[f"pool{s}"] = (cin, cin)
                self.choices[f"pool{s}"] = POOLS
            inner = sorted({max(2, 2 * round(width * r / 2)) for r in ratios})
            for i in range(blocks):
                name = f"s{s}b{i}"
                self.layers[name] = (cin, width)
                options = tuple(f"{kind}_k{k}_w{w}" for kind in kinds for k in kernels
                                for w in inner)
                self.choices[name] = options + (("skip",) if optional and i > 0 else ())
                cin = width

    def supernet(self) -> VggSupernet:
        return VggSupernet(self, self.choices)

    def extremes(self) -> list[Arch]:
        """The cheapest subnet (narrowest, smallest kernels, grouped, optional blocks skipped)
        and the most expensive (widest, largest kernels, plain or dilated, every block): a
        search seeded with them spans the cost range from its start."""
        def cost(option: str) -> tuple[int, int, bool]:
            if option == "skip" or option in POOLS:
                return (0, 0, False)
            kind, kernel, width = option.split("_")
            return (int(width[1:]), int(kernel[1:]), kind != "grp")

        return [Arch({n: min(o, key=cost) for n, o in self.choices.items()}),
                Arch({n: max(o, key=cost) for n, o in self.choices.items()})]

    def feature_shapes(self) -> dict[str, tuple[int, int, int]]:
        """(C, H, W) entering every choice's layer, and the head (key ``head``); the report
        draws them."""
        _, h, w = self.input_shape
        shapes = {}
        c = self.widths[0]
        for name, (_, cout) in self.layers.items():
            shapes[name] = (c, h, w)
            if name.startswith("pool"):
                h, w = h // 2, w // 2
            c = cout
        shapes["head"] = (c, h, w)
        return shapes

    def units(self, arch: Arch | None = None) -> list[Unit]:
        """Stem, every chosen layer at the shape it sees (``skip`` has none), head."""
        if arch is not None:
            self.validate(arch)
            chosen = [self._unit(name, option) for name, option in arch.items()]
            return [self._stem(), *[u for u in chosen if u is not None], self._head()]
        distinct: dict[str, Unit] = {}
        for unit in [self._stem(), *[self._unit(name, option)
                                     for name, options in self.choices.items()
                                     for option in options], self._head()]:
            if unit is not None:
                distinct.setdefault(unit.key, unit)
        return list(distinct.values())

    def arch_units(self) -> tuple[list[Unit], dict[str, dict[str, list[Unit]]], dict[str, float]]:
        """Stem, head and single-option layers are fixed; each option of the others adds its
        own unit (``skip`` none); a derived subnet keeps one option of every layer."""
        edges = {name: {o: [u for u in [self._unit(name, o)] if u is not None] for o in options}
                 for name, options in self.choices.items() if len(options) > 1}
        single = [self._unit(name, options[0])
                  for name, options in self.choices.items() if len(options) == 1]
        fixed = [self._stem(), *[u for u in single if u is not None], self._head()]
        return fixed, edges, {name: 1.0 for name in edges}

    def _stem(self) -> Unit:
        out = self.widths[0]
        return Unit(unit_key("stem_k3", self.input_shape, out=out), self.input_shape,
                    lambda: ConvBNReLU(out, 3))

    def _unit(self, name: str, option: str) -> Unit | None:
        if option == "skip":
            return None
        cin, cout = self.layers[name]
        shape = self.feature_shapes()[name]
        return Unit(unit_key(f"vgg_{option}", shape, out=cout), shape,
                    lambda: build_option(option, cin, cout))

    def _head(self) -> Unit:
        return head_unit(self.feature_shapes()["head"], self.head_channels, self.n_classes)
