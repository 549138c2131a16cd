"""Standalone .nnp files of any nnabla module: the optimised inference graph and the weights it reads.

A latency command runs them on another device; :mod:`hwnas.deploy` builds its exports on them.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import nnabla as nn
from nnabla.utils.save import save

from hwnas.hwcost._optimize import optimize_inference_graph
from hwnas.io import atomic_write

NETWORK = "net"
INPUT, OUTPUT = "x", "y"

def optimize_into(module: nn.Module, y: nn.Variable, scope: OrderedDict) -> None:
    """Optimises the graph ending at ``y`` in place; its new weights go into ``scope``."""
    folded = optimize_inference_graph(y, names=module.get_parameters(grad_only=False))
    with nn.parameter_scope("", scope):
        for key, param in folded.items():
            nn.parameter.set_parameter(key, param)


def export_module_nnp(module: nn.Module, input_shape: tuple[int, ...], path: str | Path) -> None:
    """Writes any standalone module (a subnet, one block) as an .nnp without normalisation.

    Used to run a network on another device; network ``net``, input ``x`` of
    shape (batch, *input_shape), output ``y``.
    """
    def build(scope: OrderedDict) -> tuple[nn.Variable, nn.Variable]:
        x = nn.Variable((1,) + tuple(input_shape))
        module.training = False
        y = module(x)
        optimize_into(module, y, scope)
        return x, y

    save_nnp(module, path, build)


def save_nnp(module: nn.Module, path: str | Path,
             build: Callable[[OrderedDict], tuple[nn.Variable, nn.Variable]]) -> None:
    """Saves the graph ``build(scope)`` returns as (input, output) with the weights it reads.

    ``build`` finds ``module``'s weights in ``scope`` and adds there any it
    creates; the file keeps those the graph reads, under their scope names.

    Raises:
        ValueError: if the graph reads a weight that is in neither.
    """
    scope: OrderedDict = OrderedDict()
    with nn.parameter_scope("", scope):
        for key, param in module.get_parameters(grad_only=False).items():
            nn.parameter.set_parameter(key, param)
        x, y = build(scope)
        # A module whose weights its first call creates keeps them in its own scope.
        named = {**module.get_parameters(grad_only=False), **nn.get_parameters(grad_only=False)}
    saved = _read_weights(y, x, named)
    with nn.parameter_scope("", saved):
        contents = {
            "networks": [{"name": NETWORK, "batch_size": 1, "outputs": {OUTPUT: y},
                          "names": {INPUT: x}}],
            "executors": [{"name": "runtime", "network": NETWORK, "data": [INPUT],
                           "output": [OUTPUT]}],
        }
        atomic_write(path, lambda tmp: save(tmp, contents))


def _read_weights(y: nn.Variable, x: nn.Variable,
                  named: dict[str, nn.Variable]) -> OrderedDict:
    """A parameter scope holding the weights the graph ending at ``y`` reads, by name."""
    names = {v.data: key for key, v in named.items()}
    leaves: dict[str, nn.Variable] = {}

    def collect(function) -> None:
        for v in function.inputs:
            if v.parent is None and v.data != x.data:
                key = names.get(v.data)
                if key is None:
                    raise ValueError(f"the graph reads an unnamed weight of shape {v.shape} "
                                     f"(input of {function.info.type_name}); .nnp would lose it")
                leaves[key] = v

    y.visit(collect)
    scope: OrderedDict = OrderedDict()
    with nn.parameter_scope("", scope):
        for key in named:  # in the module's order
            if key in leaves:
                nn.parameter.set_parameter(key, leaves[key])
    return scope
