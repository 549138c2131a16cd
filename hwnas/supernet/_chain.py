"""MixedChain: the supernet of a chain space (stem, one MixedOp per choice in order, head)."""
from __future__ import annotations

import abc
from collections.abc import Mapping

import nnabla as nn
import numpy as np

from hwnas.arch import Arch
from hwnas.supernet._mixed import MixedOp
from hwnas.supernet._ops import Op
from hwnas.supernet._space import Supernet


class MixedChain(Supernet):
    """A fixed stem, one ``MixedOp`` per choice in the space's order, a fixed head.

    What a chain space writes is how its options are built; routing, weight
    groups, architecture parameters and derivation are the same for every chain
    and live here. Every choice with more than one option gets its own
    architecture parameters (zero logits: every option equally likely at
    first), so DARTS and ProxylessNAS train it as well as uniform path sampling.
    A subclass builds its modules, calls ``__init__`` and implements ``extract``
    (usually ``self._with_my_weights(MyChain(space, {name: (option,) ...}))``).

    Args:
        input_shape: (C, H, W) of the input images.
        stem: the module before the first choice.
        layers: choice name -> option -> its module, in the space's choice order (the
            options a subnet extracted for one Arch has one each).
        head: the module after the last choice (the classifier).
        shared: choice name -> (weights several of its options read, those options), for
            the choices whose options share weights (``hwnas.supernet._nested``).
    """

    def __init__(self, *, input_shape: tuple[int, int, int], stem: Op,
                 layers: Mapping[str, Mapping[str, Op]], head: Op,
                 shared: Mapping[str, tuple[Op, tuple[str, ...]]] | None = None) -> None:
        self.input_shape = tuple(input_shape)
        self.stem = stem
        self.choice_names = tuple(layers)
        for name, options in layers.items():
            alpha = (nn.Variable.from_numpy_array(np.zeros(len(options), np.float32),
                                                  need_grad=True)
                     if len(options) > 1 else None)
            weights, sharing = (shared or {}).get(name, (None, ()))
            setattr(self, name, MixedOp(dict(options), alpha, shared=weights, sharing=sharing))
        self.head = head
        # nnabla's parametric functions create their weights on the first call: run every
        # option once on a dummy input so that every shared weight exists now.
        training, self.training = self.training, False
        x = self.stem(nn.Variable((1,) + self.input_shape))
        for name in self.choice_names:
            layer = self.submodules[name]
            outputs = []
            for option in layer.options:
                layer.active = option
                outputs.append(layer(x))
            x = outputs[0]
        self.head(x)
        self.training = training

    def call(self, x: nn.Variable) -> nn.Variable:
        h = self.stem(x)
        for name in self.choice_names:
            h = self.submodules[name](h)
        return self.head(h)

    def set_active(self, arch: Arch) -> None:
        for name, option in arch.items():
            layer = self.submodules[name]
            if option not in layer.options:
                raise ValueError(f"option {option!r} of {name!r} is not in this network "
                                 f"(it holds {list(layer.options)})")
            layer.active = option

    def active_arch(self) -> Arch:
        """The path ``set_active`` routes through."""
        return Arch({name: self.submodules[name].active for name in self.choice_names})

    def parameter_groups(self) -> dict[str, dict[str, nn.Variable]]:
        groups = {name: self.submodules[name].get_parameters(grad_only=True)
                  for name in ("stem", "head")}
        for name in self.choice_names:
            layer = self.submodules[name]
            for option in layer.options:
                groups[f"{name}/{option}"] = layer.submodules[option].get_parameters(
                    grad_only=True)
            if layer.sharing:
                groups[f"{name}/shared"] = layer.shared.get_parameters(grad_only=True)
        return groups

    def active_groups(self) -> list[str]:
        groups = ["stem", "head"]
        for name in self.choice_names:
            used = self.submodules[name].used()
            groups += [f"{name}/{option}" for option in used]
            if self.submodules[name].sharing.intersection(used):
                groups.append(f"{name}/shared")
        return groups

    def mixed_ops(self) -> dict[str, list[MixedOp]]:
        return {name: [self.submodules[name]] for name in self.choice_names
                if self.submodules[name].alpha is not None}

    def derive(self) -> Arch:
        """The most likely option of every choice."""
        if not self.mixed_ops():
            raise ValueError("this network has no architecture parameters to derive from")
        layers = {name: self.submodules[name] for name in self.choice_names}
        return Arch({name: layer.options[0] if layer.alpha is None
                     else layer.options[int(np.argmax(layer.alpha.d))]
                     for name, layer in layers.items()})

    @abc.abstractmethod
    def extract(self, arch: Arch) -> MixedChain:
        """A standalone chain for ``arch`` with copies of the shared weights."""
