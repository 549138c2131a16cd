"""DARTS weighted sum: K broadcasting multiplications against one stacked matrix product.

A DARTS mixed operation outputs sum_k w_k * o_k with w = softmax(alpha). Both
forms of ``hwnas.supernet._weighted`` are timed, forward plus backward (to
alpha and to every o_k), on nnabla's default CPU context:

(a) ``weighted_sum_broadcast``: K ``F.mul2(o_k, w_k)`` with w_k broadcast
    from (1, 1, 1, 1), then ``F.add_n``;
(b) ``weighted_sum_stacked``: ``F.stack`` to (K, M), one ``F.affine`` with w
    as a (1, K) row, reshaped back.

For K in (5, 8, 13) and outputs of (32, 16, 32, 32), (32, 64, 8, 8) and
(64, 32, 16, 16). Each number is the median per-call thread CPU time of the
timed rounds after warm-up rounds; (a) and (b) alternate within every round,
in swapped order every other round, so that load from elsewhere on a shared
machine hits both alike. Before timing, (a) and (b) must give the same output
and the same gradients (np.allclose). The verdict is the geometric mean of the
ratios b/a over the shapes (below 1: the stacked form is faster).

    .venv/bin/python bench/bench_mixed_sum.py [--quick] [--repeats 9] [--warmup 2]

Writes bench/results/mixed_sum.json.
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
import nnabla.functions as F  # noqa: E402
import numpy as np  # noqa: E402

from hwnas.io import atomic_write_json  # noqa: E402
from hwnas.hwcost import describe_device  # noqa: E402
from hwnas.supernet._weighted import weighted_sum_broadcast, weighted_sum_stacked  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
KS = (5, 8, 13)
SHAPES = ((32, 16, 32, 32), (32, 64, 8, 8), (64, 32, 16, 16))
METHODS = {"broadcast": weighted_sum_broadcast, "stacked": weighted_sum_stacked}
#: float32 sums in another order: outputs agree to rounding, the alpha gradient
#: (a sum over N*C*H*W products) to its accumulated rounding.
TOLERANCE = {"output": dict(rtol=1e-5, atol=1e-5), "alpha_grad": dict(rtol=1e-4, atol=1e-3),
             "outputs_grad": dict(rtol=1e-5, atol=1e-6)}


class Case:
    """One K and output shape: shared leaves, a random upstream gradient, one graph per method."""

    def __init__(self, k: int, shape: tuple[int, ...], rng: np.random.Generator) -> None:
        self.alpha = nn.Variable.from_numpy_array(rng.standard_normal(k).astype(np.float32),
                                                  need_grad=True)
        self.outputs = [nn.Variable.from_numpy_array(
            rng.standard_normal(shape).astype(np.float32), need_grad=True) for _ in range(k)]
        self.dy = rng.standard_normal(shape).astype(np.float32)
        self.graphs = {name: method(self.outputs, F.softmax(self.alpha, axis=0))
                       for name, method in METHODS.items()}

    def zero_grad(self) -> None:
        for leaf in (self.alpha, *self.outputs):
            leaf.grad.zero()

    def step(self, name: str) -> tuple[int, int]:
        """One forward and backward pass of ``name`` from zeroed gradients, as in training.

        Returns its thread CPU ns and its wall ns.
        """
        self.zero_grad()
        y = self.graphs[name]
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        y.forward(clear_no_need_grad=True)
        y.backward(self.dy, clear_buffer=True)
        return time.thread_time_ns() - cpu, time.perf_counter_ns() - wall

    def agreement(self) -> dict:
        """Max absolute differences of (b) from (a), and whether each is within ``TOLERANCE``."""
        got = {}
        for name, y in self.graphs.items():
            self.zero_grad()
            y.forward(clear_no_need_grad=True)
            out = y.d.copy()  # before backward's clear_buffer may reuse the memory
            y.backward(self.dy, clear_buffer=True)
            got[name] = {"output": out, "alpha_grad": self.alpha.g.copy(),
                         "outputs_grad": np.stack([o.g for o in self.outputs])}
        a, b = got["broadcast"], got["stacked"]
        return {key: {"max_abs_diff": float(np.max(np.abs(a[key] - b[key]))),
                      "agree": bool(np.allclose(b[key], a[key], **TOLERANCE[key]))}
                for key in TOLERANCE}


def bench_case(k: int, shape: tuple[int, ...], warmup: int, repeats: int, seed: int) -> dict:
    case = Case(k, shape, np.random.default_rng(seed))
    agreement = case.agreement()
    names = list(METHODS)
    cpu: dict[str, list[int]] = {name: [] for name in names}
    wall: dict[str, list[int]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            cpu_ns, wall_ns = case.step(name)
            if round_ >= warmup:
                cpu[name].append(cpu_ns)
                wall[name].append(wall_ns)
    ms = {name: float(np.median(cpu[name])) / 1e6 for name in names}
    p25, p75 = ({name: float(np.percentile(cpu[name], q)) / 1e6 for name in names}
                for q in (25, 75))
    return {"k": k, "shape": list(shape), "elements": int(np.prod(shape)),
            "ms": ms, "spread": {n: (p75[n] - p25[n]) / ms[n] for n in names},
            "wall_ms": {name: float(np.median(wall[name])) / 1e6 for name in names},
            "ratio_stacked_broadcast": ms["stacked"] / ms["broadcast"],
            "agreement": agreement}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="K = 5 only, 3 timed rounds after 1 warm-up round")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds per shape (default 9; 3 with --quick)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed rounds per shape first (default 2; 1 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "mixed_sum.json",
                        help="result JSON")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 9)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if repeats < 1 or warmup < 0:
        parser.error(f"--repeats must be >= 1 and --warmup >= 0, got {repeats} and {warmup}")
    ks = KS[:1] if args.quick else KS
    args.out.parent.mkdir(parents=True, exist_ok=True)

    print(f"{'K':>3} {'N, C, H, W':>17} {'broadcast ms':>12} {'stacked ms':>10} "
          f"{'b/a':>6}  agree", flush=True)
    results = []
    for k in ks:
        for shape in SHAPES:
            r = bench_case(k, shape, warmup, repeats, args.seed)
            results.append(r)
            agree = all(c["agree"] for c in r["agreement"].values())
            print(f"{k:3d} {str(shape):>17} {r['ms']['broadcast']:12.2f} "
                  f"{r['ms']['stacked']:10.2f} {r['ratio_stacked_broadcast']:6.3f}  "
                  f"{'yes' if agree else 'NO'}", flush=True)
    geomean = float(np.exp(np.mean(np.log([r["ratio_stacked_broadcast"] for r in results]))))
    faster = "stacked" if geomean < 1.0 else "broadcast"
    verdict = (f"{faster} is faster: stacked/broadcast time ratio {geomean:.3f} "
               f"(geometric mean over {len(results)} shapes)")
    all_agree = all(c["agree"] for r in results for c in r["agreement"].values())
    out = {
        "bench": "mixed_sum", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpu": describe_device("cpu"), "cores": os.cpu_count(),
                    "python": platform.python_version(), "nnabla": nn.__version__,
                    "context": str(nn.get_current_context()),
                    "load_average": os.getloadavg()},
        "protocol": {"statistic": "median per-call thread CPU time (ms) of forward + backward",
                     "warmup_rounds": warmup, "timed_rounds": repeats,
                     "interleaved": "a, b then b, a in alternate rounds",
                     "tolerance": TOLERANCE},
        "methods": {"a": "broadcast", "b": "stacked"},
        "results": results,
        "geomean_ratio_stacked_broadcast": geomean,
        "faster": faster, "verdict": verdict, "all_agree": all_agree,
    }
    atomic_write_json(args.out, out)
    print(verdict)
    if not all_agree:
        print("(a) and (b) DISAGREE on some shape: see 'agreement' in the JSON")
    print(f"wrote {args.out}")
    return 0 if all_agree else 1


if __name__ == "__main__":
    sys.exit(main())
