"""The run's JSON files read back: one loader per file, each checking the shape it reads.

Every reader of one of these files goes through its loader, so that valid JSON of a
wrong shape (a list for a mapping, a missing key) is one line naming the file and the
field, never a ``KeyError`` three calls later. The library-owned formats have theirs in
their library: export.json in :mod:`hwnas.deploy`, lut.json in :mod:`hwnas.hwcost`,
storage.json in :mod:`hwnas.studies`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hwnas.arch import Arch
from hwnas.errors import RunDirError
from hwnas.io import read_json_record
from hwnas.run.files import RunDir

_COSTS = {"params": float, "macs": float, "memory_bytes": float, "latency_ms": float,
          "latency_source?": str, "latency_uncertainty_ms?": float, "protocol?": dict}
SELECTED = {"key": str, "arch": {str: str}, "budgets": {str: float},
            "metrics": {"accuracy": float, "error": float}, "costs": _COSTS,
            "latency_ms_predicted?": float, "latency_ms_measured?": float,
            "measured_protocol?": dict, "rejected_after_measurement?": {str: float}}
MEASURED = {str: {"latency_ms": float, "protocol": dict}}
DERIVED = {"key": str, "choices": {str: str}, "learner?": str, "probabilities?": dict,
           "regularizer?": dict}
SEARCH_STATS = {"evaluated": int, "cached": int, "failed": int, "seconds": float}
RETRAIN_CLAIM = {"key": str, "arch": {str: str}, "recipe": dict}
RETRAIN_RESULT = {**RETRAIN_CLAIM, "test_accuracy": float, "val_accuracy": float,
                  "supernet_val_accuracy?": float, "supernet_test_accuracy?": float,
                  "epochs?": int, "seconds?": float, "test_examples?": int, "weights?": str}
_CORRELATION = {"kendall_tau": (float, None), "kendall_tau_interval": ([float], None),
                "spearman_rho": (float, None), "spearman_rho_interval": ([float], None)}
RANK_CHECK = {"recipe": dict, "seeds": int, "selected": (str, None), "budgets?": {str: float},
              "subnets": [{"key": str, "arch": {str: str}, "estimate": float,
                           "estimate_test": (float, None), "val_accuracy": float,
                           "test_accuracy": float, "val_accuracies": [float],
                           "test_accuracies": [float], "retrain_dirs": [str], "selected": bool,
                           "within_budgets?": bool}],
              "val": _CORRELATION, "test": _CORRELATION, "top_k": int, "top_k_overlap": float,
              "regret": (float, None), "seed_noise_sd": (float, None), "trust_gap": float,
              "verdict": str, "bootstrap?": dict, "seconds?": float}


def _with_arch(path: Path, record: dict[str, Any] | None, field: str, remedy: str) -> Any:
    """``record`` once its ``key`` is the key of its subnet ``record[field]``."""
    if record is None:
        return None
    try:
        key = Arch(record[field]).key
    except ValueError as exc:
        raise RunDirError(f"{path} is damaged: '{field}' {exc}; {remedy}") from None
    if key != record["key"]:
        raise RunDirError(f"{path} is damaged: 'key' {record['key']!r} is not the key of "
                          f"'{field}' ({key!r}); {remedy}")
    return record


def read_selected(run: RunDir) -> dict[str, Any] | None:
    """selected.json; None before ``hwnas select``."""
    path, remedy = run / RunDir.SELECTED, f"rerun 'hwnas select {run.path}'"
    return _with_arch(path, read_json_record(path, SELECTED, remedy=remedy), "arch", remedy)


def read_measured(run: RunDir) -> dict[str, dict[str, Any]]:
    """measured.json: whole-subnet latencies by key; empty before any was measured."""
    path = run / RunDir.MEASURED
    return read_json_record(path, MEASURED, remedy="delete it to measure again") or {}


def read_derived(run: RunDir) -> dict[str, Any] | None:
    """derived.json; None when the learner derives no architecture."""
    path, remedy = run / RunDir.DERIVED, "rerun 'hwnas train' to derive it again"
    return _with_arch(path, read_json_record(path, DERIVED, remedy=remedy), "choices", remedy)


def read_search_stats(run: RunDir) -> dict[str, Any] | None:
    """search_stats.json, the counts of the last ``hwnas search``; None before one."""
    return read_json_record(run / RunDir.SEARCH_STATS, SEARCH_STATS,
                            remedy=f"rerun 'hwnas search {run.path}' to write it again")


def read_retrain_claim(where: Path) -> dict[str, Any] | None:
    """``retrain/DIGEST/arch.json``: the subnet and recipe that directory trains."""
    path, remedy = where / RunDir.RETRAIN_CLAIM, f"move {where} away to retrain from scratch"
    return _with_arch(path, read_json_record(path, RETRAIN_CLAIM, remedy=remedy), "arch", remedy)


def read_retrain_result(where: Path) -> dict[str, Any] | None:
    """``retrain/DIGEST/result.json``; None before that retraining finished."""
    path, remedy = where / RunDir.RETRAIN_RESULT, "rerun 'hwnas retrain'"
    return _with_arch(path, read_json_record(path, RETRAIN_RESULT, remedy=remedy), "arch", remedy)


def read_rank_check(run: RunDir) -> dict[str, Any] | None:
    """rank_check.json; None before ``hwnas rank-check``."""
    path = run / RunDir.RANK_CHECK
    record = read_json_record(path, RANK_CHECK,
                              remedy=f"rerun 'hwnas rank-check {run.path}' to write it again")
    if record is not None and len(record["subnets"]) < 2:
        raise RunDirError(f"{path} is damaged: 'subnets' holds fewer than 2; "
                          f"rerun 'hwnas rank-check {run.path}' to write it again")
    return record
