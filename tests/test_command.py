"""Tests of hwnas.hwcost.CommandProfiler and tools/nnp_latency.py: latency from a device command."""
from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import nnabla as nn
import numpy as np
import pytest
from conftest import SMALL_SPACE

from hwnas.arch import Arch
from hwnas.config import LatencyConfig
from hwnas.errors import MeasurementError
from hwnas.hwcost import CommandProfiler, NnablaProfiler, parse_latency_output
from hwnas.supernet import create_space

INPUT_SHAPE = (1, 8, 8)
ARCH = Arch({"b0": "ir_k5_e3", "b1": "skip", "b2": "ir_k3_e2"})
SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "nnp_latency.py"
#: The local "device": this venv's python running the shipped script.
LOCAL = (f"{shlex.quote(sys.executable)} {shlex.quote(str(SCRIPT))} {{model}} "
         "--batch-size {batch_size} --warmup {warmup} --repeats {repeats}")
LATENCY = LatencyConfig(context="cpu", batch_size=2, warmup=5, repeats=60,
                        statistic="cpu_median", max_spread=1e6, retries=0,
                        command=LOCAL, command_timeout=60.0)


@pytest.fixture(scope="module")
def subnet():
    nn.clear_parameters()
    net = create_space("mobilenet", **SMALL_SPACE).supernet()
    rng = np.random.default_rng(0)
    for key, param in net.net_parameters().items():
        param.d = rng.uniform(0.5, 2.0, param.shape) if key.endswith("/var") \
            else rng.normal(0.0, 0.5, param.shape)
    sub = net.extract(ARCH)
    nn.clear_parameters()
    return sub


def profiler(command: str, tmp_path: Path, **changes) -> CommandProfiler:
    config = dataclasses.replace(LATENCY, command=command, **changes)
    return CommandProfiler(config, workdir=tmp_path)


def test_local_script_end_to_end(subnet, tmp_path):
    prof = profiler(LOCAL, tmp_path)
    latency, protocol = prof.measure(subnet, INPUT_SHAPE)
    assert latency > 0
    assert protocol.context == "command"
    assert protocol.device and protocol.device != LOCAL and prof.device == protocol.device
    assert (protocol.batch_size, protocol.warmup, protocol.repeats) == (2, 5, 60)
    assert protocol.statistic == "cpu_median" and protocol.nnabla_version == nn.__version__
    assert protocol.spread >= 0 and protocol.reliable
    assert list(tmp_path.iterdir()) == []

    local, _ = NnablaProfiler(LATENCY).measure(subnet, INPUT_SHAPE)
    assert 0.3 * local <= latency <= 3.0 * local, (latency, local)


def test_probe_network_is_measured_by_a_command(tmp_path):
    """The probe creates its weights on its first call; the exported file must keep them."""
    from hwnas.hwcost import probe_network
    from hwnas.hwcost._gated import PROBE_SHAPE
    latency, _ = profiler(LOCAL, tmp_path, repeats=5).measure(probe_network(), PROBE_SHAPE)
    assert latency > 0


def test_path_with_spaces(subnet, tmp_path):
    workdir = tmp_path / "dir with 'spaces' and $dollar"
    workdir.mkdir()
    latency, _ = profiler(LOCAL, workdir, repeats=5).measure(subnet, INPUT_SHAPE)
    assert latency > 0
    assert list(workdir.iterdir()) == []


def test_placeholders_substituted(subnet, tmp_path):
    out = tmp_path / "args.txt"
    copy = tmp_path / "copy.nnp"
    command = (f"echo {{model}} {{batch_size}} {{warmup}} {{repeats}} > {out} && "
               f"cp {{model}} {copy} && echo 'awk keeps {{braces}}: 2.5 ms'")
    workdir = tmp_path / "work"
    workdir.mkdir()
    latency, protocol = profiler(command, workdir, batch_size=3, warmup=4, repeats=7).measure(
        subnet, INPUT_SHAPE)
    assert latency == 2.5
    assert protocol.device == command and protocol.spread == 0.0 and protocol.reliable
    model, *numbers = out.read_text().split()
    assert Path(model).name == "model.nnp" and Path(model).parent.parent == workdir
    assert numbers == ["3", "4", "7"]
    assert copy.stat().st_size > 0 and list(workdir.iterdir()) == []


def test_json_spread_and_device(subnet, tmp_path):
    command = ("echo 'device: my board'; echo 'noise 9'; "
               """echo '{"latency_ms": 1.5, "spread": 0.4}' # {model}""")
    latency, protocol = profiler(command, tmp_path, max_spread=0.25).measure(subnet, INPUT_SHAPE)
    assert latency == 1.5 and protocol.device == "my board"
    assert protocol.spread == 0.4 and not protocol.reliable


@pytest.mark.parametrize("command, reason", [
    ("echo 'oops' >&2; exit 1 # {model}", "exit status 1"),
    ("sleep 10; echo 1 # {model}", "timed out"),
    ("echo done # {model}", "no number"),
    ("echo 0 # {model}", "not positive"),
    ("echo nan # {model}", "not finite"),
    ("echo 'latency -3 ms' # {model}", "not positive"),
    ("true # {model}", "printed nothing"),
    ("""echo '{"spread": 0.1}' # {model}""", "latency_ms"),
])
def test_failures_raise(subnet, tmp_path, command, reason):
    prof = profiler(command, tmp_path, command_timeout=0.5)
    with pytest.raises(MeasurementError) as info:
        prof.measure(subnet, INPUT_SHAPE)
    message = str(info.value)
    assert reason in message and "\n" not in message
    assert prof.render(tmp_path / "model.nnp").split(" # ")[0] in message
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def pid_files(tmp_path):
    """Files a command writes the pids of its children to (beside the work directory); every
    child still alive after the test is killed by its pid."""
    files = [tmp_path.parent / f"{tmp_path.name}-{name}.pid" for name in ("bg", "fg")]
    yield files
    for path in files:
        if path.exists():
            try:
                os.kill(int(path.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
            path.unlink()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_background_child_holding_stdout_does_not_delay_the_result(subnet, tmp_path,
                                                                     pid_files):
    """An ssh ControlPersist master or a daemon outlives the command holding its stdout: the
    command's own exit is what counts, and the child is left running."""
    bg, _ = pid_files
    command = f"(setsid sleep 30 & echo $! > {bg}); echo 'latency 1.5 ms' # {{model}}"
    start = time.monotonic()
    latency, _ = profiler(command, tmp_path, command_timeout=2).measure(subnet, INPUT_SHAPE)
    assert latency == 1.5 and time.monotonic() - start < 10
    assert alive(int(bg.read_text()))
    assert list(tmp_path.iterdir()) == []


def test_the_timeout_is_a_wall_clock_bound_whatever_the_children_do(subnet, tmp_path,
                                                                    pid_files):
    """A command that hangs is killed, with its process group, at its timeout, even while a
    child outside the group holds its stdout (before, this waited for the child: 30 s)."""
    bg, fg = pid_files
    command = (f"(setsid sleep 30 & echo $! > {bg}); sleep 30 & echo $! > {fg}; wait; "
               "echo 1 # {model}")
    start = time.monotonic()
    with pytest.raises(MeasurementError, match="timed out after 2 s") as info:
        profiler(command, tmp_path, command_timeout=2).measure(subnet, INPUT_SHAPE)
    assert 2 <= time.monotonic() - start < 10
    assert "\n" not in str(info.value)
    deadline = time.monotonic() + 5
    while alive(int(fg.read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(int(fg.read_text())), "the command's own child outlived the timeout"
    assert list(tmp_path.iterdir()) == []


def test_failure_message_has_stderr_tail(subnet, tmp_path):
    command = "echo first >&2; echo 'the real cause' >&2; exit 3 # {model}"
    with pytest.raises(MeasurementError, match="exit status 3.*the real cause"):
        profiler(command, tmp_path).measure(subnet, INPUT_SHAPE)


def test_script_failure_reported(tmp_path):
    bad = tmp_path / "bad.nnp"
    bad.write_text("not a network")
    prof = profiler(LOCAL, tmp_path)
    with pytest.raises(MeasurementError, match="nnp_latency"):
        prof._run(prof.render(bad))


@pytest.mark.parametrize("command", [None, "echo 1", "run '{model}'", 'run "{model}"'])
def test_bad_template_rejected(command):
    with pytest.raises(ValueError):
        CommandProfiler(dataclasses.replace(LATENCY, command=command))


@pytest.mark.parametrize("stdout, expected", [
    ("1.25\n", (1.25, None, None, None)),
    ("device: Cortex-A72\nlatency 3e-1ms on resnet50\n\n", (0.3, None, None, "Cortex-A72")),
    ('{"latency_ms": 2, "spread": 0, "threads": 4}', (2.0, 0.0, 4, None)),
])
def test_parse_latency_output(stdout, expected):
    assert parse_latency_output(stdout) == expected
