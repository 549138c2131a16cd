"""CommandProfiler: latency measured on a target device by the user's shell command.

The command receives the network as an exported .nnp file and reports one
number. What it prints on stdout is read as follows:

* its last non-empty line is the result: either a JSON object such as
  ``{"latency_ms": 1.23, "spread": 0.02}`` (``latency_ms`` required;
  ``spread``, the relative (p75 - p25) / statistic of its repeats, and
  ``threads`` optional), or any text whose last number is the latency in
  milliseconds (``latency: 1.23 ms`` reads 1.23);
* an earlier line ``device: ...`` names the device (the last such line wins).

``tools/nnp_latency.py`` is a command of this kind: copy it to the device
and point ``latency.command`` at it, for example
``scp {model} board:/tmp/m.nnp && ssh board python3 nnp_latency.py /tmp/m.nnp
--batch-size {batch_size} --warmup {warmup} --repeats {repeats}``.
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nnabla as nn

from hwnas.errors import MeasurementError
from hwnas.costs import LatencyProtocol
from hwnas.hwcost._nnp import export_module_nnp
from hwnas.hwcost._profiler import BaseProfiler

if TYPE_CHECKING:  # hwnas.config imports the cost records
    from hwnas.config import LatencyConfig

__all__ = ["CommandProfiler", "parse_latency_output"]

CONTEXT = "command"
PLACEHOLDERS = ("model", "batch_size", "warmup", "repeats")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
# A number not glued to a word before it ("resnet50" holds none), units may follow ("1.2ms").
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
                     r"|(?<![\w.])[-+]?\b(?:nan|inf(?:inity)?)\b", re.IGNORECASE)
_DEVICE = re.compile(r"^\s*device\s*:\s*(.*\S)\s*$", re.IGNORECASE)
_TAIL_CHARS = 300


def _tail(text: str) -> str:
    """The end of a command's output, on one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    tail = " | ".join(lines[-3:])
    return tail if len(tail) <= _TAIL_CHARS else "..." + tail[-_TAIL_CHARS:]


def _positive_finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} is not a number: {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} is not finite: {value}")
    if value <= 0:
        raise ValueError(f"{what} is not positive: {value}")
    return value


def parse_latency_output(stdout: str) -> tuple[float, float | None, int | None, str | None]:
    """Reads a latency command's stdout (format in the module docstring).

    Args:
        stdout: everything the command printed on stdout.

    Returns:
        The latency in ms; the spread, threads and device it reported, or None.

    Raises:
        ValueError: if the last line holds no number, or one that is not a
            positive finite latency, or a JSON object with an invalid field.
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("it printed nothing on stdout")
    device = None
    for line in lines:
        match = _DEVICE.match(line)
        if match:
            device = match.group(1)
    last = lines[-1]
    spread = threads = None
    record = None
    if last.startswith("{"):
        try:
            record = json.loads(last)
        except json.JSONDecodeError:
            record = None  # not JSON after all: read its last number
    if isinstance(record, dict):
        if "latency_ms" not in record:
            raise ValueError(f"its JSON result has no 'latency_ms': {last}")
        latency = _positive_finite(record["latency_ms"], "latency_ms")
        if record.get("spread") is not None:
            spread = record["spread"]
            if isinstance(spread, bool) or not isinstance(spread, (int, float)) \
                    or not math.isfinite(spread) or spread < 0:
                raise ValueError(f"its spread is not a non-negative number: {spread!r}")
            spread = float(spread)
        if record.get("threads") is not None:
            threads = record["threads"]
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ValueError(f"its threads is not a positive integer: {threads!r}")
        return latency, spread, threads, device
    numbers = _NUMBER.findall(last)
    if not numbers:
        raise ValueError(f"its last line holds no number: {last!r}")
    return _positive_finite(float(numbers[-1]), "the latency"), spread, threads, device


class CommandProfiler(BaseProfiler):
    """Measures latency on a target device by running ``config.command`` once per network.

    ``measure`` exports the network to a temporary .nnp (input ``x`` of shape
    (1, *input_shape), output ``y``, network ``net``), runs the command in
    ``/bin/sh`` with the placeholders ``{model}`` (the file's path, quoted by
    hwnas: leave it unquoted in the template), ``{batch_size}``,
    ``{warmup}`` and ``{repeats}`` replaced, and reads the latency from its
    stdout (see :func:`parse_latency_output`). Other braces in the template
    are left alone. The command does its own warm-up and repeats; a result
    whose reported spread exceeds ``config.max_spread`` is measured again, up
    to ``config.retries`` times, and the narrowest kept.

    The command's process group is killed when ``config.command_timeout``
    seconds pass: a hard bound on the wall-clock time, whatever its children
    do. The command's own exit is what counts: once it has exited, what it
    printed is its result, even if a child it left in the background (an
    ssh ControlPersist master, a daemon) runs on holding its stdout; such a
    child is left alone. Not thread safe: one ``measure`` at a time.

    Args:
        config: the latency protocol; ``command`` must be set.
        workdir: directory of the temporary .nnp files (the system's default
            temporary directory when None).
    """

    def __init__(self, config: LatencyConfig, *, workdir: str | Path | None = None) -> None:
        super().__init__(config)
        template = config.command
        if not template or "{model}" not in template:
            raise ValueError(f"latency command must contain '{{model}}', got {template!r}")
        if re.search(r"""(['"])\{model\}\1""", template):
            raise ValueError(f"leave {{model}} unquoted in the latency command (hwnas quotes "
                             f"the path itself), got {template!r}")
        self.workdir = None if workdir is None else Path(workdir)
        self._device: str | None = None

    @property
    def device(self) -> str:
        """The device the command last reported (``device: ...``), else its template."""
        return self._device or self.config.command

    def render(self, model: str | Path) -> str:
        """The shell command line that measures the .nnp at ``model``."""
        cfg = self.config
        values = {"model": shlex.quote(str(model)), "batch_size": str(cfg.batch_size),
                  "warmup": str(cfg.warmup), "repeats": str(cfg.repeats)}
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], cfg.command)

    def measure(self, module: nn.Module, input_shape: Sequence[int]) -> tuple[float,
                                                                              LatencyProtocol]:
        cfg = self.config
        with tempfile.TemporaryDirectory(prefix="hwnas-latency-", dir=self.workdir) as tmp:
            model = Path(tmp) / "model.nnp"
            export_module_nnp(module, tuple(input_shape), model)
            command = self.render(model)
            best = self._run(command)
            for _ in range(cfg.retries):
                if best[1] is None or best[1] <= cfg.max_spread:
                    break
                attempt = self._run(command)
                if attempt[1] is not None and attempt[1] < best[1]:
                    best = attempt
        latency, spread, threads, device = best
        if device:
            self._device = device
        protocol = LatencyProtocol(
            context=CONTEXT, device=device or cfg.command, nnabla_version=nn.__version__,
            threads=threads or 1, batch_size=cfg.batch_size, warmup=cfg.warmup,
            repeats=cfg.repeats, statistic=cfg.statistic,
            spread=0.0 if spread is None else spread,
            reliable=spread is None or spread <= cfg.max_spread)
        return latency, protocol

    def _run(self, command: str) -> tuple[float, float | None, int | None, str | None]:
        """Runs ``command`` once and parses its result; raises MeasurementError on failure."""
        timeout = self.config.command_timeout
        # Output goes to unnamed files, not pipes: a background child that outlives the
        # command (an ssh ControlPersist master, a daemon) keeps its copy of stdout open,
        # and reading a pipe to its end would wait for that child, past any timeout.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                # A session of its own, so that a timeout kills the shell's children too.
                proc = subprocess.Popen(command, shell=True, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=err, start_new_session=True)
            except OSError as exc:
                raise MeasurementError(
                    f"latency command could not start: {command}: {exc}") from exc
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                raise MeasurementError(
                    f"latency command timed out after {timeout:g} s: {command}"
                    + _stderr_note(_read(err))) from None
            except BaseException:
                _kill(proc)
                raise
            stdout, stderr = _read(out), _read(err)
        if proc.returncode != 0:
            raise MeasurementError(
                f"latency command failed with exit status {proc.returncode}: {command}"
                + _stderr_note(stderr))
        try:
            return parse_latency_output(stdout)
        except ValueError as exc:
            out = _tail(stdout)
            raise MeasurementError(
                f"latency command gave no valid latency ({exc}): {command}"
                + (f"; stdout: {out}" if out and out not in str(exc) else "")
                + _stderr_note(stderr)) from None


def _read(file) -> str:
    """What a command wrote to ``file`` so far (a background child may write on)."""
    file.seek(0)
    return file.read().decode(errors="replace")


def _stderr_note(stderr: str) -> str:
    tail = _tail(stderr or "")
    return f"; stderr: {tail}" if tail else "; stderr: (empty)"


def _kill(proc: subprocess.Popen) -> None:
    """Kills the command's process group and reaps the shell (children that left the
    group with ``setsid`` are out of reach, and nothing waits for them)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()
    proc.wait()
