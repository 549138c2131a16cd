"""The chain space in the style of ProxylessNAS / MobileNetV2: stem, searchable blocks, head."""
from __future__ import annotations

from hwnas.arch import Arch
from hwnas.supernet._candidates import (build_candidate, complexity, computes_nothing,
                                         parse_candidate)
from hwnas.supernet._chain import MixedChain
from hwnas.supernet._nested import WEIGHT_SHARING, NestedInvertedResidual, NestedWeights
from hwnas.supernet._ops import ConvBNReLU, Head
from hwnas.supernet._space import BaseSearchSpace, Unit, head_unit, register_space, unit_key


class ChainSupernet(MixedChain):
    """Stem, one MixedOp per searchable block, head (see ``MixedChain``).

    Args:
        space: the space whose choices this network covers.
        choices: the options to build per block (a subset of the space's, for extraction).
        weight_sharing: ``nested``: where a block offers more than one inverted residual,
            they are slices of the weights of its largest (``hwnas.supernet._nested``).
    """

    def __init__(self, space: ChainSpace, choices: dict[str, tuple[str, ...]],
                 weight_sharing: str = "separate") -> None:
        self.space = space
        layers, shared = {}, {}
        for name, (cin, cout, stride) in space.block_shapes.items():
            ir = {o: c for o in choices[name] if (c := parse_candidate(o)).form == "ir"}
            if weight_sharing != "nested" or len(ir) < 2:
                ir = {}
            else:
                weights = NestedWeights(cin, cout, max(c.kernel for c in ir.values()),
                                        max(c.expansion for c in ir.values()))
                shared[name] = (weights, tuple(ir))
            layers[name] = {o: NestedInvertedResidual(weights, ir[o].kernel, ir[o].expansion,
                                                      stride) if o in ir
                            else build_candidate(o, cin, cout, stride) for o in choices[name]}
        super().__init__(input_shape=space.input_shape, stem=ConvBNReLU(space.stem_channels, 3),
                         layers=layers, head=Head(space.head_channels, space.n_classes),
                         shared=shared)

    def extract(self, arch: Arch) -> ChainSupernet:
        """A chain of ``arch``'s options alone with copies of my weights (of the slices an
        option reads, where its block shares weights)."""
        self.space.validate(arch)
        derived = {}
        for name, option in arch.items():
            layer = self.submodules[name]
            if option in layer.sharing:
                module = layer.submodules[option]
                derived.update({f"@{name}/@{option}/{key}": w for key, w in
                                layer.shared.arrays(module.kernel, module.expansion).items()})
        return self._with_my_weights(
            ChainSupernet(self.space, {name: (option,) for name, option in arch.items()}),
            derived)


@register_space("mobilenet")
class ChainSpace(BaseSearchSpace):
    """ProxylessNAS-style chain: every block picks an inverted residual (kernel x expansion),
    one of the extra ``operations``, or, where its input and output shapes match, ``skip``.

    Every encoding is a network of its own, and every one can be built: a block's
    options each have their own weights (``skip``, the one without any, is
    offered once per block; with ``weight_sharing: nested`` its inverted
    residuals share theirs, see ``hwnas.supernet._nested``), no option makes
    another block's choice irrelevant, and each option is built for its block's
    shapes. ``canonical`` and ``validate`` are the base class's. (Every subnet
    of small configurations computed a function of its own;
    ``tests/test_canonical.py`` checks that every one-choice move changes the
    network.)

    Args:
        input_shape: (C, H, W) of the input images.
        n_classes: classifier outputs.
        stem_channels: channels of the fixed 3x3 stem.
        stages: (channels, blocks, stride) per stage; the stride applies to a stage's first block.
        kernels: depthwise kernel sizes offered to every block.
        expansions: expansion ratios offered to every block.
        skip: offer ``skip`` where shapes allow.
        head_channels: channels of the 1x1 conv before pooling.
        operations: further candidates offered to every block (see
            ``hwnas.supernet._candidates``: ``sep_k3``, ``conv_k3_bias``, ``dil_k3``,
            ``grp_k3_g2``, ``max_k3``, ``affine``, ...); ``bn`` only where shapes match.
        weight_sharing: ``separate`` (every option its own weights) or ``nested`` (a
            block's inverted residuals slice the weights of its largest: every step trains
            them, whichever one the path takes; batch normalization stays per option).
            It changes the supernet only: extracted and retrained subnets are the same.
    """

    config_keys = ("stem_channels", "stages", "kernels", "expansions", "skip", "head_channels",
                   "operations")

    def __init__(self, *, input_shape: tuple[int, int, int], n_classes: int,
                 stem_channels: int = 16,
                 stages: list[tuple[int, int, int]] | None = None,
                 kernels: list[int] | None = None, expansions: list[int] | None = None,
                 skip: bool = True, head_channels: int = 64,
                 operations: list[str] | None = None,
                 weight_sharing: str = "separate") -> None:
        stages = stages if stages is not None else [(16, 2, 1), (24, 2, 2), (32, 2, 2)]
        kernels = kernels if kernels is not None else [3, 5, 7]
        expansions = expansions if expansions is not None else [3, 6]
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape}")
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        if weight_sharing not in WEIGHT_SHARING:
            raise ValueError(f"weight_sharing must be one of {', '.join(WEIGHT_SHARING)}, got "
                             f"{weight_sharing!r}")
        self.weight_sharing = weight_sharing
        self.input_shape = tuple(int(v) for v in input_shape)
        self.n_classes = n_classes
        self.stem_channels = stem_channels
        self.head_channels = head_channels
        ir = tuple(f"ir_k{k}_e{e}" for k in kernels for e in expansions)
        extra = tuple(operations or ())
        for option in extra:
            parse_candidate(option)  # an unknown name raises, listing the known forms
            if option in ("zero", "skip") or option in ir or extra.count(option) > 1:
                raise ValueError(f"operations: {option!r} is not an extra candidate of a chain "
                                 "block (zero would cut the chain; skip, inverted residuals "
                                 "and repeats are offered otherwise)")
        self.block_shapes: dict[str, tuple[int, int, int]] = {}
        self.choices = {}
        cin = stem_channels
        for channels, blocks, stride in stages:
            for i in range(blocks):
                name = f"b{len(self.block_shapes)}"
                s = stride if i == 0 else 1
                self.block_shapes[name] = (cin, channels, s)
                same = s == 1 and cin == channels
                self.choices[name] = (ir + tuple(o for o in extra if o != "bn" or same)
                                      + (("skip",) if skip and same else ()))
                cin = channels

    def extremes(self) -> list[Arch]:
        """The cheapest option (``skip`` where offered) everywhere, and the most expensive."""
        return [Arch({n: min(o, key=complexity) for n, o in self.choices.items()}),
                Arch({n: max(o, key=complexity) for n, o in self.choices.items()})]

    def supernet(self) -> ChainSupernet:
        return ChainSupernet(self, self.choices, self.weight_sharing)

    def initial_supernet(self) -> ChainSupernet:
        return ChainSupernet(self, self.choices)

    def arch_units(self) -> tuple[list[Unit], dict[str, dict[str, list[Unit]]], dict[str, float]]:
        """Stem, head and the blocks with one option (no architecture parameter) are fixed;
        every other block's option adds its own unit (``skip`` none)."""
        edges = {name: {o: [u for u in [self._block_unit(name, o)] if u is not None]
                        for o in options}
                 for name, options in self.choices.items() if len(options) > 1}
        single = [self._block_unit(name, options[0])
                  for name, options in self.choices.items() if len(options) == 1]
        fixed = [self._stem_unit(), *[u for u in single if u is not None], self._head_unit()]
        return fixed, edges, {name: 1.0 for name in edges}

    def units(self, arch: Arch | None = None) -> list[Unit]:
        """Stem, the option of every block at the shape it sees, head; ``skip`` has no unit.

        Args:
            arch: a subnet; None for every distinct unit of the space.

        Returns:
            ``arch``'s units in forward order, or each distinct unit of the space once.
        """
        if arch is not None:
            self.check_choices(arch)
            blocks = [self._block_unit(name, option) for name, option in arch.items()]
            return [self._stem_unit(), *[u for u in blocks if u is not None], self._head_unit()]
        distinct: dict[str, Unit] = {}
        for unit in [self._stem_unit(),
                     *[self._block_unit(name, option)
                       for name, options in self.choices.items() for option in options],
                     self._head_unit()]:
            if unit is not None:
                distinct.setdefault(unit.key, unit)
        return list(distinct.values())

    def feature_shapes(self) -> dict[str, tuple[int, int, int]]:
        """(C, H, W) entering every block, and the head (key ``head``)."""
        _, h, w = self.input_shape
        c = self.stem_channels
        shapes = {}
        for name, (cin, cout, stride) in self.block_shapes.items():
            shapes[name] = (c, h, w)
            # Odd kernels with padding k // 2: only the stride changes the size.
            c, h, w = cout, (h - 1) // stride + 1, (w - 1) // stride + 1
        shapes["head"] = (c, h, w)
        return shapes

    def _stem_unit(self) -> Unit:
        out = self.stem_channels
        return Unit(unit_key("stem_k3", self.input_shape, out=out, s=1), self.input_shape,
                    lambda: ConvBNReLU(out, 3))

    def _block_unit(self, name: str, option: str) -> Unit | None:
        cin, cout, stride = self.block_shapes[name]
        if computes_nothing(option, cin, cout, stride):
            return None
        shape = self.feature_shapes()[name]
        return Unit(unit_key(option, shape, out=cout, s=stride), shape,
                    lambda: build_candidate(option, cin, cout, stride))

    def _head_unit(self) -> Unit:
        return head_unit(self.feature_shapes()["head"], self.head_channels, self.n_classes)
