"""nnabla graphs to ONNX through nnabla's own converter (nnabla-converter), and back out."""
from __future__ import annotations

import contextlib
import importlib
import io
from pathlib import Path

import nnabla as nn
import nnabla.functions as F
import numpy as np

from hwnas.errors import HwnasError
from hwnas.hwcost import bn_statistics

#: The ONNX opset of model.onnx: the newest nnabla-converter 1.39 writes.
OPSET = 13


def onnx_compatible(y: nn.Variable, names: dict[str, nn.Variable]) -> dict[str, nn.Variable]:
    """Rewrites the graph ending at ``y`` in place into functions nnabla's ONNX exporter handles.

    * ``AddN`` (DARTS nodes) has no ONNX exporter: a chain of ``Add2``.
    * A BN left after folding (after pooling, or alone) becomes a per-channel
      scale and shift, ``Mul2`` and ``Add2``: the exporter takes only BNs with
      beta and gamma, and DARTS's have neither.
    * ``MaximumScalar(x, 0)`` goes back to ``ReLU``: the exporter turns it into
      ``Max`` against a zero tensor of the activation's full shape, batch
      size included, which fixes the batch and bloats the file.
    * Average pooling that excludes the padding (DARTS's ``avg_k3``) becomes
      pooling that includes it times a constant per output position: the
      exporter pads the edge values instead, which computes something else.

    Args:
        y: the graph's output (its input keeps its identity).
        names: parameter name -> variable of the weights the graph reads.

    Returns:
        The new weights by name: ``<BN scope>/onnx-scale`` and ``onnx-shift``,
        ``onnx/<i>/pool-scale``.
    """
    functions: list = []
    y.visit(functions.append)
    known = {v.data: name for name, v in names.items()}
    created: dict[str, nn.Variable] = {}
    for function in functions:
        kind, args, inputs = function.info.type_name, function.info.args, function.inputs
        if kind == "AddN":
            h = inputs[0]
            for v in inputs[1:]:
                h = F.add2(h, v)
        elif kind == "MaximumScalar" and args["val"] == 0.0:
            h = F.relu(inputs[0])
        elif (kind == "AveragePooling" and not args["including_pad"] and any(args["pad"])
              and not args["channel_last"]):
            inclusive = {**args, "including_pad": True}
            ones = nn.Variable.from_numpy_array(np.ones((1, 1) + inputs[0].shape[2:], np.float32))
            share = F.average_pooling(ones, **inclusive)  # of each window inside the image
            share.forward()
            s = created[f"onnx/{len(created)}/pool-scale"] = nn.Variable.from_numpy_array(
                1.0 / share.d)
            h = F.mul2(F.average_pooling(inputs[0], **inclusive), s)
        elif kind == "BatchNormalization" and not args["batch_stat"] and len(args["axes"]) == 1:
            beta, gamma, mean, var = bn_statistics(function)
            scale = gamma / np.sqrt(var + args["eps"])
            shape = [1] * inputs[0].ndim
            shape[args["axes"][0]] = -1
            name = known.get(inputs[-2].data)  # the running mean
            scope = name.rpartition("/")[0] if name is not None else f"onnx/{len(created)}"
            s = created[f"{scope}/onnx-scale"] = nn.Variable.from_numpy_array(
                scale.reshape(shape).astype(np.float32))
            t = created[f"{scope}/onnx-shift"] = nn.Variable.from_numpy_array(
                (beta - mean * scale).reshape(shape).astype(np.float32))
            h = F.add2(F.mul2(inputs[0], s), t)
        else:
            continue
        function.outputs[0].rewire_on(h)
    return created


def nnp_to_onnx(path: str | Path, *, opset: int = OPSET):
    """The ONNX model (``onnx.ModelProto``) of an .nnp's network, its batch size variable.

    nnabla-converter writes a fixed batch size. Converting at batch sizes 1
    and 2 shows where it went: the graph's input and output, and the shapes
    of Reshapes, which then copy the batch size from their input instead.

    Raises:
        HwnasError: the converter is missing, rejects the graph, or writes
            the batch size anywhere else.
    """
    one, two = (_convert(path, batch, opset) for batch in (1, 2))
    from onnx import checker, numpy_helper
    batch = [value.type.tensor_type.shape.dim[0].dim_value
             for model in (one, two) for value in model.graph.input]
    if batch != [1, 2]:
        raise HwnasError("ONNX export: the .nnp has a fixed batch size")
    if (list(one.graph.node) != list(two.graph.node)
            or len(one.graph.initializer) != len(two.graph.initializer)):
        raise HwnasError("ONNX export: the converted graph fixes the batch size in a node")
    reshaped = {node.input[1] for node in one.graph.node if node.op_type == "Reshape"}
    for a, b in zip(one.graph.initializer, two.graph.initializer):
        if a == b:
            continue
        shape, other = numpy_helper.to_array(a).copy(), numpy_helper.to_array(b)
        if (a.name not in reshaped or shape.shape != other.shape or shape.ndim != 1
                or (shape[0], other[0]) != (1, 2) or (shape[1:] != other[1:]).any()):
            raise HwnasError(f"ONNX export: the converted graph fixes the batch size in {a.name}")
        shape[0] = 0  # Reshape: 0 copies the input's dimension
        a.CopyFrom(numpy_helper.from_array(shape, a.name))
    for value in (*one.graph.input, *one.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    checker.check_model(one)
    return one


def _convert(path: str | Path, batch_size: int, opset: int):
    try:
        importlib.import_module("onnx")  # first: without it the exporter only prints a warning
        from nnabla.utils.converter.nnabla import NnpImporter
        from nnabla.utils.converter.onnx import exporter
    except ImportError as exc:
        raise HwnasError(f"ONNX export needs nnabla-converter and onnx ({exc}); "
                         "run 'make install', or pip install --no-deps nnabla-converter==1.39.0 "
                         "and pip install 'onnx~=1.13.0'") from None
    # Its node-name counter: the same names in every conversion, so that
    # conversions compare and the file is the same for the same subnet.
    exporter.random_seed = 0
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        nnp = NnpImporter(str(path), expand_network=True, executor_index=None).execute()
        try:
            return exporter.OnnxExporter(nnp, batch_size, -1,
                                         opset=str(opset)).export_model_proto()
        except ValueError as exc:
            raise HwnasError(f"ONNX export: nnabla-converter cannot convert the graph "
                             f"({exc})") from None


def run_onnx(path: str | Path, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of an exported ONNX model for images in [0, 1], using onnxruntime only."""
    import onnxruntime
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (x,), (y,) = session.get_inputs(), session.get_outputs()
    return np.concatenate([session.run([y.name], {x.name: pixels[start:start + batch_size]})[0]
                           for start in range(0, len(pixels), batch_size)])

