"""Static costs of an nnabla graph: parameters, multiply-accumulates and memory.

Conventions, shared by every counter here:

* A graph is the forward graph ending at ``output``, visited with
  ``output.visit``; what is not reachable from ``output`` is not counted, and
  a variable reached twice (shared weights, branches) is counted once.
* **Parameters** are the trainable leaf variables the graph reads: every leaf
  that is neither a data input nor a batch-normalization running statistic.
  Convolution and affine ``W`` and ``b``, batch-normalization ``beta`` and
  ``gamma`` count; the running ``mean`` and ``var`` do not (they are buffers,
  not learned, and vanish when batch normalization is folded into the
  preceding layer). Data inputs are the ``inputs`` given; without them, every
  leaf with ``need_grad=False`` is taken as data, because ``nn.Variable``
  defaults to it while parametric functions create parameters with
  ``need_grad=True`` (pass ``inputs`` when some parameters are frozen).
* **MACs** are multiply-accumulates **per example**: the graph may be built at
  any batch size, the total is divided by it (``output.shape[0]`` unless
  ``batch_size`` is given). Counted functions:

  - ``Convolution``: ``out_elems * (Cin / group) * prod(kernel)``, i.e. every
    output element reads one filter; groups, stride, padding and dilation
    enter through the output shape and the filter shape.
  - ``DepthwiseConvolution``: ``out_elems * prod(kernel)``.
  - ``Deconvolution``: ``in_elems * (Cout / group) * prod(kernel)``.
  - ``Affine``: ``in_features * out_features`` per row.
  - ``BatchMatmul``: ``M * K * N`` per matrix pair.

  Bias additions, batch normalization (folded into the preceding layer at
  inference), pooling, activations and element-wise arithmetic count 0.
* **Memory** is float32, 4 bytes an element. ``param_bytes`` is every
  non-input leaf the forward pass reads, running statistics included (they
  must be in memory to run it). ``peak_activation_bytes`` simulates the
  forward pass in topological order, one buffer per variable (no in-place
  reuse): a variable is alive from when its producing function runs (data
  inputs: from the start) until its last consumer has run; ``output`` stays
  alive to the end; parameters are not activations, but what functions
  compute from them (a softmax of architecture weights) is. It is per example, like
  MACs: the peak at the built batch size divided by it (rounded up).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import nnabla as nn
from nnabla.function import Function

__all__ = [
    "BYTES_PER_ELEMENT",
    "count_graph_params",
    "count_macs",
    "count_params",
    "param_bytes",
    "peak_activation_bytes",
]

BYTES_PER_ELEMENT = 4
#: NumpyBatchNormalization is hwnas's training-mode kernel (hwnas/supernet/_batchnorm.py).
_BATCH_NORMS = ("BatchNormalization", "SyncBatchNormalization", "NumpyBatchNormalization")


def _functions(output: nn.Variable) -> list[Function]:
    """Functions of the graph ending at ``output``, in forward (topological) order."""
    functions: list[Function] = []
    output.visit(functions.append)
    return functions


def _size(variable: nn.Variable) -> int:
    return math.prod(variable.shape)


def _as_list(inputs: nn.Variable | Iterable[nn.Variable] | None) -> list[nn.Variable]:
    if inputs is None:
        return []
    if isinstance(inputs, nn.Variable):
        return [inputs]
    return list(inputs)


def _running_stats(function: Function) -> list[nn.Variable]:
    """The running mean and variance a batch normalization reads, if any."""
    name = function.info.type_name
    if name in _BATCH_NORMS:
        # Inputs are (x, [beta], [gamma], mean, var): the optional ones precede.
        return list(function.inputs[-2:])
    if name == "FusedBatchNormalization":
        return list(function.inputs[3:5])
    return []


def _leaves(functions: Sequence[Function]) -> tuple[set[nn.Variable], set[nn.Variable]]:
    """Leaf variables the functions read, and those that are running statistics."""
    leaves: set[nn.Variable] = set()
    stats: set[nn.Variable] = set()
    for function in functions:
        leaves.update(v for v in function.inputs if v.parent is None)
        stats.update(_running_stats(function))
    return leaves, stats & leaves


def _read_sizes(functions: Sequence[Function]) -> dict[nn.Variable, int]:
    """Elements each leaf contributes: all of it, or, where only slices of it are read (nested
    weight sharing), its largest slice (nested slices: the largest holds the others)."""
    sliced: dict[nn.Variable, int] = {}
    whole: set[nn.Variable] = set()
    for function in functions:
        for v in function.inputs:
            if v.parent is not None:
                continue
            if function.info.type_name == "Slice":
                sliced[v] = max(sliced.get(v, 0), _size(function.outputs[0]))
            else:
                whole.add(v)
    return {**sliced, **{v: _size(v) for v in whole}}


def _data_inputs(leaves: set[nn.Variable], stats: set[nn.Variable],
                 inputs: nn.Variable | Iterable[nn.Variable] | None) -> set[nn.Variable]:
    if inputs is not None:
        return set(_as_list(inputs))
    return {v for v in leaves - stats if not v.need_grad}


def _batch_of(variable: nn.Variable, batch_size: int | None) -> int:
    if batch_size is None:
        batch_size = variable.shape[0] if variable.ndim > 0 else 1
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return batch_size


def count_params(params: Mapping[str, nn.Variable]) -> int:
    """Counts the elements of a parameter dictionary.

    Args:
        params: name -> variable, as ``nn.get_parameters()`` or a module's
            ``get_parameters()`` returns. Everything given is counted: pass
            ``grad_only=True`` dictionaries to leave running statistics out.

    Returns:
        The total number of elements.
    """
    return sum(_size(v) for v in params.values())


def count_graph_params(output: nn.Variable,
                       inputs: nn.Variable | Iterable[nn.Variable] | None = None) -> int:
    """Counts the trainable parameters the graph ending at ``output`` reads.

    Args:
        output: the graph's output.
        inputs: the graph's data inputs; see the module docstring for how they
            are found when omitted.

    Returns:
        Elements of the leaves that are neither data inputs nor running
        statistics, each shared variable once; a leaf read only through slices
        counts its largest slice.
    """
    functions = _functions(output)
    leaves, stats = _leaves(functions)
    data = _data_inputs(leaves, stats, inputs)
    sizes = _read_sizes(functions)
    return sum(sizes[v] for v in leaves - stats - data)


def param_bytes(output: nn.Variable,
                inputs: nn.Variable | Iterable[nn.Variable] | None = None) -> int:
    """Bytes of every non-input leaf the forward pass reads, running statistics included.

    Args:
        output: the graph's output.
        inputs: the graph's data inputs; see the module docstring.

    Returns:
        float32 bytes of the parameters and running statistics.
    """
    leaves, stats = _leaves(_functions(output))
    data = _data_inputs(leaves, stats, inputs)
    return BYTES_PER_ELEMENT * sum(_size(v) for v in leaves - data)


def _function_macs(function: Function) -> int:
    """Multiply-accumulates of one function at the batch size it was built with."""
    name = function.info.type_name
    inputs, outputs = function.inputs, function.outputs
    if name in ("Convolution", "DepthwiseConvolution"):
        # W is (Cout, Cin/group, *kernel) or (C*multiplier, *kernel) (channel-last
        # permutes the axes after the first): every output element reads one filter.
        return _size(outputs[0]) * math.prod(inputs[1].shape[1:])
    if name == "Deconvolution":
        # W is (Cin, Cout/group, *kernel): every input element scatters one filter.
        return _size(inputs[0]) * math.prod(inputs[1].shape[1:])
    if name == "Affine":
        base_axis = function.info.args["base_axis"]
        rows = math.prod(inputs[0].shape[:base_axis])
        return rows * math.prod(inputs[0].shape[base_axis:]) * math.prod(inputs[1].shape[1:])
    if name == "BatchMatmul":
        a = inputs[0].shape
        inner = a[-2] if function.info.args.get("transpose_a", False) else a[-1]
        # Every output element of every matrix pair is one inner product of length K.
        return _size(outputs[0]) * inner
    return 0


def count_macs(output: nn.Variable, batch_size: int | None = None) -> int:
    """Counts multiply-accumulates of one forward pass, per example.

    Args:
        output: the graph's output, built at any batch size.
        batch_size: the batch size the graph was built with; defaults to
            ``output.shape[0]`` (1 for a scalar output).

    Returns:
        MACs of one example; see the module docstring for what counts.
    """
    batch = _batch_of(output, batch_size)
    total = sum(_function_macs(f) for f in _functions(output))
    return total // batch


def peak_activation_bytes(output: nn.Variable,
                          inputs: nn.Variable | Iterable[nn.Variable],
                          batch_size: int | None = None) -> int:
    """Peak bytes of live activations during one forward pass, per example.

    Args:
        output: the graph's output, built at any batch size.
        inputs: the graph's data inputs; they count as activations, every
            other leaf is a parameter and does not.
        batch_size: the batch size the graph was built with; defaults to the
            first input's leading dimension.

    Returns:
        The largest sum of float32 bytes of variables alive at once, divided
        by the batch size and rounded up.

    Raises:
        ValueError: if ``inputs`` is empty.
    """
    data = _as_list(inputs)
    if not data:
        raise ValueError("peak_activation_bytes needs at least one input variable")
    batch = _batch_of(data[0], batch_size)
    functions = _functions(output)

    last_use: dict[nn.Variable, int] = {}
    for step, function in enumerate(functions):
        for variable in function.inputs:
            last_use[variable] = step
        for variable in function.outputs:
            last_use.setdefault(variable, step)
    last_use[output] = len(functions)

    data_set = set(data) & set(last_use)
    live = sum(_size(v) for v in data_set)
    peak = live
    for step, function in enumerate(functions):
        live += sum(_size(v) for v in function.outputs)
        peak = max(peak, live)
        for variable in set(function.inputs) | set(function.outputs):
            is_activation = variable.parent is not None or variable in data_set
            if is_activation and last_use[variable] == step:
                live -= _size(variable)
    return -(-BYTES_PER_ELEMENT * peak // batch)
