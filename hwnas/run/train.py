"""The training step: learner and regularizer from the config, and the derived architecture."""
from __future__ import annotations

from typing import Any

import nnabla as nn
import pandas as pd

from hwnas.config import RegularizerConfig, TrainConfig
from hwnas.errors import ConfigError
from hwnas.hwcost import count_graph_params, count_macs, inference_output
from hwnas.io import atomic_write_json
import hwnas.run.lut as lut
from hwnas.run.files import RunDir
from hwnas.run.records import read_derived
from hwnas.run.workspace import Workspace, workspace
from hwnas.supernet import Arch, BaseSearchSpace, Supernet, Unit, draw_arch, plot_arch_trajectories
from hwnas.supernet.learners import Regularizer, learner_class



def train(run: RunDir, *, progress: bool = True) -> list[dict[str, Any]]:
    """Trains (or resumes training) the supernet; writes supernet.h5 and train_log.csv.

    A gradient learner (DARTS, ProxylessNAS) also writes arch_log.csv, the
    architecture it derives (derived.json, which the search evaluates first)
    and two plots: architecture-parameter trajectories and the derived subnet.
    """
    ws = workspace(run, trained=False, progress=progress)
    cfg = run.config
    regularizer = (make_regularizer(run, ws, cfg.train.regularizer)
                   if cfg.train.regularizer is not None else None)
    try:
        learner = learner_class(cfg.train.learner)(space=ws.space, supernet=ws.supernet, data=ws.data,
                                              config=cfg.train, seed=cfg.seed, run_dir=run.path,
                                              progress=progress, regularizer=regularizer)
    except ValueError as exc:  # settings the data or the space cannot meet
        raise ConfigError(f"{run / RunDir.CONFIG}: cannot train: {exc}") from None
    history = learner.fit()
    if learner.learns_arch:
        write_derived(run, ws.space, ws.supernet, regularizer)
    return history


def unit_cost(objective: str, table=None):
    """The cost of one unit for a regularizer: its latency share from the table, params or MACs."""
    if objective == "latency_ms":
        a = table.calibration.a
        return lambda unit: a * table.entries[unit.key]

    def count(unit: Unit) -> float:
        x = nn.Variable((1,) + tuple(unit.input_shape))
        y = inference_output(unit.build(), x)
        return float(count_graph_params(y, inputs=[x]) if objective == "params" else count_macs(y))
    return count


def make_regularizer(run: RunDir, ws: Workspace, config: RegularizerConfig) -> Regularizer:
    """The configured regularizer; a latency one builds (or reuses) the run's latency table."""
    extra, table = 0.0, None
    if config.objective == "latency_ms":
        table = lut.ensure_table(run, ws, progress=ws.progress)
        extra = table.calibration.a * table.overhead_ms + table.calibration.b
    return Regularizer.for_supernet(ws.supernet, unit_cost(config.objective, table),
                                    fixed_extra=extra, objective=config.objective,
                                    budget=config.budget, form=config.form,
                                    weight=config.weight)


def write_derived(run: RunDir, space: BaseSearchSpace, supernet: Supernet,
                  regularizer: Regularizer | None = None) -> Arch:
    """Derives the architecture (as the regularizer's form says) and writes derived.json and
    its plots."""
    arch = space.validate(supernet.derive() if regularizer is None
                          else regularizer.derive(supernet))
    probs = supernet.probabilities()
    options = supernet.arch_options()
    record = {"key": arch.key, "choices": dict(arch), "learner": run.config.train.learner,
              "probabilities": {e: dict(zip(options[e], map(float, p)))
                                for e, p in probs.items()}}
    if regularizer is not None:
        record["regularizer"] = {"objective": regularizer.objective,
                                 "budget": regularizer.budget,
                                 "expected": regularizer.expected_value(probs)}
    atomic_write_json(run / RunDir.DERIVED, record)
    log_path = run / RunDir.ARCH_LOG
    if log_path.exists():
        log = pd.read_csv(log_path)
        if len(log):
            plot_arch_trajectories(log, run / RunDir.ARCH_PLOT,
                                   title=f"{run.config.name}: architecture parameters")
    shapes = getattr(space, "feature_shapes", None)
    draw_arch(arch, run / RunDir.DERIVED_PLOT, shapes=shapes() if shapes else None,
              title=f"derived by {run.config.train.learner}")
    return arch


def ranking_caveat(config: TrainConfig) -> str | None:
    """What the search's accuracy estimates mean when the learner's weights were not trained
    on single paths (``BaseLearner.weights_train_on``) and it was fine-tuned on them for
    fewer than ``finetune_factor`` times its epochs (measured: ``DartsLearner``; README,
    "Does the supernet rank?"); None otherwise."""
    learner = learner_class(config.learner)
    config = learner.with_defaults(config)
    enough = learner.finetune_factor * config.epochs
    if learner.weights_train_on is None or config.finetune_epochs >= enough:
        return None
    tuned = (f" (fine-tuning on single paths for fewer than {enough} epochs does not change "
             "that)" if config.finetune_epochs else "")
    return (f"the supernet's weights were trained by {config.learner} on "
            f"{learner.weights_train_on}, not on single paths, so the search's accuracies "
            "(inherited weights) are far below what the subnets reach alone and rank them "
            f"loosely{tuned}: on digits-hard 0.10-0.18 for subnets that train alone to "
            "0.59-0.77, Kendall τ 0.29-0.32; fine-tune on single paths for "
            f"{learner.finetune_factor} times the search's epochs (train.finetune_epochs: "
            f"{enough}, the default when left out; estimates 0.48-0.64 there) or search a "
            "uniform supernet, and check the ranking with 'hwnas rank-check RUN'")


def derived_arch(run: RunDir) -> Arch | None:
    """The architecture the learner derived, or None (uniform sampling derives none)."""
    record = read_derived(run)
    return None if record is None else Arch(record["choices"])
