"""The rank check: subnets of the study trained alone, and how well the supernet ranked them.

``hwnas rank-check`` picks subnets spread evenly over the ranks of the study's estimates
(validation accuracy with inherited weights; the selected subnet always among them),
retrains each from scratch with the run's retrain recipe through :func:`retrain` (so each
retraining resumes per epoch and one already finished is reused), with ``seeds`` seeds each,
then compares the two rankings (:mod:`hwnas.ranking`) and writes rank_check.json and
rank_check.png.

Seed 0 of a subnet is the run's seed in the directory ``hwnas retrain`` uses,
``retrain/DIGEST/``, whenever that directory is free or already trains this recipe; further
seeds (the run's seed + 1, + 2, ...) and other recipes get directories of their own,
``retrain_dir(run, key, seed=..., recipe=...)``, so ``hwnas retrain``'s claims never change.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hwnas import ranking
from hwnas.budgets import excess
from hwnas.errors import HwnasError, RunDirError
from hwnas.io import atomic_write_json
from hwnas.objectives import Evaluation
from hwnas.run.files import RunDir
from hwnas.run.records import read_retrain_claim, read_retrain_result, read_selected
from hwnas.run.retrain import retrain, retrain_dir, run_recipe
from hwnas.run.workspace import Workspace, workspace
from hwnas.studies import known_evaluations, load_read_only

#: Subnets checked when --subnets is not given (fewer when the study holds fewer).
DEFAULT_SUBNETS = 8


def study_estimates(run: RunDir) -> list[Evaluation]:
    """Each subnet the study evaluated, once (its first completed evaluation).

    Raises:
        RunDirError: no study yet, or one without a completed evaluation.
    """
    known = known_evaluations(load_read_only(run.path))
    if not known:
        raise RunDirError(f"{run.path}: the study holds no completed evaluation yet; "
                          f"run 'hwnas search {run.path}' first")
    return list(known.values())


def pick(run: RunDir, subnets: int | None
         ) -> tuple[list[Evaluation], str | None, dict[str, float]]:
    """The subnets to check, highest estimate first; the selected subnet's key (None
    when nothing is selected, or the selected one is not in the study) and the budgets it
    was selected under (the config's when nothing is selected).

    Raises:
        HwnasError: more subnets asked for than the study evaluated, or fewer than 2.
    """
    known = study_estimates(run)
    n = min(DEFAULT_SUBNETS, len(known)) if subnets is None else subnets
    if n > len(known):
        raise HwnasError(f"--subnets {n}: the study has evaluated only {len(known)} distinct "
                         f"subnets; ask for at most {len(known)} or search more "
                         f"('hwnas search {run.path} --trials N')")
    if n < 2:
        raise HwnasError(f"{run.path}: the study has evaluated only {len(known)} subnet; "
                         "a ranking needs 2 or more ('hwnas search RUN --trials N')")
    selected = read_selected(run)
    keys = [e.arch.key for e in known]
    keep = keys.index(selected["key"]) if selected and selected["key"] in keys else None
    chosen = ranking.stratified([e.metrics["accuracy"] for e in known], n, keep)
    budgets = dict(selected["budgets"] if selected else run.config.budgets)
    return [known[i] for i in chosen], (keys[keep] if keep is not None else None), budgets


def replicate_dir(run: RunDir, key: str, recipe: dict[str, Any], seed: int) -> Path:
    """Where the retraining of ``key`` with ``recipe`` and ``seed`` lives (see the module)."""
    plain = retrain_dir(run, key)
    if seed == run.config.seed:
        held = read_retrain_claim(plain)
        if (held is None and recipe == run_recipe(run)) or (
                held is not None and held["key"] == key and held["recipe"] == recipe
                and held.get("seed", seed) == seed):
            return plain
    return retrain_dir(run, key, seed=seed, recipe=recipe)


def _finished(where: Path, key: str, recipe: dict[str, Any]) -> bool:
    """Whether ``where`` holds this retraining, finished.

    Raises:
        RunDirError: its claim is damaged (as ``hwnas retrain`` would say, before anything
            of the rank check trains).
    """
    read_retrain_claim(where)
    try:
        done = read_retrain_result(where)
    except RunDirError:
        return False  # damaged: retrain computes it again from the finished checkpoint
    return done is not None and (done["key"], done["recipe"]) == (key, recipe)


def rank_check(run: RunDir, *, subnets: int | None = None, epochs: int | None = None,
               seeds: int = 1, progress: bool = True,
               ws: Workspace | None = None) -> dict[str, Any]:
    """Retrains the picked subnets (or reuses their retrainings) and compares the rankings;
    writes rank_check.json and rank_check.png.

    Returns:
        What rank_check.json records, and ``trained`` / ``reused``: how many retrainings
        ran in this call and how many were already finished.

    Raises:
        HwnasError: bad arguments, or the study cannot give the subnets asked for.
    """
    if subnets is not None and subnets < 2:
        raise HwnasError(f"--subnets must be >= 2 (a ranking needs two subnets), got {subnets}")
    if epochs is not None and epochs < 1:
        raise HwnasError(f"--epochs must be >= 1, got {epochs}")
    if seeds < 1:
        raise HwnasError(f"--seeds must be >= 1, got {seeds}")
    began = time.perf_counter()
    picked, selected, budgets = pick(run, subnets)
    recipe = run_recipe(run, epochs)
    # Every directory is chosen (and every claim read) before anything trains.
    plan = [(evaluation, [(seed, replicate_dir(run, evaluation.arch.key, recipe, seed))
                          for seed in range(run.config.seed, run.config.seed + seeds)])
            for evaluation in picked]
    reused = sum(_finished(where, e.arch.key, recipe) for e, runs in plan for _, where in runs)
    trained = len(picked) * seeds - reused
    ws = ws or workspace(run, progress=progress)
    rows = []
    with tqdm(total=len(picked) * seeds, desc="rank-check", unit="retraining",
              disable=not progress) as bar:
        for evaluation, runs in plan:
            results = []
            for seed, where in runs:
                results.append(retrain(run, evaluation.arch, epochs=recipe["epochs"], seed=seed,
                                       where=where, progress=progress, ws=ws))
                bar.update()
            rows.append(_row(evaluation, results, selected, budgets))
    record = {"recipe": recipe, "seeds": seeds, "selected": selected, "budgets": budgets,
              "subnets": rows,
              **statistics(rows, seeds)}
    record["seconds"] = round(time.perf_counter() - began, 3)
    atomic_write_json(run / RunDir.RANK_CHECK, record)
    plot(record, run / RunDir.RANK_CHECK_PLOT)
    return {**record, "trained": trained, "reused": reused}


def _row(evaluation: Evaluation, results: list[dict[str, Any]], selected: str | None,
         budgets: dict[str, float]) -> dict[str, Any]:
    val = [float(r["val_accuracy"]) for r in results]
    test = [float(r["test_accuracy"]) for r in results]
    return {"key": evaluation.arch.key, "arch": dict(evaluation.arch),
            "estimate": float(evaluation.metrics["accuracy"]),
            "estimate_test": results[0].get("supernet_test_accuracy"),
            "val_accuracy": float(np.mean(val)), "test_accuracy": float(np.mean(test)),
            "val_accuracies": val, "test_accuracies": test,
            "retrain_dirs": [str(Path(r["weights"]).parent) for r in results],
            "selected": evaluation.arch.key == selected,
            # The selected subnet met them (its latency perhaps measured whole); the others
            # as the study recorded their costs.
            "within_budgets": evaluation.arch.key == selected or not excess(
                {name: evaluation.objective(name) for name in budgets}, budgets)}


def statistics(rows: list[dict[str, Any]], seeds: int) -> dict[str, Any]:
    """The comparison of the estimates with the stand-alone accuracies of ``rows``."""
    estimate = [r["estimate"] for r in rows]
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        actual = [r[f"{split}_accuracy"] for r in rows]
        tau, rho = ranking.kendall_tau(estimate, actual), ranking.spearman_rho(estimate, actual)
        out[split] = {
            "kendall_tau": _finite(tau),
            "kendall_tau_interval": ranking.bootstrap_interval(ranking.tau_b, estimate,
                                                               actual),
            "spearman_rho": _finite(rho),
            "spearman_rho_interval": ranking.bootstrap_interval(ranking.rho, estimate,
                                                                actual)}
    val = [r["val_accuracy"] for r in rows]
    tau_val = out["val"]["kendall_tau"]
    k = max(1, len(rows) // 4)
    # The selection could only choose among subnets within its budgets: regret counts those.
    eligible = [i for i, r in enumerate(rows) if r["within_budgets"]]
    chosen = next((eligible.index(i) for i, r in enumerate(rows) if r["selected"]), None)
    noise = ranking.pooled_sd([r["val_accuracies"] for r in rows]) if seeds > 1 else None
    ceiling = ranking.seed_ceiling(val, noise)
    gap = ranking.trust_gap(estimate, val)
    out.update({
        "bootstrap": {"resamples": ranking.RESAMPLES, "seed": ranking.BOOTSTRAP_SEED,
                      "level": ranking.LEVEL},
        "top_k": k, "top_k_overlap": ranking.top_k_overlap(estimate, val, k),
        "regret": None if chosen is None else ranking.regret([val[i] for i in eligible],
                                                               chosen),
        "seed_noise_sd": noise, "seed_ceiling": ceiling, "trust_gap": gap,
        "verdict": ranking.verdict(math.nan if tau_val is None else tau_val,
                                   out["val"]["kendall_tau_interval"], gap, noise, len(rows),
                                   ceiling)})
    return out


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None  # JSON has no NaN


def plot(record: dict[str, Any], path: Path) -> None:
    """The rank check's figure (rank_check.png) from what rank_check.json records."""
    rows = record["subnets"]
    tau = record["val"]["kendall_tau"]
    ranking.plot_rank_check(
        [r["estimate"] for r in rows], [r["val_accuracy"] for r in rows],
        [r["test_accuracy"] for r in rows], path,
        val_sd=([float(np.std(r["val_accuracies"], ddof=1)) for r in rows]
                if record["seeds"] > 1 else None),
        chosen=next((i for i, r in enumerate(rows) if r["selected"]), None),
        title=f"{len(rows)} subnets, {_plural(record['recipe']['epochs'], 'epoch')}, "
              f"{_plural(record['seeds'], 'seed')}: Kendall τ (val) "
              + ("undefined" if tau is None else f"{tau:.2f}"))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"
