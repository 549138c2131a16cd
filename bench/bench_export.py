"""Benchmark: plain vs optimised nnabla inference graphs of chain subnets, and PyTorch eager.

Two fixed subnets, one of the digits space (1x8x8) and one of a CIFAR-shaped
chain space (3x32x32), each timed at batch 1 and 64 on one thread:

(a) the plain nnabla inference graph (``module(x)`` in inference mode),
(b) the optimised one hwnas measures and exports (``inference_output``:
    batch normalization folded into the convolutions, fastest activations),
(c) the same architecture and weights in PyTorch eager (``eval()``, BN kept),
    and, for reference, PyTorch with BN folded as well.

Every number follows the project's latency statistic: the median per-call CPU
time of the calling thread (``time.thread_time_ns`` around each call), after
warm-up calls. The variants are timed in interleaved rounds (a, b, c, c', a,
b, ...) so that load from elsewhere on a shared machine hits them alike.
PyTorch runs with ``torch.set_num_threads(1)`` in a long-lived subprocess of a
separate virtual environment (``.venv-torch``, Python 3.11, since nnabla needs
3.10), made with ``pip install torch==2.13.0`` when missing; both frameworks
get the same weights (.npz) and inputs, and their outputs must agree within
1e-4. Without PyTorch the benchmark says why and still reports nnabla's ratios.

Usage (from the repository root)::

    .venv/bin/python bench/bench_export.py [--rounds N] [--batches 1 64] [--no-torch]

Writes ``bench/results/export.json``. The same file run by the PyTorch
environment with ``--torch-worker`` is the PyTorch side; that mode imports
neither nnabla nor hwnas and talks JSON lines over stdin/stdout.

The PyTorch side, and the timing helpers both sides share, are in
``_export_torch.py`` next to this file.
"""
from __future__ import annotations

import argparse
import importlib
import json
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from _export_torch import (TORCH_TOLERANCE, TorchWorker, breakdown_category, thread_times,
                           torch_python, torch_worker)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "export.json"
#: The issue's aim for the optimised nnabla graph against PyTorch eager.
AIM = 1.5

#: The fixed subnets: the default digits experiment's space and a CIFAR-shaped chain.
CASES = {
    "digits": dict(
        space=dict(input_shape=(1, 8, 8), n_classes=10, stem_channels=16,
                   stages=[(16, 2, 1), (24, 2, 2), (32, 2, 2)], kernels=[3, 5, 7],
                   expansions=[3, 6], head_channels=64),
        arch={"b0": "ir_k3_e3", "b1": "skip", "b2": "ir_k5_e6", "b3": "ir_k3_e3",
              "b4": "ir_k5_e3", "b5": "ir_k3_e6"}),
    "cifar": dict(
        space=dict(input_shape=(3, 32, 32), n_classes=10, stem_channels=16,
                   stages=[(16, 1, 1), (24, 2, 2), (32, 2, 2), (64, 2, 2)], kernels=[3, 5, 7],
                   expansions=[3, 6], head_channels=64),
        arch={"b0": "ir_k3_e3", "b1": "ir_k3_e6", "b2": "ir_k5_e3", "b3": "ir_k3_e6",
              "b4": "skip", "b5": "ir_k5_e6", "b6": "ir_k3_e3"}),
}
VARIANTS = ("plain", "optimised", "torch_eager", "torch_folded")


def timing_plan(batch: int, rounds: int | None) -> tuple[int, int, int]:
    """(rounds, warm-up calls per round, timed calls per round) at ``batch``."""
    default_rounds, warmup, calls = (5, 3, 20) if batch == 1 else (4, 1, 4)
    return rounds or default_rounds, warmup, calls


def summarise(times_ns: list[int]) -> dict:
    """The median per-call time in ms and its spread, (p75 - p25) / median, as hwnas records."""
    p25, median, p75 = np.percentile(np.asarray(times_ns, np.float64), [25, 50, 75])
    return {"ms": median / 1e6, "spread": (p75 - p25) / median, "calls": len(times_ns)}


# ---------------------------------------------------------------- the nnabla side


def randomise_like_trained(net, rng: np.random.Generator) -> None:
    """Non-trivial BN statistics and scales, as after training, so that folding is exercised."""
    for key, param in net.get_parameters(grad_only=False).items():
        name = key.rsplit("/", 1)[-1]
        if name == "mean":
            param.d = rng.normal(0.0, 0.2, param.shape)
        elif name == "var":
            param.d = rng.uniform(0.5, 2.0, param.shape)
        elif name == "gamma":
            param.d = rng.uniform(0.5, 1.5, param.shape)
        elif name == "beta":
            param.d = rng.normal(0.0, 0.2, param.shape)


def torch_state(subnet, spec: dict) -> dict[str, np.ndarray]:
    """The subnet's weights under the PyTorch model's state-dict names."""
    def conv_bn(prefix: str, op) -> dict[str, np.ndarray]:
        params = {k.rsplit("/", 1)[-1]: v.d for k, v in op.get_parameters(grad_only=False).items()}
        w = params["W"]
        if w.ndim == 3:  # depthwise: (C, kh, kw) -> (C, 1, kh, kw)
            w = w[:, None]
        c = w.shape[0]
        return {f"{prefix}.conv.weight": w, f"{prefix}.bn.weight": params["gamma"].reshape(c),
                f"{prefix}.bn.bias": params["beta"].reshape(c),
                f"{prefix}.bn.running_mean": params["mean"].reshape(c),
                f"{prefix}.bn.running_var": params["var"].reshape(c),
                f"{prefix}.bn.num_batches_tracked": np.zeros((), np.int64)}

    state = conv_bn("stem", subnet.stem)
    for block in spec["blocks"]:
        op = subnet.submodules[block["name"]].submodules[block["option"]]
        for part in ("expand", "depthwise", "project"):
            state.update(conv_bn(f"blocks.{block['name']}.{part}", op.submodules[part]))
    state.update(conv_bn("head", subnet.head.conv))
    fc = {k.rsplit("/", 1)[-1]: v.d for k, v in subnet.head.get_parameters().items()
          if k.split("/")[0] == "fc"}
    state["fc.weight"] = fc["W"].T
    state["fc.bias"] = fc["b"]
    return {k: np.ascontiguousarray(v) for k, v in state.items()}


def chain_spec(space, arch) -> dict:
    """The architecture in plain numbers, for the PyTorch side; skipped blocks are left out."""
    from hwnas.supernet._ops import parse_option

    blocks = []
    for name, (cin, cout, stride) in space.block_shapes.items():
        decoded = parse_option(arch[name])
        if decoded is not None:
            blocks.append({"name": name, "option": arch[name], "in": cin, "out": cout,
                           "stride": stride, "kernel": decoded[0], "expansion": decoded[1]})
    last = list(space.block_shapes.values())[-1][1]
    return {"input_shape": list(space.input_shape), "stem_channels": space.stem_channels,
            "head_channels": space.head_channels, "n_classes": space.n_classes,
            "blocks_out": last, "blocks": blocks}


def nnabla_breakdown(y, calls: int) -> dict[str, float]:
    """Thread CPU ms per call spent in each kind of function of the graph ending at ``y``."""
    functions = []
    y.visit(functions.append)
    y.forward()  # every intermediate buffer filled, so each function can run on its own
    kinds = {"DepthwiseConvolution": "depthwise", "Convolution": "conv",
             "BatchNormalization": "batch norm", "MaximumScalar": "relu", "ReLU": "relu",
             "Add2": "add", "Affine": "affine"}
    spent: dict[str, int] = defaultdict(int)
    for _ in range(calls):
        for f in functions:
            kind = kinds.get(f.info.type_name, "other")
            kernel = f.inputs[1].shape[-1] if kind == "conv" else 0
            start = time.thread_time_ns()
            f.forward(f.inputs, f.outputs)
            spent[breakdown_category(kind, kernel)] += time.thread_time_ns() - start
    return {k: v / calls / 1e6 for k, v in spent.items()}


def run_benchmark(args: argparse.Namespace) -> dict:
    # hwnas.cli points nnabla at its quiet logging config: import it before nnabla.
    importlib.import_module("hwnas.cli")

    import nnabla as nn

    from hwnas.hwcost import describe_device
    from hwnas.hwcost._profiler import inference_output
    from hwnas.supernet import Arch, create_space

    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="bench_export_"))
    cases, torch_cases = [], []
    for name, case in CASES.items():
        space = create_space("mobilenet", **case["space"])
        arch = Arch(case["arch"])
        supernet = space.supernet()
        randomise_like_trained(supernet, rng)
        subnet = supernet.extract(arch)
        spec = chain_spec(space, arch)
        np.savez(work / f"{name}.npz", **torch_state(subnet, spec))
        for batch in args.batches:
            images = rng.standard_normal((batch,) + space.input_shape).astype(np.float32)
            x = nn.Variable(images.shape)
            subnet.training = False
            plain = subnet(x)
            optimised = inference_output(subnet, x)
            x.d = images
            plain.forward(clear_buffer=True)
            want = plain.d.copy()
            optimised.forward(clear_buffer=True)
            stem = work / f"{name}_{batch}"
            np.save(f"{stem}_x.npy", images)
            np.save(f"{stem}_y.npy", want)
            cases.append({
                "space": name, "input_shape": list(space.input_shape), "arch": arch.key,
                "batch": batch, "max_abs_output": float(np.max(np.abs(want))),
                "max_abs_diff_optimised": float(np.max(np.abs(optimised.d - want))),
                "graphs": {"plain": plain, "optimised": optimised}})
            torch_cases.append({"spec": spec, "weights": str(work / f"{name}.npz"),
                                "inputs": f"{stem}_x.npy", "outputs": f"{stem}_y.npy"})

    worker, torch_error, torch_info = None, None, None
    if args.no_torch:
        torch_error = "skipped (--no-torch)"
    else:
        python, why = torch_python()
        if python is None:
            torch_error = why
        else:
            worker = TorchWorker(python, work / "torch.stderr", Path(__file__))
            loaded = worker.ask(op="load", cases=torch_cases)
            torch_info = {"version": loaded["torch_version"], "threads": loaded["threads"]}
            for case, theirs in zip(cases, loaded["cases"]):
                case["torch_check"] = theirs
            disagree = [f"{c['space']}/{c['batch']}/{v}" for c in cases
                        for v, check in c["torch_check"].items() if not check["agree"]]
            if disagree:
                torch_error = f"outputs differ beyond {TORCH_TOLERANCE} on {disagree}"

    for index, case in enumerate(cases):
        rounds, warmup, calls = timing_plan(case["batch"], args.rounds)
        times: dict[str, list[int]] = defaultdict(list)
        for _ in range(rounds):
            for variant, y in case["graphs"].items():
                times[variant] += thread_times(lambda y=y: y.forward(clear_buffer=True),
                                               warmup, calls)
            if worker is not None:
                for variant in VARIANTS[2:]:
                    times[variant] += worker.ask(op="time", case=index, variant=variant,
                                                 warmup=warmup, calls=calls)["ns"]
        case["latency"] = {variant: summarise(t) for variant, t in times.items()}
        ms = {variant: s["ms"] for variant, s in case["latency"].items()}
        case["ratio_optimised_plain"] = ms["optimised"] / ms["plain"]
        case["breakdown_ms"] = {"optimised": nnabla_breakdown(case["graphs"]["optimised"],
                                                              max(1, calls // 2))}
        if worker is not None:
            case["ratio_optimised_torch"] = ms["optimised"] / ms["torch_eager"]
            case["ratio_plain_torch"] = ms["plain"] / ms["torch_eager"]
            case["ratio_optimised_torch_folded"] = ms["optimised"] / ms["torch_folded"]
            case["breakdown_ms"]["torch_folded"] = worker.ask(
                op="breakdown", case=index, variant="torch_folded", calls=max(1, calls // 2))["ms"]
        del case["graphs"]
        print(f"{case['space']:6s} batch {case['batch']:3d}: "
              + "  ".join(f"{v} {m:.3f} ms" for v, m in ms.items()), flush=True)
    if worker is not None:
        worker.close()
    shutil.rmtree(work, ignore_errors=True)
    return {"device": describe_device("cpu"), "nnabla_version": nn.__version__,
            "python": platform.python_version(), "threads": 1,
            "statistic": "median per-call thread CPU time (ms), interleaved rounds",
            "aim_optimised_over_torch": AIM, "torch": torch_info, "torch_error": torch_error,
            "cases": cases}


def print_report(report: dict) -> None:
    print(f"\n{report['device']}, nnabla {report['nnabla_version']}, one thread; "
          f"{report['statistic']}")
    if report["torch"] is not None:
        print(f"PyTorch {report['torch']['version']}, {report['torch']['threads']} thread")
    header = (f"{'case':11s} {'plain':>9s} {'optimised':>9s} {'torch':>9s} {'opt/plain':>9s} "
              f"{'plain/torch':>11s} {'opt/torch':>9s} {'opt/torch-folded':>16s}")
    print(header)
    for case in report["cases"]:
        lat = case["latency"]
        cells = [f"{case['space'] + '/' + str(case['batch']):11s}", f"{lat['plain']['ms']:9.3f}",
                 f"{lat['optimised']['ms']:9.3f}"]
        if "torch_eager" in lat:
            cells += [f"{lat['torch_eager']['ms']:9.3f}", f"{case['ratio_optimised_plain']:9.2f}",
                      f"{case['ratio_plain_torch']:11.2f}",
                      f"{case['ratio_optimised_torch']:9.2f}",
                      f"{case['ratio_optimised_torch_folded']:16.2f}"]
        else:
            cells += [f"{'-':>9s}", f"{case['ratio_optimised_plain']:9.2f}"]
        print(" ".join(cells))
    print("\nwhere the time goes (ms per call, thread CPU):")
    for case in report["cases"]:
        for variant, parts in case["breakdown_ms"].items():
            ranked = sorted(parts.items(), key=lambda kv: -kv[1])
            text = ", ".join(f"{k} {v:.2f}" for k, v in ranked)
            print(f"  {case['space']}/{case['batch']} {variant}: {text}")
    if report["torch_error"]:
        print(f"\nPyTorch NOT COMPARED: {report['torch_error']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds per case (default: 5 at batch 1, 4 at 64)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--no-torch", action="store_true", help="report the nnabla ratios only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torch_worker:
        torch_worker()
        return 0
    report = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
