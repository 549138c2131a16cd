"""Export of a chosen subnet as a standalone .nnp or ONNX file, with a round-trip check.

The saved graph is the optimised inference graph hwnas measures (batch
normalization folded, fastest activations; see
:func:`hwnas.hwcost.optimize_inference_graph`), and the file holds
exactly the weights it reads: the folded ones, not the unfolded weights and BN
parameters they replace. The ONNX file is converted from that graph by
nnabla's own converter (nnabla-converter), after the few rewrites listed in
:func:`hwnas.deploy._onnx.onnx_compatible`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nnabla as nn
import nnabla.functions as F
import numpy as np
from nnabla.utils.nnp_graph import NnpLoader

from hwnas.io import atomic_write, atomic_write_json, read_json_record, temporary_prefix
from hwnas.deploy._onnx import OPSET, nnp_to_onnx, onnx_compatible, run_onnx
from hwnas.arch import Arch
from hwnas.data import Dataset
from hwnas.errors import HwnasError, RunDirError
from hwnas.hwcost import INPUT, NETWORK, OUTPUT, optimize_into, save_nnp

#: What the last export wrote, beside the model files; written last, with each file's SHA-256.
RECORD = "export.json"
#: export.json's shape, this hwnas's and older ones' (a flat record of model.nnp, no digests).
_FORMAT_ENTRY = {"model": str, "runtime?": str, "opset?": int, "test_accuracy?": (float, None),
                 "max_abs_diff?": (float, None), "sha256?": str}
RECORD_SHAPE = {"key": str, "arch?": {str: str}, "weights?": str, "weights_digest?": str,
                "input_shape?": [int], "test_examples?": int, "formats?": {str: _FORMAT_ENTRY},
                "model?": str, "test_accuracy?": (float, None), "max_abs_diff?": (float, None)}
#: The largest difference in any logit between an exported file and the in-process subnet.
TOLERANCE = 1e-4


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
    optimize_into(subnet, y, scope)
    return x, y


def export_nnp(subnet: nn.Module, data: Dataset, path: str | Path) -> None:
    """Writes ``subnet`` as an .nnp file that nnabla loads without hwnas.

    The file holds network ``net`` with input ``x`` and output ``y`` (see
    :func:`inference_graph`) and an executor ``runtime``; its batch size is
    variable.
    """
    save_nnp(subnet, path, lambda scope: inference_graph(subnet, data, 1, scope=scope))


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


# ---------------------------------------------------------------- ONNX


def export_onnx(subnet: nn.Module, data: Dataset, path: str | Path, *, opset: int = OPSET) -> None:
    """Writes ``subnet`` as an ONNX model that onnxruntime runs without hwnas or nnabla.

    The graph is :func:`inference_graph`'s after :func:`~hwnas.deploy._onnx.onnx_compatible`,
    saved as an .nnp and converted by nnabla-converter; input ``x``
    (N, C, H, W pixels in [0, 1], N variable), output ``y`` (logits).
    """
    def build(scope: OrderedDict) -> tuple[nn.Variable, nn.Variable]:
        x, y = inference_graph(subnet, data, 1, scope=scope)
        with nn.parameter_scope("", scope):
            created = onnx_compatible(y, nn.get_parameters(grad_only=False))
            for key, param in created.items():
                nn.parameter.set_parameter(key, param)
        return x, y

    with tempfile.TemporaryDirectory(prefix="hwnas-onnx-") as tmp:
        variant = Path(tmp) / "onnx-graph.nnp"
        save_nnp(subnet, variant, build)
        model = nnp_to_onnx(variant, opset=opset)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(model.SerializeToString()))


# ---------------------------------------------------------------- formats and the check


@dataclasses.dataclass(frozen=True)
class Format:
    """A deployment format: how to write a subnet in it and how to run the file without hwnas."""

    name: str
    filename: str
    write: Callable[[nn.Module, Dataset, Path], None]
    run: Callable[[Path, np.ndarray], np.ndarray]
    runtime: Callable[[], str]
    extra: dict = dataclasses.field(default_factory=dict)


def _onnxruntime_version() -> str:
    import onnxruntime
    return f"onnxruntime {onnxruntime.__version__}"


#: The formats by name, in the order export writes them.
FORMATS = {
    "nnp": Format("nnp", "model.nnp", export_nnp, run_nnp, lambda: f"nnabla {nn.__version__}"),
    "onnx": Format("onnx", "model.onnx", export_onnx, run_onnx, _onnxruntime_version,
                   {"opset": OPSET}),
}


def export_checked(subnet: nn.Module, data: Dataset, directory: str | Path,
                   formats: Sequence[str]) -> dict[str, dict]:
    """Writes ``subnet`` into ``directory`` in each format and checks every file on the test split.

    Each file runs in its own runtime on the test images as pixels; its
    logits must equal the in-process subnet's (normalised input, inference
    mode) within :data:`TOLERANCE`. The files replace the old ones only
    once every check has passed. The staging directory names this process, so that
    a later export removes it when a kill left it (:func:`hwnas.io.remove_stale_temporaries`).

    Returns:
        Per format: the file name, runtime, test accuracy, max |difference| and the
        file's SHA-256 (:func:`write_record` records it, :func:`check_models` compares).

    Raises:
        HwnasError: a file's logits differ more; no file was replaced.
    """
    directory = Path(directory)
    test = data.test
    subnet.training = False
    reference = subnet(nn.Variable.from_numpy_array(test.x))
    reference.forward(clear_buffer=True)
    want, images = reference.d.copy(), pixels(data, test.x)
    entries: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix=temporary_prefix("export"), dir=directory) as staging:
        for name in formats:
            fmt = FORMATS[name]
            path = Path(staging) / fmt.filename
            fmt.write(subnet, data, path)
            got = fmt.run(path, images)
            if got.shape != want.shape:
                raise HwnasError(f"{name} export: {fmt.filename} gives logits of shape "
                                 f"{got.shape}, the in-process subnet {want.shape}")
            diff = float(np.max(np.abs(got - want)))
            if not diff <= TOLERANCE:  # NaN too
                raise HwnasError(f"{name} export: {fmt.filename} run in {fmt.runtime()} differs "
                                 f"from the in-process subnet by up to {diff:.3g} on the test "
                                 f"split (allowed: {TOLERANCE:g}); the previous files are kept")
            accuracy = float(np.mean(np.argmax(got, axis=1) == test.y[:, 0]))
            entries[name] = {"model": fmt.filename, "runtime": fmt.runtime(), **fmt.extra,
                             "test_accuracy": accuracy, "max_abs_diff": diff,
                             "sha256": file_digest(path)}
        for name in formats:
            os.replace(Path(staging) / FORMATS[name].filename, directory / FORMATS[name].filename)
    return entries


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_record(directory: str | Path) -> dict[str, Any] | None:
    """export.json, shape-checked, with an older hwnas's flat record of model.nnp read as
    ``formats``; None before any export.

    Raises:
        RunDirError: it is unreadable or of another shape.
    """
    directory = Path(directory)
    record = read_json_record(directory / RECORD, RECORD_SHAPE,
                              remedy=f"rerun 'hwnas export {directory}'")
    if record is not None and "formats" not in record:  # the first exporter's flat record
        record["formats"] = {"nnp": {"model": record.get("model", FORMATS["nnp"].filename),
                                     "runtime": "nnabla",
                                     "test_accuracy": record.get("test_accuracy"),
                                     "max_abs_diff": record.get("max_abs_diff")}}
    return record


def mismatched_models(directory: str | Path, record: dict[str, Any]) -> list[str]:
    """The model files of ``record`` (from :func:`read_record`) that are missing or whose bytes
    are not the ones it recorded: what an export killed between its renames leaves. Entries
    without a digest (an older hwnas) are not checked."""
    directory = Path(directory)
    wrong = []
    for entry in record["formats"].values():
        path = directory / entry["model"]
        if "sha256" in entry and (not path.is_file() or file_digest(path) != entry["sha256"]):
            wrong.append(entry["model"])
    return wrong


def check_models(directory: str | Path, record: dict[str, Any]) -> None:
    """Raises RunDirError naming the model files that do not match export.json."""
    wrong = mismatched_models(directory, record)
    if wrong:
        directory = Path(directory)
        raise RunDirError(f"{directory / wrong[0]} is not the file {directory / RECORD} "
                          f"describes (an export was stopped half-way?); rerun "
                          f"'hwnas export {directory}' to export again")


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of a module's parameters (names, shapes, float32 values), BN statistics included."""
    digest = hashlib.sha256()
    for name, param in sorted(module.get_parameters(grad_only=False).items()):
        values = np.ascontiguousarray(param.d, dtype=np.float32)
        digest.update(f"{name}{values.shape}".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def write_record(directory: str | Path, arch: Arch, weights: str, digest: str, data: Dataset,
                 written: dict[str, dict]) -> dict[str, Any]:
    """Writes export.json: the subnet, its input and, per format, what :func:`export_checked` found.

    ``weights`` says where the weights come from ("retrained" or "supernet")
    and ``digest`` is their :func:`weights_digest`. The formats ``written``
    now replace their entries. Another format's entry stays while the previous
    export.json describes the same subnet with the same weights (same digest)
    and its file is there; otherwise that file goes, since it would pass for
    this subnet's. So does a file whose bytes are not the ones recorded (an export
    stopped between its renames). export.json is written last: until it is, the
    previous one describes files some of which no longer match it, which
    :func:`check_models` reports.

    Returns:
        What export.json holds.
    """
    directory = Path(directory)
    try:
        previous = read_record(directory) or {}
    except RunDirError:
        previous = {}  # damaged: nothing known to keep
    same = ((previous.get("key"), previous.get("weights"), previous.get("weights_digest"))
            == (arch.key, weights, digest))
    kept = dict(previous["formats"]) if same else {}
    wrong = set(mismatched_models(directory, {"formats": kept}))
    formats = {}
    for name, fmt in FORMATS.items():
        old = kept.get(name)
        entry = written.get(name) or (old is not None and old["model"] == fmt.filename
                                      and (directory / fmt.filename).exists()
                                      and fmt.filename not in wrong and old)
        if entry:
            formats[name] = entry
        else:
            (directory / fmt.filename).unlink(missing_ok=True)
    record = {"key": arch.key, "arch": dict(arch), "weights": weights,
              "weights_digest": digest, "network": NETWORK,
              "input": INPUT, "output": OUTPUT, "input_shape": [-1, *data.input_shape],
              "input_scale": "pixels in [0, 1]; normalisation is inside the model",
              "test_examples": len(data.test), "formats": formats}
    atomic_write_json(directory / RECORD, record)
    return record
