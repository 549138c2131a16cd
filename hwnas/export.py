"""Export of a chosen subnet as a standalone .nnp file, with a round-trip check.

The saved graph is the optimised inference graph hwnas measures (batch
normalization folded, fastest activations; see
:func:`hwnas.hwcost._optimize.optimize_inference_graph`), and the file holds
exactly the weights it reads: the folded ones, not the unfolded weights and BN
parameters they replace.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import nnabla as nn
import nnabla.functions as F
import numpy as np
from nnabla.utils.nnp_graph import NnpLoader
from nnabla.utils.save import save

from hwnas._io import atomic_write
from hwnas.data import Dataset
from hwnas.hwcost._optimize import optimize_inference_graph

NETWORK = "net"
INPUT, OUTPUT = "x", "y"


def inference_graph(subnet: nn.Module, data: Dataset, batch_size: int,
                    scope: OrderedDict | None = None) -> tuple[nn.Variable, nn.Variable]:
    """The deployable graph: normalisation, then ``subnet`` in inference mode, optimised.

    Its input is pixels scaled to [0, 1] (N, C, H, W); the per-channel train
    mean and std are baked into the graph, so users feed images as they are.
    Its output is the class logits.

    Args:
        subnet: the standalone subnet.
        data: the dataset whose normalisation the graph applies.
        batch_size: the input's batch size.
        scope: the parameter scope that receives ``preprocess/mean``,
            ``preprocess/std`` and the folded weights (a private one when None).
    """
    c = len(data.mean)
    scope = OrderedDict() if scope is None else scope
    with nn.parameter_scope("", scope):
        mean = nn.parameter.get_parameter_or_create(
            "preprocess/mean", (1, c, 1, 1), np.array(data.mean, np.float32).reshape(1, c, 1, 1),
            need_grad=False)
        std = nn.parameter.get_parameter_or_create(
            "preprocess/std", (1, c, 1, 1), np.array(data.std, np.float32).reshape(1, c, 1, 1),
            need_grad=False)
    x = nn.Variable((batch_size,) + tuple(data.input_shape))
    subnet.training = False
    y = subnet(F.div2(F.sub2(x, mean), std))
    _optimize(subnet, y, scope)
    return x, y


def _optimize(module: nn.Module, y: nn.Variable, scope: OrderedDict) -> None:
    """Optimises the graph ending at ``y`` in place; its new weights go into ``scope``."""
    folded = optimize_inference_graph(y, names=module.get_parameters(grad_only=False))
    with nn.parameter_scope("", scope):
        for key, param in folded.items():
            nn.parameter.set_parameter(key, param)


def export_nnp(subnet: nn.Module, data: Dataset, path: str | Path) -> None:
    """Writes ``subnet`` as an .nnp file that nnabla loads without hwnas.

    The file holds network ``net`` with input ``x`` and output ``y`` (see
    :func:`inference_graph`) and an executor ``runtime``; its batch size is
    variable.
    """
    save_nnp(subnet, path, lambda scope: inference_graph(subnet, data, 1, scope=scope))


def export_module_nnp(module: nn.Module, input_shape: tuple[int, ...], path: str | Path) -> None:
    """Writes any standalone module (a subnet, one block) as an .nnp without normalisation.

    Used to run a network on another device; network ``net``, input ``x`` of
    shape (batch, *input_shape), output ``y``.
    """
    def build(scope: OrderedDict) -> tuple[nn.Variable, nn.Variable]:
        x = nn.Variable((1,) + tuple(input_shape))
        module.training = False
        y = module(x)
        _optimize(module, y, scope)
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


def run_nnp(path: str | Path, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of an exported .nnp for images in [0, 1], using nnabla only."""
    n = len(pixels)
    batch = min(batch_size, n)
    with nn.parameter_scope("", OrderedDict()):
        net = NnpLoader(str(path)).get_network(NETWORK, batch_size=batch)
        x, y = net.inputs[INPUT], net.outputs[OUTPUT]
        out = []
        for start in range(0, n, batch):
            chunk = pixels[start:start + batch]
            x.d[:len(chunk)] = chunk
            y.forward(clear_buffer=True)
            out.append(y.d[:len(chunk)].copy())
    return np.concatenate(out)


def pixels(data: Dataset, x: np.ndarray) -> np.ndarray:
    """Undoes the dataset's normalisation: images back on the [0, 1] scale."""
    c = len(data.mean)
    return (x * np.array(data.std, np.float32).reshape(1, c, 1, 1)
            + np.array(data.mean, np.float32).reshape(1, c, 1, 1)).astype(np.float32)
