"""What every command shares: a one-line-error parser and the printing of results."""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from hwnas.pareto import ParetoFront
from hwnas.objectives import Evaluation


class UsageError(Exception):
    """A command line that does not parse; exits with status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), not usage + error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def add_quiet(p: argparse.ArgumentParser) -> None:
    """The ``--quiet`` flag of commands with progress bars."""
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def print_front(pareto: ParetoFront, out=None) -> None:
    """Prints the front as a table, most accurate first."""
    out = out or sys.stdout
    table = pareto.table()
    cols = ["key", "accuracy", *[o for o in pareto.objectives if o != "error"]]
    print(f"Pareto front: {len(table)} subnets ({', '.join(pareto.objectives)} minimised)",
          file=out)
    table = table.sort_values("accuracy", ascending=False)[cols]
    for name in ("params", "macs", "memory_bytes"):
        if name in table:
            table[name] = table[name].astype("int64")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"), file=out)


def describe(evaluation: Evaluation) -> str:
    """One line naming a subnet and its numbers."""
    c = evaluation.costs
    how = f"{c.protocol.statistic}, batch {c.protocol.batch_size}, {c.protocol.context}"
    latency = (f"{c.latency_ms:.4f} ± {c.latency_uncertainty_ms:.4f} ms (predicted; {how})"
               if c.latency_source == "predicted" else f"{c.latency_ms:.4f} ms ({how})")
    return (f"{evaluation.arch.key}\n  val accuracy {evaluation.metrics['accuracy']:.4f}  "
            f"latency {latency}  params {c.params}  MACs {c.macs}  memory {c.memory_bytes} B")
