"""What the benchmarks share."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def code_version() -> dict:
    """The commit and the files changed since, of the code measured (read when the run starts)."""
    from hwnas.run.source import source_state

    return source_state(ROOT) or {"commit": "", "modified": []}


def trained_digits(path: Path, trials: int, batch: int | None = None):
    """The digits experiment trained for 1 epoch, with its latency table, in ``path``.

    Evaluating a subnet takes the same time however well the supernet is
    trained, so one epoch does for benchmarks of the search. The table gets a
    few tries: a shared machine's busy spell can make a build fail.
    """
    import time

    from hwnas import run as steps
    from hwnas.run.files import configure_run
    from hwnas.errors import MeasurementError

    overrides = {"train.epochs": 1, "search.trials": trials}
    if batch is not None:
        overrides["search.batch"] = batch
    run = configure_run(str(ROOT / "experiments" / "digits.yaml"), str(path), overrides)
    steps.train(run, progress=False)
    for attempt in range(4):
        try:
            steps.ensure_table(run, steps.workspace(run, progress=False), progress=False)
            return run
        except MeasurementError as exc:
            if attempt == 3:
                raise
            print(f"latency table: {exc}; trying again in 30 s", flush=True)
            time.sleep(30)
