"""Tests of hwnas.deploy: a .nnp that plain nnabla runs, an ONNX file that onnxruntime runs,
both checked against the in-process subnet on a real run's test split, and atomic writing."""
from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import nnabla as nn
import numpy as np
import pytest
from conftest import SMALL_SPACE, randomize, run_alone
from _cli_helpers import assert_changed_nothing, assert_usage_error, cli, load_trials, snapshot

from hwnas.data import Dataset
from hwnas.deploy import (FORMATS, export_nnp, export_onnx, inference_graph, pixels, run_nnp,
                          weights_digest)
from hwnas.supernet import Arch, create_space

SMALL = SMALL_SPACE
ARCH = Arch({"b0": "ir_k5_e3", "b1": "skip", "b2": "ir_k3_e2"})
N = 12

# Loads an .nnp with nnabla alone and saves the logits; fails if hwnas got imported.
LOADER = textwrap.dedent("""
    import sys
    import numpy as np
    from nnabla.utils.nnp_graph import NnpLoader

    path, inputs, outputs = sys.argv[1:4]
    x = np.load(inputs)
    net = NnpLoader(path).get_network("net", batch_size=len(x))
    net.inputs["x"].d = x
    y = net.outputs["y"]
    y.forward(clear_buffer=True)
    np.save(outputs, y.d)
    leaked = [m for m in sys.modules if m == "hwnas" or m.startswith("hwnas.")]
    assert not leaked, leaked
""")

# Runs an ONNX file with onnxruntime alone, in batches of 7 (a partial last one: the batch
# size is variable), and saves the logits; fails if hwnas or nnabla got imported.
ONNX_LOADER = textwrap.dedent("""
    import sys
    import numpy as np
    import onnxruntime

    path, inputs, outputs = sys.argv[1:4]
    x = np.load(inputs)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (given,), (made,) = session.get_inputs(), session.get_outputs()
    assert (given.name, made.name, given.shape[0]) == ("x", "y", "N"), (given, made)
    np.save(outputs, np.concatenate([session.run(["y"], {"x": x[i:i + 7]})[0]
                                     for i in range(0, len(x), 7)]))
    leaked = [m for m in sys.modules if m.split(".")[0] in ("hwnas", "nnabla")]
    assert not leaked, leaked
""")
LOADERS = {"nnp": LOADER, "onnx": ONNX_LOADER}


@pytest.fixture
def subnet():
    space = create_space("mobilenet", **SMALL)
    net = space.supernet()
    rng = np.random.default_rng(0)
    for key, param in net.net_parameters().items():
        if key.endswith("/var"):
            param.d = rng.uniform(0.5, 2.0, param.shape)
        else:
            param.d = rng.normal(0.0, 0.5, param.shape)
    return net.extract(ARCH)


def in_process(subnet, data: Dataset, images: np.ndarray) -> np.ndarray:
    x, y = inference_graph(subnet, data, batch_size=len(images))
    x.d = images
    y.forward(clear_buffer=True)
    return y.d.copy()


def direct(subnet, x: np.ndarray) -> np.ndarray:
    subnet.training = False
    v = nn.Variable.from_numpy_array(x)
    y = subnet(v)
    y.forward(clear_buffer=True)
    return y.d.copy()


# ---------------------------------------------------------------- pixels


def test_pixels_inverts_the_normalisation(data: Dataset) -> None:
    for split in (data.train, data.val, data.test):
        images = pixels(data, split.x)
        assert images.dtype == np.float32 and images.shape == split.x.shape
        assert images.min() >= -1e-6 and images.max() <= 1 + 1e-6
        mean = np.array(data.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.array(data.std, np.float32).reshape(1, -1, 1, 1)
        np.testing.assert_allclose((images - mean) / std, split.x, atol=1e-5)
    # The train split's pixels have the recorded mean and std.
    train = pixels(data, data.train.x).astype(np.float64)
    assert train.mean() == pytest.approx(data.mean[0], abs=1e-5)
    assert train.std() == pytest.approx(data.std[0], abs=1e-5)


# ---------------------------------------------------------------- the inference graph


def test_inference_graph_normalises_then_runs_the_subnet(subnet, data: Dataset) -> None:
    x = data.val.x[:N]
    np.testing.assert_allclose(in_process(subnet, data, pixels(data, x)), direct(subnet, x),
                               atol=1e-4, rtol=1e-4)


def test_inference_graph_follows_the_dataset_it_is_given(subnet, data: Dataset) -> None:
    other = dataclasses.replace(data, mean=(0.5,), std=(0.25,))
    images = pixels(data, data.val.x[:N])
    in_process(subnet, data, images)  # an earlier graph for another dataset
    got = in_process(subnet, other, images)
    want = direct(subnet, (images - 0.5) / 0.25)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- .nnp


def test_exported_nnp_runs_in_plain_nnabla(subnet, data: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "model.nnp"
    export_nnp(subnet, data, path)
    assert path.is_file() and path.stat().st_size > 0
    assert nn.get_parameters(grad_only=False) == {}  # export leaves the global scope alone
    images = pixels(data, data.val.x[:N])
    theirs = run_alone(LOADER, path, images, tmp_path)[0]
    mine = in_process(subnet, data, images)
    assert theirs.shape == (N, 10)
    np.testing.assert_allclose(theirs, mine, atol=1e-5, rtol=0)
    # The outputs are not degenerate: the examples get different logits.
    assert np.ptp(mine, axis=0).max() > 1e-3
    # run_nnp agrees, in several batches with a partial last one.
    np.testing.assert_allclose(run_nnp(path, images, batch_size=5), mine, atol=1e-5, rtol=0)
    np.testing.assert_allclose(run_nnp(path, images), mine, atol=1e-5, rtol=0)


def test_interrupted_export_leaves_the_old_file(subnet, data: Dataset, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.nnp"
    path.write_bytes(b"the previous model")

    def crash(filename, contents, *args, **kwargs):
        Path(filename).write_bytes(b"half a model")
        raise KeyboardInterrupt

    import hwnas.hwcost._nnp as nnp_module  # where the .nnp is saved
    monkeypatch.setattr(nnp_module, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        export_nnp(subnet, data, path)
    assert path.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.nnp"]


def test_export_replaces_an_existing_file(subnet, data: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "model.nnp"
    path.write_bytes(b"the previous model")
    export_nnp(subnet, data, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.nnp"]
    images = pixels(data, data.val.x[:4])
    np.testing.assert_allclose(run_nnp(path, images), in_process(subnet, data, images),
                               atol=1e-5, rtol=0)


# ---------------------------------------------------------------- ONNX


def test_exported_onnx_runs_in_onnxruntime_alone(subnet, data: Dataset, tmp_path: Path) -> None:
    import onnx

    path = tmp_path / "model.onnx"
    export_onnx(subnet, data, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert nn.get_parameters(grad_only=False) == {}
    model = onnx.load(str(path))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]
    images = pixels(data, data.val.x[:N])
    mine = in_process(subnet, data, images)
    theirs = run_alone(ONNX_LOADER, path, images, tmp_path)[0]
    np.testing.assert_allclose(theirs, mine, atol=1e-5, rtol=0)
    assert np.ptp(mine, axis=0).max() > 1e-3
    np.testing.assert_allclose(FORMATS["onnx"].run(path, images), mine, atol=1e-5, rtol=0)
    # The same subnet gives the same file.
    again = tmp_path / "again.onnx"
    export_onnx(subnet, data, again)
    assert again.read_bytes() == path.read_bytes()


def test_cells_export_to_onnx_through_exportable_functions(data: Dataset, tmp_path: Path) -> None:
    """DARTS cells hold what the ONNX exporter lacks or gets wrong: AddN, BN without beta and
    gamma, average pooling that excludes the padding. The rewritten graph computes the same."""
    from nnabla.utils.converter.utils import func_set_onnx_support

    from hwnas.deploy._onnx import onnx_compatible

    space = create_space("darts", input_shape=(1, 8, 8), n_classes=10, cells=2, channels=4,
                         nodes=2, operations=["avg_k3", "max_k3", "sep_k3", "skip"])
    net = space.supernet()
    randomize(net)
    arch = Arch({name: "avg_k3" if "avg_k3" in options else options[-1]
                 for name, options in space.choices.items()})
    sub = net.extract(arch)
    images = pixels(data, data.val.x[:N])
    x, y = inference_graph(sub, data, batch_size=N)
    kinds: list = []
    y.visit(lambda f: kinds.append((f.info.type_name, f.info.args.get("including_pad"))))
    assert {("AddN", None), ("BatchNormalization", None), ("AveragePooling", False)} <= set(kinds)
    x.d = images
    y.forward()
    want = y.d.copy()
    created = onnx_compatible(y, sub.get_parameters(grad_only=False))
    assert created and all(v.shape[0] == 1 for v in created.values())
    rewritten: set = set()
    y.visit(lambda f: rewritten.add(f.info.type_name))
    assert rewritten <= func_set_onnx_support(), rewritten - func_set_onnx_support()
    assert "AddN" not in rewritten and "BatchNormalization" not in rewritten
    y.forward()
    np.testing.assert_allclose(y.d, want, atol=1e-5, rtol=0)

    export_onnx(sub, data, tmp_path / "model.onnx")
    theirs = run_alone(ONNX_LOADER, tmp_path / "model.onnx", images, tmp_path)[0]
    np.testing.assert_allclose(theirs, in_process(sub, data, images), atol=1e-4, rtol=0)


def test_a_graph_that_fixes_the_batch_size_is_refused(tmp_path: Path) -> None:
    """The converter writes ``max(h, 0.5)`` against a constant of h's full shape."""
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    from hwnas.deploy._onnx import nnp_to_onnx
    from hwnas.errors import HwnasError
    from hwnas.deploy import save_nnp

    def build(scope):
        x = nn.Variable((1, 2, 4, 4))
        return x, F.maximum_scalar(PF.convolution(x, 2, (1, 1), name="conv"), 0.5)

    save_nnp(nn.Module(), tmp_path / "m.nnp", build)
    with pytest.raises(HwnasError, match="fixes the batch size"):
        nnp_to_onnx(tmp_path / "m.nnp")


# ---------------------------------------------------------------- hwnas export on a real run

RECORD_KEYS = ["key", "arch", "weights", "weights_digest", "network", "input", "output",
               "input_shape", "input_scale", "test_examples", "formats"]


def other_key(run: Path) -> str:
    """An evaluated subnet other than the selected one."""
    selected = json.loads((run / "selected.json").read_text())["key"]
    return sorted({t.user_attrs["key"] for t in load_trials(run)} - {selected})[0]


def test_export_round_trips_in_nnabla_and_onnxruntime(run_copy: Path, capfd, tmp_path) -> None:
    from hwnas import run as steps

    for name in ("model.nnp", "model.onnx", "export.json"):
        (run_copy / name).unlink()
    status, out, err = cli(capfd, "export", run_copy)
    assert status == 0, err
    info = json.loads((run_copy / "export.json").read_text())
    assert list(info) == RECORD_KEYS and list(info["formats"]) == ["nnp", "onnx"]
    selected = json.loads((run_copy / "selected.json").read_text())
    assert (info["key"], info["arch"]) == (selected["key"], selected["arch"])
    assert (info["network"], info["input"], info["output"]) == ("net", "x", "y")
    assert info["formats"]["nnp"]["runtime"] == f"nnabla {nn.__version__}"
    assert info["formats"]["onnx"]["runtime"].startswith("onnxruntime 1.")
    assert info["formats"]["onnx"]["opset"] == 13

    run = steps.RunDir.open(run_copy)
    ws = steps.workspace(run, progress=False)
    assert info["input_shape"] == [-1, *ws.data.input_shape]
    subnet, weights = steps.deploy_subnet(run, ws, Arch.from_key(info["key"]))
    assert (info["weights"], info["weights_digest"]) == (weights, weights_digest(subnet))
    subnet.training = False
    test = ws.data.test
    y = subnet(nn.Variable.from_numpy_array(test.x))
    y.forward(clear_buffer=True)
    assert info["test_examples"] == len(test)
    for name, entry in info["formats"].items():
        path = run_copy / entry["model"]
        assert f"{path} ({entry['runtime']})" in out
        logits = run_alone(LOADERS[name], path, pixels(ws.data, test.x), tmp_path)[0]
        assert logits.shape == y.shape == (len(test), ws.data.n_classes)
        np.testing.assert_allclose(logits, y.d, atol=1e-4, rtol=0, err_msg=name)
        assert entry["max_abs_diff"] <= 1e-4
        accuracy = float(np.mean(np.argmax(logits, axis=1) == test.y[:, 0]))
        assert entry["test_accuracy"] == accuracy, name


def test_one_format_keeps_the_other_of_the_same_subnet_only(run_copy: Path, capfd) -> None:
    before = json.loads((run_copy / "export.json").read_text())
    nnp = (run_copy / "model.nnp").read_bytes()
    status, out, err = cli(capfd, "export", run_copy, "--format", "onnx")
    assert status == 0, err
    assert "model.onnx" in out and "model.nnp" not in out
    info = json.loads((run_copy / "export.json").read_text())
    assert info["formats"]["nnp"] == before["formats"]["nnp"]
    assert (run_copy / "model.nnp").read_bytes() == nnp

    key = other_key(run_copy)
    status, out, err = cli(capfd, "export", run_copy, "--arch", key, "--format", "nnp")
    assert status == 0, err
    info = json.loads((run_copy / "export.json").read_text())
    assert info["key"] == key and list(info["formats"]) == ["nnp"]
    # The ONNX file of the other subnet is gone: it would pass for this one's.
    assert not (run_copy / "model.onnx").exists()
    assert (run_copy / "model.nnp").read_bytes() != nnp


def test_one_format_drops_the_other_exported_from_other_weights(run_copy: Path, capfd) -> None:
    """Same subnet, same source of weights, but other values (retrained again, or a supernet
    trained further): the other format's file no longer matches and goes."""
    info = json.loads((run_copy / "export.json").read_text())
    info["weights_digest"] = "0" * 64  # what an export of other weights recorded
    (run_copy / "export.json").write_text(json.dumps(info))
    status, out, err = cli(capfd, "export", run_copy, "--format", "onnx")
    assert status == 0, err
    info = json.loads((run_copy / "export.json").read_text())
    assert list(info["formats"]) == ["onnx"] and not (run_copy / "model.nnp").exists()
    assert info["weights_digest"] != "0" * 64


def test_weights_digest_follows_every_value_and_name(subnet) -> None:
    digest = weights_digest(subnet)
    assert digest == weights_digest(subnet) and len(digest) == 64
    params = subnet.get_parameters(grad_only=False)
    name = sorted(params)[-1]  # the last one (a BN running variance, say) counts too
    before = params[name].d.copy()
    params[name].d = before + np.float32(1e-3)
    try:
        assert weights_digest(subnet) != digest
    finally:
        params[name].d = before
    assert weights_digest(subnet) == digest


def test_an_unknown_format_is_one_line_and_changes_nothing(run_copy: Path, capfd) -> None:
    from hwnas import run as steps
    from hwnas.errors import HwnasError

    before = snapshot(run_copy)
    status, out, err = cli(capfd, "export", run_copy, "--format", "tflite")
    assert_usage_error(status, err, "--format", "tflite", "nnp", "onnx")
    assert_changed_nothing(before, run_copy)
    for formats in ((), ("nnp", "pb")):
        with pytest.raises(HwnasError, match="unknown export format"):
            steps.export(steps.RunDir.open(run_copy), formats=formats)
    assert_changed_nothing(before, run_copy)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_failed_check_exits_2_and_keeps_the_previous_files(run_copy: Path, capfd, fmt: str,
                                                             monkeypatch) -> None:
    runner = FORMATS[fmt].run
    monkeypatch.setitem(FORMATS, fmt, dataclasses.replace(
        FORMATS[fmt], run=lambda path, images: runner(path, images) + 0.01))
    before = snapshot(run_copy)
    # Another subnet: a passing export would have replaced every file.
    status, out, err = cli(capfd, "export", run_copy, "--arch", other_key(run_copy))
    assert_usage_error(status, err, fmt, f"model.{fmt}", "0.01", "previous files are kept")
    assert_changed_nothing(before, run_copy)
