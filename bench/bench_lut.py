"""Latency-table accuracy: build, calibrate and check the table of two spaces on this machine.

Issue 3's targets, per space: at least 95 % of 100 random subnets predicted
within 10 % of their measured latency, Spearman >= 0.98, and the table
(units + calibration) built in at most 2 minutes. Writes bench/results/lut.json
and a predicted-against-measured plot per space beside it.

    .venv/bin/python bench/bench_lut.py [--check 100] [--only digits]

The default protocol is the one that reaches the targets on a shared, noisy
machine: the 10th percentile of 30 timed forwards (``wall_p10``; a measurement
keeps its value when a few calls are slowed) with ``max_spread`` 1.0, since
the interquartile spread of a partly disturbed measurement is wide while its
10th percentile is right; every measurement is also gated by the probe
network (see ``hwnas.hwcost.measure_gated``).
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

from hwnas.io import atomic_write_json  # noqa: E402
from hwnas.config import LatencyConfig  # noqa: E402
from hwnas.errors import MeasurementError  # noqa: E402
from hwnas.hwcost import LatencyTable, NnablaProfiler, describe_device  # noqa: E402
from hwnas.run.lut import check, plot_check  # noqa: E402
from hwnas.supernet import create_space  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
#: The digits experiment's space (experiments/digits.yaml) and a CIFAR-shaped chain.
SPACES = {
    "digits": dict(input_shape=(1, 8, 8), n_classes=10, stem_channels=16,
                   stages=[(16, 2, 1), (24, 2, 2), (32, 2, 2)], kernels=[3, 5, 7],
                   expansions=[3, 6], head_channels=64),
    "cifar10": dict(input_shape=(3, 32, 32), n_classes=10, stem_channels=16,
                    stages=[(16, 1, 1), (24, 2, 2), (32, 2, 2), (64, 2, 2)],
                    kernels=[3, 5, 7], expansions=[3, 6], head_channels=64),
}


def bench_space(name: str, config: LatencyConfig, n_check: int, seed: int, plot: Path) -> dict:
    nn.clear_parameters()
    space = create_space("mobilenet", **SPACES[name])
    profiler = NnablaProfiler(config)
    nn.seed(seed)
    supernet = space.supernet()
    # As 'hwnas lut' does: units and calibration subnets in one measurement session.
    start = time.perf_counter()
    table = LatencyTable.build(space, profiler, supernet=supernet,
                               calibration_samples=config.calibration_samples,
                               rng=np.random.default_rng(seed))
    build_s = time.perf_counter() - start
    report = check(table, space, supernet, profiler, n_check, np.random.default_rng(seed + 1))
    plot_check(report, str(plot))
    cal = table.calibration
    return {
        "space": SPACES[name], "subnets": space.size, "units": len(table.entries),
        "build_seconds": build_s,
        "calibration": {"a": cal.a, "b": cal.b, "residual_std_ms": cal.residual_std_ms,
                        "relative_std": cal.relative_std, "n": cal.n},
        "check_seconds": report["seconds"], "measurement": {
            "table": table.info["build"], "check": report["measurement"]},
        "warning": report["warning"],
        **{k: report[k] for k in ("n", "within_10pct", "spearman", "rmse_ms", "mape", "bias",
                                  "within_2sigma", "worst", "probe_ms", "table_probe_ms")},
        "measured_ms_range": [min(s["measured_ms"] for s in report["samples"]),
                              max(s["measured_ms"] for s in report["samples"])],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=int, default=100, help="subnets measured to check")
    parser.add_argument("--repeats", type=int, default=30, help="timed forwards per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--statistic", default="wall_p10")
    parser.add_argument("--max-spread", type=float, default=1.0)
    parser.add_argument("--calibration", type=int, default=20, help="calibration subnets")
    parser.add_argument("--only", choices=sorted(SPACES), action="append")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "lut.json", help="result JSON")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    config = LatencyConfig(repeats=args.repeats, warmup=args.warmup, statistic=args.statistic,
                           max_spread=args.max_spread,
                           calibration_samples=args.calibration)
    results = {}
    for name in args.only or list(SPACES):
        try:
            results[name] = bench_space(name, config, args.check, args.seed,
                                        args.out.with_name(f"{args.out.stem}_{name}.png"))
        except MeasurementError as exc:
            results[name] = {"error": str(exc)}
    out = {
        "bench": "lut", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpu": describe_device("cpu"), "cores": os.cpu_count(),
                    "python": platform.python_version(), "nnabla": nn.__version__,
                    "load_average": os.getloadavg()},
        "protocol": {"repeats": config.repeats, "warmup": config.warmup,
                     "statistic": config.statistic, "max_spread": config.max_spread,
                     "retries": config.retries, "calibration_samples": config.calibration_samples},
        "targets": {"within_10pct": 0.95, "spearman": 0.98, "build_seconds": 120},
        "results": results,
    }
    atomic_write_json(args.out, out)
    print(f"{'space':8} {'units':>5} {'build s':>8} {'a':>6} {'b ms':>7} {'within10':>8} "
          f"{'spearman':>8} {'rmse ms':>8} {'mape':>6} {'check s':>7}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:8} failed: {r['error']}")
            continue
        c = r["calibration"]
        print(f"{name:8} {r['units']:5d} {r['build_seconds']:8.1f} {c['a']:6.3f} {c['b']:7.3f} "
              f"{r['within_10pct']:8.0%} {r['spearman']:8.4f} {r['rmse_ms']:8.4f} "
              f"{r['mape']:6.1%} {r['check_seconds']:7.1f}")
    print(f"wrote {args.out}")
    ok = all("error" not in r and r["within_10pct"] >= 0.95 and r["spearman"] >= 0.98
             and r["build_seconds"] <= 120 for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
