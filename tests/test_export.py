"""Tests of hwnas.export: a .nnp that plain nnabla runs, and atomic writing."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nnabla as nn
import numpy as np
import pytest
from conftest import SMALL_SPACE

import hwnas.export as export_module
from hwnas.data import Dataset
from hwnas.export import export_nnp, inference_graph, pixels, run_nnp
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
    np.save(tmp_path / "x.npy", images)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", LOADER, str(path), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = np.load(tmp_path / "y.npy")
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

    monkeypatch.setattr(export_module, "save", crash)
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
