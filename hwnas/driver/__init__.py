"""The search loop: ask a strategy, evaluate (here, in worker processes, on Dask), tell; the
loop, not the strategy, opens and completes the study's trials."""
from __future__ import annotations

from hwnas.driver.books import (INFEASIBLE, UNEVALUABLE, Books, Rules, failed_subnets,
                                infeasible_subnets)
from hwnas.driver.loop import (MAX_FAILURES, MAX_REPEATS, RETRIES, DriveResult, Sharing, checked,
                               drive)
from hwnas.driver.pools import DaskPool, ProcessPool
from hwnas.driver.worker import DatabaseSharing, work

__all__ = ["Books", "DaskPool", "DatabaseSharing", "DriveResult", "INFEASIBLE", "MAX_FAILURES",
           "MAX_REPEATS", "ProcessPool", "RETRIES", "Rules", "Sharing", "UNEVALUABLE", "checked",
           "drive", "failed_subnets", "infeasible_subnets", "work"]
