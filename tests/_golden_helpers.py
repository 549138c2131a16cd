"""The trials of a search as plain, comparable values (for the golden-search test)."""
from __future__ import annotations

from pathlib import Path

import optuna


def comparable_trials(run: Path) -> list[dict]:
    """Every trial of ``run``'s journal study, in order: state, params, values, constraints
    and the user attrs that say what was evaluated (key, strategy, cached, metrics, costs
    other than the measurement's timing)."""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run / "study.journal")))
    study = optuna.load_study(study_name="hwnas", storage=storage)
    out = []
    for t in study.get_trials(deepcopy=False):
        attrs = dict(t.user_attrs)
        costs = {k: v for k, v in (attrs.get("costs") or {}).items()
                 if k in ("latency_ms", "params", "macs", "memory_bytes", "latency_source")}
        out.append({"state": t.state.name, "params": dict(t.params), "values": t.values,
                    "constraints": dict(t.constraints),
                    "key": attrs.get("key"), "strategy": attrs.get("strategy"),
                    "cached": attrs.get("cached"), "generation": attrs.get("generation"),
                    "proposal": attrs.get("proposal"), "metrics": attrs.get("metrics"),
                    "costs": costs})
    return out
