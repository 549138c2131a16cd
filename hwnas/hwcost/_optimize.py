"""Inference-graph optimisation: BN folded into the layer that feeds it, fastest activations.

A deployed network runs batch normalization with fixed statistics, so each
BN is an affine map per channel, ``y = (h - mean) * gamma / sqrt(var + eps)
+ beta``. When ``h`` comes from a convolution, depthwise convolution or affine
layer that nothing else reads, that map is folded into the layer's weights::

    s  = gamma / sqrt(var + eps)
    W' = W * s               (per output channel)
    b' = beta + (b - mean) * s

and the BN disappears from the graph. nnabla's own converter
(``nnabla.experimental.graph_converters.BatchNormalizationFoldingModifier``)
does this for convolution, deconvolution and affine, but not for depthwise
convolution; and it names the weights it adds after the layer's scope in
nnabla's global parameter scope, where a module's weights are not, so on a
subnet every layer gets the same name and the conversion fails ("The size of
existing parameter "b" (8,) is different from the size of new parameter").
Hence this pass; it keeps that converter's names for the folded weights.

Activations are computed by the fastest nnabla function giving the same
values: on nnabla 1.39's CPU backend ``F.relu`` takes 3 to 7 times as long as
``F.maximum_scalar(x, 0)``, and ``F.relu6`` about 3 times as long as
``F.minimum_scalar(F.maximum_scalar(x, 0), 6)``.
"""
from __future__ import annotations

from collections.abc import Mapping

import nnabla as nn
import nnabla.functions as F
import numpy as np
from nnabla.function import Function

__all__ = ["FOLDED_BIAS", "FOLDED_WEIGHT", "optimize_inference_graph"]

#: Functions a following BN folds into -> the functional form that rebuilds them.
_LAYERS = {
    "Convolution": F.convolution,
    "DepthwiseConvolution": F.depthwise_convolution,
    "Affine": F.affine,
}
FOLDED_WEIGHT, FOLDED_BIAS = "w-folded", "b-folded"


def _channel_axis(layer: Function) -> int:
    """The axis of ``layer``'s output that its weight's output channels index."""
    args = layer.info.args
    if layer.info.type_name == "Convolution" and args.get("channel_last", False):
        return layer.outputs[0].ndim - 1
    return args["base_axis"]


def _foldable(bn: Function) -> Function | None:
    """The layer ``bn`` folds into, or None where folding would change the graph's values."""
    if bn.info.type_name != "BatchNormalization" or bn.info.args["batch_stat"]:
        return None
    h = bn.inputs[0]
    layer = h.parent
    if layer is None or layer.info.type_name not in _LAYERS:
        return None
    # Another reader of the layer's output needs it unnormalised.
    if len(h.function_references) != 1:
        return None
    axis = _channel_axis(layer)
    if list(bn.info.args["axes"]) != [axis]:
        return None
    # An affine layer with a multi-dimensional output keeps it; the chain space has none.
    if layer.info.type_name == "Affine" and h.ndim != axis + 1:
        return None
    return layer


def bn_statistics(bn: Function) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(beta, gamma, mean, var) of an inference-mode BN as float64 vectors."""
    args = bn.info.args
    inputs = list(bn.inputs[1:])
    beta = inputs.pop(0).d if not args.get("no_bias", False) else 0.0
    gamma = inputs.pop(0).d if not args.get("no_scale", False) else 1.0
    mean, var = inputs[0].d, inputs[1].d
    channels = mean.size
    return tuple(np.broadcast_to(np.asarray(v, np.float64).reshape(-1), (channels,))
                 for v in (beta, gamma, mean, var))


def _folded_weights(layer: Function, bn: Function) -> tuple[np.ndarray, np.ndarray]:
    beta, gamma, mean, var = bn_statistics(bn)
    scale = gamma / np.sqrt(var + bn.info.args["eps"])
    w = np.asarray(layer.inputs[1].d, np.float64)
    b = np.asarray(layer.inputs[2].d, np.float64).reshape(-1) if len(layer.inputs) == 3 else 0.0
    # Output channels are W's first axis for (depthwise) convolution, its last for affine.
    out_axis = w.ndim - 1 if layer.info.type_name == "Affine" else 0
    shape = [1] * w.ndim
    shape[out_axis] = -1
    return ((w * scale.reshape(shape)).astype(np.float32),
            (beta + (b - mean) * scale).astype(np.float32))


def _fastest_activation(function: Function) -> nn.Variable | None:
    """The same activation of the same input by faster functions, or None."""
    name = function.info.type_name
    if name == "ReLU":
        return F.maximum_scalar(function.inputs[0], 0.0)
    if name == "ReLU6":
        return F.minimum_scalar(F.maximum_scalar(function.inputs[0], 0.0), 6.0)
    return None


def optimize_inference_graph(
        output: nn.Variable,
        names: Mapping[str, nn.Variable] | None = None) -> dict[str, nn.Variable]:
    """Rewrites the inference graph ending at ``output`` in place into a faster equivalent.

    Every batch normalization with fixed statistics that follows a
    convolution, depthwise convolution or (single-output-axis) affine layer
    whose output nothing else reads is folded into that layer's weights, and
    ReLU / ReLU6 become their fastest nnabla equivalents. A BN computing
    batch statistics (training mode) stays, as does one after anything else.

    The graph is rewired: ``output`` and every variable outside the replaced
    functions keep their identity, so the inputs built before are still the
    inputs, and the graph computes the same values within float32 rounding.

    Args:
        output: the graph's output.
        names: parameter name -> variable of the weights the graph reads, used
            to name the folded weights beside the layer's own (``.../W`` ->
            ``.../w-folded`` and ``.../b-folded``).

    Returns:
        The new weights by name; the folded layers read them instead of their
        own weights and the BN parameters. Layers whose weight has no name
        in ``names`` get ``folded/<i>/...``.
    """
    functions: list[Function] = []
    output.visit(functions.append)
    # Variables that share an array are one parameter (nnabla's .nnp writer matches arrays too).
    known = {v.data: name for name, v in (names or {}).items()}
    created: dict[str, nn.Variable] = {}
    for function in functions:
        faster = _fastest_activation(function)
        if faster is not None:
            function.outputs[0].rewire_on(faster)
            continue
        layer = _foldable(function)
        if layer is None:
            continue
        bn = function
        w_data, b_data = _folded_weights(layer, bn)
        weight = layer.inputs[1]
        w = nn.Variable.from_numpy_array(w_data, need_grad=weight.need_grad)
        b = nn.Variable.from_numpy_array(b_data, need_grad=weight.need_grad)
        name = known.get(weight.data)
        scope = name.rpartition("/")[0] if name is not None else f"folded/{len(created) // 2}"
        if f"{scope}/{FOLDED_WEIGHT}" in created:  # one weight shared by layers of two BNs
            scope = f"{scope}/{len(created) // 2}"
        created[f"{scope}/{FOLDED_WEIGHT}"] = w
        created[f"{scope}/{FOLDED_BIAS}"] = b
        folded = _LAYERS[layer.info.type_name](layer.inputs[0], w, b, **layer.info.args)
        bn.outputs[0].rewire_on(folded)
    return created
