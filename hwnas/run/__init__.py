"""A run directory and the steps that fill it: train, lut, search, select, retrain, export, report.

The application layer: it stands on the library packages (data, supernet, hwcost,
evaluate, strategies, studies, pareto, driver, deploy) and the CLI stands on it.
"""
from __future__ import annotations

from hwnas.run.check_space import check_space_spec
from hwnas.run.compare import compare
from hwnas.run.dashboard import dashboard_server, serve
from hwnas.run.export import deploy_subnet, export
from hwnas.run.files import RunDir, Writer, configure_run
from hwnas.run.lut import check as check_table
from hwnas.run.lut import ensure_table, load_table, make_profiler, plot_check, profile
from hwnas.run.rank_check import rank_check
from hwnas.run.records import (read_derived, read_measured, read_rank_check, read_retrain_claim,
                               read_retrain_result, read_search_stats, read_selected)
from hwnas.run.report import write_report
from hwnas.run.retrain import read_arch_json, retrain, retrain_dir, retrained_subnet
from hwnas.run.search import (create_study, failed_subnets_of, run_worker, search,
                              study_name)
from hwnas.run.select import (front, front_table, remeasure, select, selected_arch,
                              strategies_of, unmeasured)
from hwnas.run.train import derived_arch, ranking_caveat, train, write_derived
from hwnas.run.workspace import (Workspace, check_trained, make_evaluator, set_context,
                                 space_from_config, worker_evaluator, workspace)

__all__ = ["RunDir", "Workspace", "check_space_spec", "check_table", "check_trained", "compare",
           "configure_run",
           "create_study", "dashboard_server", "deploy_subnet", "derived_arch", "ensure_table",
           "export", "failed_subnets_of", "front", "front_table", "load_table", "make_evaluator",
           "make_profiler", "plot_check", "profile", "rank_check", "ranking_caveat", "read_arch_json",
           "read_derived", "read_measured", "read_rank_check", "read_retrain_claim",
           "read_retrain_result", "read_search_stats", "read_selected", "remeasure", "retrain",
           "retrain_dir",
           "retrained_subnet", "run_worker", "search", "select", "selected_arch", "serve",
           "set_context", "space_from_config", "strategies_of", "study_name", "train", "unmeasured",
           "Writer", "workspace", "worker_evaluator", "write_derived", "write_report"]
