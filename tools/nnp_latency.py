#!/usr/bin/env python3
"""Times an exported .nnp network on this machine; copy this file to the target device.

Needs nnabla and numpy only (not hwnas). Usage::

    python nnp_latency.py MODEL.nnp --batch-size 1 --warmup 5 --repeats 30

It fills every input with standard-normal data, runs ``warmup`` untimed
forward passes, then times ``repeats`` passes by the calling thread's CPU
time (where nnabla's single-threaded CPU backend does its work, so other
processes barely disturb it). It prints ``device: <cpu model>`` and then one
JSON line, ``{"latency_ms": <median>, "spread": <(p75 - p25) / median>}``,
which is what hwnas's ``latency.command`` reads. Errors go to stderr with
exit status 1.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np


def describe_cpu() -> str:
    """The CPU model from /proc/cpuinfo (x86: model name; ARM boards: Model or Hardware)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        fields = {}
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if value.strip():
                fields.setdefault(key.strip().lower(), value.strip())
        for key in ("model name", "model", "hardware", "cpu model", "processor"):
            if key in fields and not fields[key].isdigit():
                return fields[key]
    return platform.processor() or platform.machine() or "unknown CPU"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the .nnp file")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5, help="untimed forward passes")
    parser.add_argument("--repeats", type=int, default=30, help="timed forward passes")
    parser.add_argument("--network", default=None,
                        help="network in the file (default: its only or first one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input data")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("need --batch-size >= 1, --repeats >= 1 and --warmup >= 0")
    return args


def measure(args: argparse.Namespace) -> tuple[float, float]:
    """Median latency in ms and relative interquartile spread of the timed passes."""
    import nnabla as nn
    from nnabla.utils.nnp_graph import NnpLoader

    with nn.parameter_scope("", OrderedDict()):
        loader = NnpLoader(args.model)
        names = loader.get_network_names()
        name = args.network or names[0]
        net = loader.get_network(name, batch_size=args.batch_size)
        rng = np.random.default_rng(args.seed)
        for variable in net.inputs.values():
            variable.d = rng.standard_normal(variable.shape)
        outputs = list(net.outputs.values())
        sink = outputs[0] if len(outputs) == 1 else nn.sink(*outputs)

        def forward() -> None:
            sink.forward(clear_buffer=True)

        for _ in range(args.warmup):
            forward()
        times = np.empty(args.repeats)
        for i in range(args.repeats):
            start = time.thread_time_ns()
            forward()
            times[i] = time.thread_time_ns() - start
    median = float(np.median(times))
    if not median > 0:
        raise RuntimeError(f"median forward time is {median} ns: the clock did not advance")
    p25, p75 = np.percentile(times, [25.0, 75.0])
    return median / 1e6, float((p75 - p25) / median)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        latency_ms, spread = measure(args)
    except Exception as exc:  # one line on stderr, for the caller's error message
        print(f"nnp_latency: {args.model}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"device: {describe_cpu()}")
    print(json.dumps({"latency_ms": latency_ms, "spread": spread}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
