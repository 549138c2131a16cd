"""The chain space in the style of ProxylessNAS / MobileNetV2: stem, searchable blocks, head."""
from __future__ import annotations

import nnabla as nn

from hwnas.arch import Arch
from hwnas.supernet._ops import ConvBNReLU, Head, Op, build_option, parse_option
from hwnas.supernet._space import BaseSearchSpace, Supernet, Unit, register_space


class MixedOp(Op):
    """The candidates of one searchable block; one of them is active at a time."""

    def __init__(self, options: dict[str, Op]) -> None:
        self.options = tuple(options)
        for name, module in options.items():
            setattr(self, name, module)
        self.active = self.options[0]

    def call(self, x: nn.Variable) -> nn.Variable:
        return self.submodules[self.active](x)


class ChainSupernet(Supernet):
    """Stem, one MixedOp per searchable block, head.

    Args:
        space: the space whose choices this network covers.
        choices: the options to build per block (a subset of the space's, for extraction).
    """

    def __init__(self, space: ChainSpace, choices: dict[str, tuple[str, ...]]) -> None:
        self.space = space
        self.input_shape = space.input_shape
        self.stem = ConvBNReLU(space.stem_channels, 3)
        for name, (cin, cout, stride) in space.block_shapes.items():
            setattr(self, name, MixedOp({o: build_option(o, cin, cout, stride)
                                         for o in choices[name]}))
        self.head = Head(space.head_channels, space.n_classes)
        self._materialize(choices)

    def _materialize(self, choices: dict[str, tuple[str, ...]]) -> None:
        # Parametric functions create their weights on first call: build each
        # option once on a dummy input so that every shared weight exists now.
        training = self.training
        self.training = False
        x = self.stem(nn.Variable((1,) + tuple(self.input_shape)))
        for name in self.space.block_shapes:
            block = self.submodules[name]
            outputs = []
            for option in choices[name]:
                block.active = option
                outputs.append(block(x))
            x = outputs[0]
        self.head(x)
        self.training = training

    def set_active(self, arch: Arch) -> None:
        for name, option in arch.items():
            block = self.submodules[name]
            if option not in block.options:
                raise ValueError(f"option {option!r} of {name!r} is not in this network "
                                 f"(it holds {list(block.options)})")
            block.active = option

    def active_arch(self) -> Arch:
        return Arch({name: self.submodules[name].active for name in self.space.block_shapes})

    def call(self, x: nn.Variable) -> nn.Variable:
        h = self.stem(x)
        for name in self.space.block_shapes:
            h = self.submodules[name](h)
        return self.head(h)

    def parameter_groups(self) -> dict[str, dict[str, nn.Variable]]:
        groups = {name: self.submodules[name].get_parameters(grad_only=True)
                  for name in ("stem", "head")}
        for name in self.space.block_shapes:
            block = self.submodules[name]
            for option in block.options:
                groups[f"{name}/{option}"] = block.submodules[option].get_parameters(
                    grad_only=True)
        return groups

    def active_groups(self) -> list[str]:
        return ["stem", "head"] + [f"{name}/{self.submodules[name].active}"
                                   for name in self.space.block_shapes]

    def extract(self, arch: Arch) -> ChainSupernet:
        self.space.validate(arch)
        subnet = ChainSupernet(self.space, {name: (option,) for name, option in arch.items()})
        mine = self.net_parameters()
        subnet.set_parameters({
            key: nn.Variable.from_numpy_array(mine[key].d.copy(), need_grad=p.need_grad)
            for key, p in subnet.net_parameters().items()}, raise_if_missing=True)
        subnet.training = False
        return subnet


@register_space("mobilenet")
class ChainSpace(BaseSearchSpace):
    """ProxylessNAS-style chain: every block picks an inverted residual (kernel x expansion)
    or, where its input and output shapes match, ``skip``.

    Args:
        input_shape: (C, H, W) of the input images.
        n_classes: classifier outputs.
        stem_channels: channels of the fixed 3x3 stem.
        stages: (channels, blocks, stride) per stage; the stride applies to a stage's first block.
        kernels: depthwise kernel sizes offered to every block.
        expansions: expansion ratios offered to every block.
        skip: offer ``skip`` where shapes allow.
        head_channels: channels of the 1x1 conv before pooling.
    """

    def __init__(self, *, input_shape: tuple[int, int, int], n_classes: int,
                 stem_channels: int = 16,
                 stages: list[tuple[int, int, int]] | None = None,
                 kernels: list[int] | None = None, expansions: list[int] | None = None,
                 skip: bool = True, head_channels: int = 64) -> None:
        stages = stages if stages is not None else [(16, 2, 1), (24, 2, 2), (32, 2, 2)]
        kernels = kernels if kernels is not None else [3, 5, 7]
        expansions = expansions if expansions is not None else [3, 6]
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape}")
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        self.input_shape = tuple(int(v) for v in input_shape)
        self.n_classes = n_classes
        self.stem_channels = stem_channels
        self.head_channels = head_channels
        ir = tuple(f"ir_k{k}_e{e}" for k in kernels for e in expansions)
        self.block_shapes: dict[str, tuple[int, int, int]] = {}
        self.choices = {}
        cin = stem_channels
        for channels, blocks, stride in stages:
            for i in range(blocks):
                name = f"b{len(self.block_shapes)}"
                s = stride if i == 0 else 1
                self.block_shapes[name] = (cin, channels, s)
                self.choices[name] = ir + (("skip",) if skip and s == 1 and cin == channels else ())
                cin = channels

    def extremes(self) -> list[Arch]:
        """``skip`` (or the smallest block) everywhere, and the largest block everywhere."""
        def cost(option: str) -> tuple[int, int]:
            decoded = parse_option(option)
            return (0, 0) if decoded is None else decoded
        return [Arch({n: min(o, key=cost) for n, o in self.choices.items()}),
                Arch({n: max(o, key=cost) for n, o in self.choices.items()})]

    def supernet(self) -> ChainSupernet:
        return ChainSupernet(self, self.choices)

    def units(self, arch: Arch | None = None) -> list[Unit]:
        """Stem, the option of every block at the shape it sees, head; ``skip`` has no unit.

        Args:
            arch: a subnet; None for every distinct unit of the space.

        Returns:
            ``arch``'s units in forward order, or each distinct unit of the space once.
        """
        if arch is not None:
            self.validate(arch)
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

    def _feature_shapes(self) -> dict[str, tuple[int, int, int]]:
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
        return Unit(f"stem_k3|in={_dims(self.input_shape)}|out={out}|s=1", self.input_shape,
                    lambda: ConvBNReLU(out, 3))

    def _block_unit(self, name: str, option: str) -> Unit | None:
        if parse_option(option) is None:
            return None
        cin, cout, stride = self.block_shapes[name]
        shape = self._feature_shapes()[name]
        return Unit(f"{option}|in={_dims(shape)}|out={cout}|s={stride}", shape,
                    lambda: build_option(option, cin, cout, stride))

    def _head_unit(self) -> Unit:
        shape = self._feature_shapes()["head"]
        channels, n_classes = self.head_channels, self.n_classes
        return Unit(f"head|in={_dims(shape)}|out={channels}|classes={n_classes}", shape,
                    lambda: Head(channels, n_classes))


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)
