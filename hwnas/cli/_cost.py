"""The latency commands: lut (build and calibrate the run's table) and profile (check it)."""
from __future__ import annotations

import argparse

from hwnas import run as steps
from hwnas.cli._common import add_quiet
from hwnas.errors import HwnasError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lut", help="build (or reuse) and calibrate the run's latency table",
                       description="Measure every unit of the search space (stem, every "
                       "option of every block at the shape it sees, head) on the configured "
                       "device, calibrate their sums on whole subnets and write lut.json. A "
                       "table measured on the same device under the same protocol is reused; "
                       "any other is rebuilt, and the reason printed. Weights do not change "
                       "latency, so the supernet need not be trained. Measurements wait for "
                       "the device to be quiet: keep other work off the machine meanwhile.")
    p.add_argument("run", help="run directory")
    p.add_argument("--rebuild", action="store_true", help="measure again even if lut.json fits")
    add_quiet(p)
    p.set_defaults(func=cmd_lut, writes="exclusive")

    p = sub.add_parser("profile", help="check the latency table against whole subnets",
                       description="Measure N random subnets whole (none of those the table "
                       "was calibrated on) and compare them with the table's predictions: "
                       "share within 10 %, Spearman correlation, RMSE and the worst cases. "
                       "Writes profile.json and profile.png (predicted against measured); "
                       "builds lut.json first when it is missing or does not fit.")
    p.add_argument("run", help="run directory")
    p.add_argument("--check", type=int, default=100, metavar="N",
                   help="subnets to measure whole (default: 100)")
    add_quiet(p)
    p.set_defaults(func=cmd_profile, writes="exclusive")


def cmd_lut(args: argparse.Namespace) -> None:
    run = steps.RunDir.open(args.run, writer=args.writer)
    path = run / steps.RunDir.LUT
    before = path.stat().st_mtime_ns if path.exists() else None
    ws = steps.workspace(run, trained=False, progress=not args.quiet)
    table = steps.ensure_table(run, ws, progress=not args.quiet, rebuild=args.rebuild,
                               speed=True, repair=True)
    reused = before is not None and path.stat().st_mtime_ns == before
    p, cal = table.protocol, table.calibration
    print(f"latency table: {len(table.entries)} units on {table.device} ({p.context}, "
          f"{p.statistic} of {p.repeats} forwards, batch {p.batch_size}); per-forward "
          f"overhead {table.overhead_ms:.4f} ms")
    print(f"calibration on {cal.n} subnets measured whole: latency = {cal.a:.3f} x table sum "
          f"{'+' if cal.b >= 0 else '-'} {abs(cal.b):.4f} ms; residual {cal.residual_std_ms:.4f} "
          f"ms ({cal.relative_std:.1%})")
    print(f"{'reused' if reused else 'wrote'} {path}")


def cmd_profile(args: argparse.Namespace) -> None:
    if args.check < 1:
        raise HwnasError(f"--check must be >= 1, got {args.check}")
    run = steps.RunDir.open(args.run, writer=args.writer)
    ws = steps.workspace(run, trained=False, progress=not args.quiet)
    report = steps.profile(run, ws, args.check, progress=not args.quiet)
    rho = report["spearman"]
    print(f"latency table checked on {report['n']} subnets measured whole on {report['device']} "
          "(none of them used in calibration):")
    print(f"  within +-10 %: {report['within_10pct']:.0%}  Spearman "
          f"{'n/a' if rho is None else f'{rho:.4f}'}  RMSE {report['rmse_ms']:.4f} ms  "
          f"MAPE {report['mape']:.1%}  bias {report['bias']:+.1%}")
    print("  worst predictions:")
    for w in report["worst"]:
        print(f"    {w['key']}: predicted {w['predicted_ms']:.4f} ms, measured "
              f"{w['measured_ms']:.4f} ms ({w['error_pct']:+.1f} %)")
    if report["warning"]:
        print(f"warning: {report['warning']}")
    print(f"wrote {run / steps.RunDir.PROFILE} and {run / steps.RunDir.PROFILE_PLOT}")
