"""The commands that show a run: report (report.html) and dashboard (optuna-dashboard)."""
from __future__ import annotations

import argparse

from hwnas import run as steps
from hwnas.run import dashboard
from hwnas.errors import HwnasError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write report.html: the run on one page",
                       description="Write report.html in the run directory: the experiment, "
                       "the supernet's training curves, the Pareto front and hypervolume, a "
                       "drawing of the selected subnet, its costs predicted and measured, the "
                       "budgets met, the retrained accuracy, the exported files and how to "
                       "reproduce the run. One self-contained file (images embedded) that "
                       "opens offline. A section whose input is missing names the command "
                       "that produces it; nothing else in the run directory is changed.")
    p.add_argument("run", help="run directory")
    p.set_defaults(func=cmd_report, writes="exclusive")

    p = sub.add_parser("dashboard", help="open the run's study in optuna-dashboard",
                       description="Serve optuna-dashboard on the run's study (study.journal, "
                       "or the database study named in storage.json), read-only, until "
                       "Ctrl-C. Prints the URL to open.")
    p.add_argument("run", help="run directory")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only)")
    # Ctrl-C is how a dashboard ends (status 0); before it serves, it is an interrupt (130).
    p.set_defaults(func=cmd_dashboard, resumes=False, ctrl_c_ends=True)


def cmd_report(args: argparse.Namespace) -> None:
    run = steps.RunDir.open(args.run, writer=args.writer)
    print(f"wrote {steps.write_report(run)}")


def cmd_dashboard(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise HwnasError(f"--port must lie in 0..65535, got {args.port}")
    run = steps.RunDir.open(args.run, writer=args.writer)
    dashboard.serve(run, args.host, args.port,
          announce=lambda url: print(f"optuna-dashboard on {url} (read-only); Ctrl-C to stop",
                                     flush=True))
    print("dashboard stopped")
