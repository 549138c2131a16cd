"""Shared fixtures: one tiny experiment, run end to end once per test session."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# hwnas.cli points nnabla at its quiet logging config; import it before anything imports nnabla.
from hwnas.cli import main  # noqa: I001

import nnabla as nn
import numpy as np

import hwnas.hwcost._gated as gated
from hwnas.config import DataConfig
from hwnas.data import Dataset, load_dataset

# Waiting for a quiet device is bounded in tests: a loaded CI machine must not
# stall the suite for the default 300 s (measurements still need a clean pair).
gated.PATIENCE = 30.0
#: The gate's own tolerance (how much slower than its fastest the probe network may run for
#: a measurement to count), for the tests of the gating: see ``strict_latency``.
STRICT_TOLERANCE = gated.TOLERANCE
# Every other test accepts every latency measurement, however slowly the probe runs: they
# test the pipeline and the commands, and on a loaded machine (CI) a latency table or a
# remeasured front otherwise fails with a unit left unsettled. In-process only: a command
# run as a subprocess gates as a user's does.
gated.TOLERANCE = 1e6


@pytest.fixture
def strict_latency(monkeypatch):
    """The gate as it is outside the tests (a test of the gating itself)."""
    monkeypatch.setattr(gated, "TOLERANCE", STRICT_TOLERANCE)

#: A small chain space for unit tests: 3 searchable blocks, 8x8 greyscale input.
SMALL_SPACE = dict(input_shape=(1, 8, 8), n_classes=10, stem_channels=8,
                   stages=[(8, 2, 1), (16, 1, 2)], kernels=[3, 5], expansions=[2, 3],
                   head_channels=16)


def snapshot(net) -> dict:
    """Copies of every weight of a supernet, by name."""
    return {k: v.d.copy() for k, v in net.net_parameters().items()}


def randomize(net, seed: int = 0) -> None:
    """Random weights and stale BN statistics, so that every path computes something
    different (fresh residual blocks start as the identity) and recalibration has
    something to replace."""
    rng = np.random.default_rng(seed)
    for key, param in net.net_parameters().items():
        if key.endswith("/var"):
            param.d = rng.uniform(0.5, 2.0, param.shape)
        else:
            param.d = rng.normal(0.0, 0.5, param.shape)


def group_of(key: str) -> str:
    """The parameter group a supernet parameter belongs to, from its scoped name."""
    parts = key.split("/")
    if parts[0] in ("@stem", "@head"):
        return parts[0][1:]
    return f"{parts[0][1:]}/{parts[1][1:]}"


def forward(net, x: np.ndarray) -> np.ndarray:
    """``net``'s output for the input array ``x``."""
    y = net(nn.Variable.from_numpy_array(x))
    y.forward(clear_buffer=True)
    return y.d.copy()


def graph_leaves(y: nn.Variable) -> set[nn.Variable]:
    """The variables without parent that the graph of ``y`` reads (weights, inputs)."""
    leaves: set[nn.Variable] = set()

    def visit(function) -> None:
        leaves.update(v for v in function.inputs if v.parent is None)

    y.visit(visit)
    return leaves


def run_alone(loader: str, path: Path, images: np.ndarray,
              tmp_path: Path) -> tuple[np.ndarray, str]:
    """Runs ``loader`` (Python source; argv: model file, input .npy, output .npy) in a fresh
    process without this checkout on PYTHONPATH; the logits it saved and its stdout."""
    np.save(tmp_path / "x.npy", images)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", loader, str(path), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.load(tmp_path / "y.npy"), proc.stdout


@pytest.fixture(autouse=True)
def _fresh_parameters():
    """nnabla's global parameter scope starts and ends every test empty."""
    nn.clear_parameters()
    yield
    nn.clear_parameters()


@pytest.fixture(scope="session")
def data() -> Dataset:
    """The synthetic dataset at 8x8 (600 images, 10 classes)."""
    return load_dataset(DataConfig(name="synthetic", image_size=8), seed=0)


@pytest.fixture(scope="module")
def small_data() -> Dataset:
    """240 synthetic images at 8x8, loaded once per module (learners train on it)."""
    return load_dataset(DataConfig(name="synthetic", image_size=8, limit=240), seed=0)


@pytest.fixture
def space():
    """The ``SMALL_SPACE`` chain space; a file that needs another space defines its own."""
    from hwnas.supernet import create_space
    return create_space("mobilenet", **SMALL_SPACE)


@pytest.fixture
def supernet(space):
    """A freshly initialised supernet of ``space`` (nnabla seed 0)."""
    nn.seed(0)
    return space.supernet()

#: A tiny experiment that runs end to end in seconds: synthetic data, 20 subnets in the space.
#: ``max_spread`` is loose because a loaded test machine makes 0.2 ms timings noisy, and
#: these tests are about the pipeline, not about measurement reliability.
TINY_CONFIG = """\
name: tiny
seed: 1
data: {name: synthetic, image_size: 8}
space:
  stem_channels: 8
  stages: [{channels: 8, blocks: 1, stride: 1}, {channels: 16, blocks: 1, stride: 2}]
  kernels: [3, 5]
  expansions: [2, 3]
  head_channels: 16
train: {epochs: 1, batch_size: 32}
search: {trials: 6, bn_samples: 64}
latency: {repeats: 10, warmup: 2, max_spread: 10.0}
retrain: {epochs: 2}
budgets: {params: 100000}
"""


@dataclasses.dataclass(frozen=True)
class FinishedRun:
    """The outcome of the session's one ``hwnas run``."""

    config: Path
    path: Path
    status: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny experiment's YAML file."""
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture(scope="session")
def finished(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """Runs ``hwnas run tiny.yaml --quiet`` once, in-process; never modify its directory."""
    run = tmp_path_factory.mktemp("finished") / "run"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["run", str(tiny_config), "--out", str(run), "--quiet"])
    result = FinishedRun(tiny_config, run, status, out.getvalue(), err.getvalue())
    assert status == 0, (f"hwnas run failed ({status})\nstdout:\n{result.stdout}\n"
                         f"stderr:\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def finished_run(finished: FinishedRun) -> Path:
    """The finished run directory (read-only by convention: copy it before changing anything)."""
    return finished.path


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run, free to change."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


# Servers for tests of multi-machine search: started on first request, stopped at session end.
# Outside CI a missing program skips the test; in CI (CI=true) it fails it, as does a
# server that does not start.


@contextlib.contextmanager
def _serving(server):
    """Enters ``server``, turning a missing program into a skip (or a failure in CI)."""
    import servers

    with contextlib.ExitStack() as stack:
        try:
            value = stack.enter_context(server)
        except servers.MissingProgram as exc:
            missing = str(exc)
        else:
            missing = None
        if missing:  # outside the except block, so that the report shows one clear line
            servers.skip_or_fail(missing)
        yield value


# Module scope: idle servers still wake up now and then, which would disturb the
# latency measurements of the tests that follow; each module that needs one starts it.
@pytest.fixture(scope="module")
def postgres_url():
    """The SQLAlchemy URL of database ``hwnas`` on a PostgreSQL server on 127.0.0.1, shared by
    the module; take a private database from it with ``servers.fresh_database(url)``."""
    import servers

    with _serving(servers.postgres_server()) as url:
        yield url


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    """The SQLAlchemy URL of a new, empty database of its own on the session's server."""
    import servers

    return servers.fresh_database(postgres_url)


@pytest.fixture(scope="module")
def dask_address():
    """The address (``tcp://127.0.0.1:PORT``) of a Dask scheduler with 2 single-threaded
    workers from this environment, shared by the module."""
    import servers

    with _serving(servers.dask_cluster(workers=2)) as address:
        yield address
