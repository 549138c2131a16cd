"""Training-mode batch normalization: hwnas's numpy kernel against nnabla's own.

Part 1 times one BN, forward and backward (to x, and to beta and gamma when
affine), at the shapes of the DARTS space's cells at batch 32 and 16 initial
channels: (32, 16, 32, 32), (32, 32, 16, 16), (32, 64, 8, 8), and at two small
shapes either side of ``MIN_ELEMENTS`` (below it hwnas keeps nnabla's kernel),
without and with scale and shift. Both kernels must first give the same output and gradients
(np.allclose, rtol 1e-4). Each number is the median wall time of the timed
calls; the two kernels alternate call by call.

Part 2 times the search step that issue 4's target is about: first-order
DARTS on the DARTS space (cells 8, channels 16, nodes 4, the eight DARTS
operations, batch 32, 3x32x32 input), ``arch_step`` then ``train_step``, in two
learners built from the same seed, one with each kernel. After one warm-up
step each (it builds the graphs), their steps alternate; the statistic is the
median wall seconds per step. ``--quick``: cells 5, channels 8, batch 8.

    .venv/bin/python bench/bench_batchnorm.py [--quick] [--steps 3] [--repeats 15]

Writes bench/results/batchnorm.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("NNABLA_CONFIG_FILE_PATH",
                      str(Path(__file__).resolve().parent.parent / "hwnas/cli/nnabla.conf"))

import nnabla as nn  # noqa: E402
import numpy as np  # noqa: E402

from _common import code_version  # noqa: E402
from bench_learners import SPACES, QUICK_DARTS, make_learner, run_steps  # noqa: E402
from hwnas.io import atomic_write_json  # noqa: E402
from hwnas.hwcost import describe_device  # noqa: E402
from hwnas.supernet import _batchnorm  # noqa: E402
from hwnas.supernet._batchnorm import batch_normalization, nnabla_batchnorm  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
#: The DARTS space's shapes, then two small ones either side of MIN_ELEMENTS.
SHAPES = [(32, 16, 32, 32), (32, 32, 16, 16), (32, 64, 8, 8), (64, 16, 8, 8), (32, 8, 8, 8)]
KERNELS = ("numpy", "nnabla")


def bn_graph(shape: tuple[int, ...], affine: bool, kernel: str, scope: str):
    x = nn.Variable(shape, need_grad=True)
    with nn.parameter_scope(scope):
        if kernel == "numpy":
            minimum, _batchnorm.MIN_ELEMENTS = _batchnorm.MIN_ELEMENTS, 0
            try:
                y = batch_normalization(x, batch_stat=True, decay_rate=0.9, name="bn",
                                        no_scale=not affine, no_bias=not affine)
            finally:
                _batchnorm.MIN_ELEMENTS = minimum
        else:
            with nnabla_batchnorm():
                y = batch_normalization(x, batch_stat=True, decay_rate=0.9, name="bn",
                                        no_scale=not affine, no_bias=not affine)
        params = nn.get_parameters(grad_only=True)
    return x, y, list(params.values())


def bench_layer(shape: tuple[int, ...], affine: bool, repeats: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    xd, dy = rng.normal(1, 2, shape), rng.normal(size=shape)
    graphs = {}
    for kernel in KERNELS:
        nn.clear_parameters()
        x, y, params = bn_graph(shape, affine, kernel, kernel)
        x.d = xd
        graphs[kernel] = (x, y, params)
    outputs = {}
    for kernel, (x, y, params) in graphs.items():
        x.grad.zero()
        for p in params:
            p.grad.zero()
        y.forward()
        y.backward(dy)
        outputs[kernel] = [y.d.copy(), x.g.copy()] + [p.g.copy() for p in params]
    same = all(np.allclose(a, b, rtol=1e-4, atol=1e-3)
               for a, b in zip(outputs["numpy"], outputs["nnabla"]))
    times: dict[str, dict[str, list[float]]] = {k: {"forward": [], "backward": []}
                                                for k in KERNELS}
    for i in range(repeats + 2):
        for kernel in (KERNELS if i % 2 else KERNELS[::-1]):
            _, y, _ = graphs[kernel]
            t0 = time.perf_counter()
            y.forward()
            t1 = time.perf_counter()
            y.backward(dy)
            t2 = time.perf_counter()
            if i >= 2:
                times[kernel]["forward"].append(t1 - t0)
                times[kernel]["backward"].append(t2 - t1)
    result = {"shape": list(shape), "affine": affine, "same_results": bool(same)}
    for kernel in KERNELS:
        f = float(np.median(times[kernel]["forward"])) * 1e3
        b = float(np.median(times[kernel]["backward"])) * 1e3
        result[kernel] = {"forward_ms": f, "backward_ms": b, "total_ms": f + b}
    result["ratio"] = result["numpy"]["total_ms"] / result["nnabla"]["total_ms"]
    return result


def bench_step(settings: dict, batch: int, steps: int, seed: int) -> dict:
    learners, warmups = {}, {}
    rng = {k: np.random.default_rng(seed) for k in KERNELS}
    for kernel in KERNELS:
        if kernel == "numpy":
            learners[kernel] = make_learner("darts", settings, "darts1", batch, seed)
            warmups[kernel] = run_steps(learners[kernel], 1, rng[kernel])[0]
        else:
            with nnabla_batchnorm():  # the graphs are built in the first step
                learners[kernel] = make_learner("darts", settings, "darts1", batch, seed)
                warmups[kernel] = run_steps(learners[kernel], 1, rng[kernel])[0]
    timed: dict[str, list[dict]] = {k: [] for k in KERNELS}
    for i in range(steps):
        for kernel in (KERNELS if i % 2 == 0 else KERNELS[::-1]):
            timed[kernel] += run_steps(learners[kernel], 1, rng[kernel], start=1 + i)
    result = {"settings": settings, "batch": batch, "variant": "darts1", "warmup": warmups,
              "steps": timed}
    for kernel in KERNELS:
        result[kernel] = {"seconds_per_step": float(np.median([s["seconds"]
                                                               for s in timed[kernel]]))}
    result["ratio"] = result["numpy"]["seconds_per_step"] / result["nnabla"]["seconds_per_step"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="step on the DARTS space with cells 5, channels 8, batch 8")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per kernel")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per layer shape")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "batchnorm.json")
    args = parser.parse_args()
    if args.steps < 1 or args.repeats < 1:
        parser.error(f"--steps and --repeats must be >= 1, got {args.steps}, {args.repeats}")
    began, load_before, code = time.perf_counter(), os.getloadavg(), code_version()

    layers = []
    print(f"{'shape':18} {'affine':6} {'numpy ms':>9} {'nnabla ms':>9} {'ratio':>6}", flush=True)
    for shape in SHAPES:
        for affine in (False, True):
            r = bench_layer(shape, affine, args.repeats, args.seed)
            layers.append(r)
            print(f"{str(tuple(shape)):18} {str(affine):6} {r['numpy']['total_ms']:9.2f} "
                  f"{r['nnabla']['total_ms']:9.2f} {r['ratio']:6.2f}"
                  + ("" if r["same_results"] else "  DIFFERENT RESULTS"), flush=True)
    nn.clear_parameters()

    settings = {**SPACES["darts"], **(QUICK_DARTS if args.quick else {})}
    batch = 8 if args.quick else 32
    step = bench_step(settings, batch, args.steps, args.seed)
    print(f"first-order DARTS step, DARTS space cells {settings['cells']} channels "
          f"{settings['channels']} batch {batch}: numpy BN {step['numpy']['seconds_per_step']:.2f}"
          f" s, nnabla BN {step['nnabla']['seconds_per_step']:.2f} s, ratio {step['ratio']:.3f}",
          flush=True)
    out = {
        "bench": "batchnorm", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpu": describe_device("cpu"), "cores": os.cpu_count(),
                    "python": platform.python_version(), "nnabla": nn.__version__,
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "protocol": {"layers": "median wall ms of forward + backward, kernels alternating, "
                               "after 2 untimed rounds",
                     "step": "median wall s of arch_step + train_step, kernels alternating, "
                             "after 1 warm-up step each"},
        "code": code, "quick": args.quick, "seconds": time.perf_counter() - began,
        "layers": layers, "step": step,
    }
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0 if all(r["same_results"] for r in layers) else 1


if __name__ == "__main__":
    sys.exit(main())
