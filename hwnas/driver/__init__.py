"""The search loop: ask a strategy, evaluate (here, in worker processes, on Dask), tell."""
from __future__ import annotations

from hwnas.driver.loop import MAX_FAILURES, MAX_REPEATS, DriveResult, drive
from hwnas.driver.pools import DaskPool, ProcessPool
from hwnas.driver.worker import work

__all__ = ["DaskPool", "DriveResult", "MAX_FAILURES", "MAX_REPEATS", "ProcessPool", "drive",
           "work"]
