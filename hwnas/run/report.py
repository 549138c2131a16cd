"""report.html: one self-contained page of a run, from its config to the exported subnet."""
from __future__ import annotations

import datetime
import platform
from collections.abc import Callable
from pathlib import Path

import hwnas
from hwnas.data import load_dataset
from hwnas.deploy import check_models, read_record
from hwnas.errors import HwnasError, RunDirError
from hwnas.io import atomic_write_text
from hwnas.pareto import (ParetoFront, hypervolume_history, objective_matrix, plot_front,
                          plot_hypervolume, reference_point)
import hwnas.run.report_sections as results
from hwnas.run.files import RunDir
from hwnas.run.records import (read_derived, read_measured, read_rank_check, read_retrain_result,
                               read_search_stats, read_selected)
from hwnas.run.report_html import (Unreadable, code, curves, drawn_png, esc, figure, key, missing,
                                   note, number, page, pairs, percent, read_csv, table)
from hwnas.run.retrain import retrain_dir
from hwnas.run.select import strategies_of
from hwnas.run.train import ranking_caveat
from hwnas.run.source import git, source_state
from hwnas.run.workspace import space_from_config
from hwnas.studies import evaluations, load_read_only
from hwnas.supernet import CELL_KEY, Arch, draw_arch, plot_arch_trajectories
from hwnas.supernet.learners import recorded_plan

_GRADIENT = {"darts": "DARTS", "proxyless": "ProxylessNAS"}

#: The report's sections: (id, title, builder); each builder returns the section's HTML body.
Builder = Callable[[RunDir], str]


def write_report(run: RunDir) -> Path:
    """Writes ``report.html`` in the run directory, atomically, and returns its path.

    Every section appears; one whose input is missing says what is missing and
    which command produces it. Nothing else in the run directory is written:
    figures are drawn in memory (or in a temporary directory) from the run's files
    and its study, which is opened read-only.

    Raises:
        RunDirError: the directory has no readable config (from ``RunDir.open``), or one of
            the run files the report reads is damaged (see :func:`check_inputs`).
    """
    check_inputs(run)
    sections = [(ident, title, _guarded(build, run)) for ident, title, build in SECTIONS]
    selected = read_selected(run)
    lines = [f"Run directory {code(str(run.path))}",
             f"Generated {esc(datetime.datetime.now().strftime('%Y-%m-%d %H:%M'))} by hwnas "
             f"{esc(_version('hwnas'))}"]
    if selected is not None:
        lines.insert(1, f"Selected {key(selected['key'])}, validation accuracy "
                        f"{percent(selected['metrics']['accuracy'])}")
    path = run / RunDir.REPORT
    atomic_write_text(path, page(f"hwnas report: {run.config.name}", lines, sections))
    return path


def check_inputs(run: RunDir) -> None:
    """Reads every run file the report shows through its loader, so that a damaged one (no
    JSON, or JSON of another shape) is one line naming it, not a section that crashed; and
    checks that the model files are the ones export.json describes.

    Raises:
        RunDirError: the first damaged file.
    """
    selected = read_selected(run)
    read_derived(run)
    read_search_stats(run)
    read_measured(run)
    read_rank_check(run)
    if selected is not None:
        read_retrain_result(retrain_dir(run, selected["key"]))
    exported = read_record(run.path)
    if exported is not None:
        check_models(run.path, exported)


def _guarded(build: Builder, run: RunDir) -> str:
    """A section's body; a damaged input makes it one line saying so, not a failed report."""
    try:
        return build(run)
    except (Unreadable, HwnasError, OSError, ValueError, KeyError, TypeError) as exc:
        reason = str(exc) if isinstance(exc, (Unreadable, HwnasError)) else \
            f"{type(exc).__name__}: {exc}"
        return note(f"This section could not be drawn: {esc(reason)}")


def experiment(run: RunDir) -> str:
    cfg = run.config
    d, s, t = cfg.data, cfg.space, cfg.train
    data = f"{d.name} ({d.image_size}×{d.image_size}); validation {d.val_fraction:.0%}, " \
           f"test {d.test_fraction:.0%}" + (f"; at most {d.limit} examples" if d.limit else "")
    if s.name == "darts":
        space = f"darts: {s.cells} cells, {s.channels} channels, {s.nodes} nodes per cell"
    else:
        stages = ", ".join(f"{g.channels} ch × {g.blocks} (stride {g.stride})" for g in s.stages)
        space = (f"{s.name}: stem {s.stem_channels}, stages {stages}, kernels "
                 f"{'/'.join(map(str, s.kernels))}, expansions {'/'.join(map(str, s.expansions))}"
                 f"{', skip' if s.skip else ''}, head {s.head_channels}")
    if s.operations:
        space += "; operations " + ", ".join(s.operations)
    learner = {"uniform": "uniform path sampling"}.get(t.learner, _GRADIENT.get(t.learner, t.learner))
    if t.learner == "darts":
        learner += f" (order {t.order})"
    elif t.learner == "proxyless":
        learner += f" ({t.estimator})"
    learner += f", {t.epochs} epoch{'s' if t.epochs != 1 else ''}, batch {t.batch_size}, lr {t.lr}"
    if t.finetune_epochs:
        learner += (f", then {t.finetune_epochs} fine-tuning epoch"
                    f"{'s' if t.finetune_epochs != 1 else ''} of uniform path sampling")
    if t.split_epochs:
        # "auto" resolves against the space: the checkpoint records what it resolved to.
        choice = recorded_plan(run / RunDir.CHECKPOINT)[1] or (
            t.split_choice if t.split_choice != "auto" else "the choice with the most options")
        learner += (f", then split on {choice}, {t.split_epochs} epoch"
                    f"{'s' if t.split_epochs != 1 else ''} per option")
    if t.regularizer is not None:
        r = t.regularizer
        learner += f"; {r.form} {r.objective} regularizer, budget {number(r.budget)}, weight {r.weight}"
    budgets = ", ".join(f"{k} ≤ {number(v)}" for k, v in cfg.budgets.items()) or "none"
    lat = cfg.latency
    rows = [("Name", cfg.name), ("Data set", data), ("Search space", space),
            ("Supernet training", learner), ("Search strategy", cfg.search.strategy),
            ("Distinct subnets to evaluate", cfg.search.trials),
            ("Objectives (minimised)", ", ".join(cfg.search.objectives)), ("Budgets", budgets),
            ("Latency", f"{lat.context}, {lat.statistic}, batch {lat.batch_size}, predictor "
                        f"{lat.predictor}"), ("Seed", cfg.seed)]
    text = (run / RunDir.CONFIG).read_text()
    return pairs(rows) + f"<details><summary>config.yaml</summary><pre>{esc(text)}</pre></details>"


def training(run: RunDir) -> str:
    log = read_csv(run / RunDir.TRAIN_LOG)
    t = run.config.train
    if log is None or not len(log):
        return missing("The supernet is not trained yet (no train_log.csv)",
                       f"hwnas train {run.path}")
    last = log.iloc[-1]
    planned = recorded_plan(run / RunDir.CHECKPOINT)[0] or t.total_epochs
    facts = [("Epochs done", f"{int(last.get('epoch', len(log)))} of {planned}")]
    if "loss" in log:
        facts.append(("Final training loss", number(float(last["loss"]))))
    if "train_accuracy" in log:
        facts.append(("Final training accuracy", percent(float(last["train_accuracy"]))))
    if "seconds" in log:
        facts.append(("Training time", f"{float(log['seconds'].sum()):.1f} s"))
    body = pairs(facts) + figure(lambda: curves(log, f"Supernet training ({t.learner})"),
                                 "Supernet training per epoch (train_log.csv)")
    if t.learner not in _GRADIENT:
        return body + note("Uniform path sampling learns no architecture parameters.")
    arch_log = read_csv(run / RunDir.ARCH_LOG)
    if arch_log is not None and len(arch_log):
        body += "<h3>Architecture parameters</h3>" + figure(
            lambda: drawn_png(lambda p: plot_arch_trajectories(
                arch_log, p, title="softmax(α) per block or edge during training")),
            "Architecture probabilities during training (arch_log.csv)")
    derived = read_derived(run)
    if derived is not None:
        arch = Arch(derived["choices"])
        body += f"<h3>Derived subnet</h3><p>{key(arch.key)}</p>" + figure(
            lambda: drawn_png(lambda p: draw_arch(arch, p, shapes=_feature_shapes(run, arch),
                                                  title=f"derived by {_GRADIENT[t.learner]}")),
            "The most likely subnet after training (derived.json)")
    if arch_log is None and derived is None:
        body += missing("No architecture parameters logged", f"hwnas train {run.path}")
    return body


def front(run: RunDir) -> str:
    cfg = run.config
    objectives = cfg.search.objectives
    try:
        study = load_read_only(run.path)
    except RunDirError as exc:
        if "no study yet" not in str(exc):
            raise
        return missing("No search yet (no study)", f"hwnas search {run.path}")
    evs = evaluations(study)
    if not evs:
        return missing("The study holds no completed evaluation yet", f"hwnas search {run.path}")
    trials = study.get_trials(deepcopy=False)
    states = {}
    for trial in trials:
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    strategies = strategies_of(study, cfg.search.strategy)
    ref = reference_point(objective_matrix(evs, objectives))
    history = hypervolume_history(evs, objectives, cfg.budgets, ref)
    facts = [("Trials in the study", f"{len(trials)} ({', '.join(f'{n} {s}' for s, n in states.items())})"),
             ("Distinct subnets evaluated", len({e.arch.key for e in evs})),
             ("Proposed by", strategies),
             ("Hypervolume of the feasible front", f"{history[-1]:.6g}")]
    stats = read_search_stats(run)
    if stats:
        facts.append(("Last search call", f"{stats.get('evaluated', 0)} evaluated, "
                      f"{stats.get('cached', 0)} answered from the study, "
                      f"{stats.get('failed', 0)} failed, "
                      + (f"{stats['infeasible']} infeasible, " if stats.get("infeasible") else "")
                      + f"{stats.get('seconds', 0.0):.1f} s"))
    body = pairs(facts)
    caveat = ranking_caveat(cfg.train)
    if caveat:
        body += note("Accuracy estimates: " + esc(caveat) + ".")
    if len(objectives) >= 2:
        body += figure(lambda: drawn_png(lambda p: plot_front(evs, objectives, cfg.budgets, p)),
                       "Every evaluated subnet and the feasible Pareto front, per pair of objectives")
    body += figure(lambda: drawn_png(lambda p: plot_hypervolume(
        {strategies: history}, p, title="Hypervolume of the feasible front (reference: 10% "
        "beyond the worst evaluation)")), "Hypervolume against distinct subnets evaluated")
    front_table = read_csv(run / RunDir.FRONT)
    if front_table is None:
        front_table = ParetoFront(evs, objectives, cfg.budgets).table()
        body += note(f"front.csv is not written yet (<code>hwnas front {esc(run.path)}</code> "
                     "also measures the front whole); the front below is computed from the study.")
    selected = read_selected(run)
    chosen = selected["key"] if selected else None
    cols = ["key", "accuracy", *[o for o in objectives if o != "error"]]
    cols += [c for c in ("latency_ms_measured",) if c in front_table]
    front_table = front_table.sort_values("accuracy", ascending=False)
    rows = [[key(r["key"]), percent(r["accuracy"]),
             *[float(r[c]) if c.startswith("latency") else int(r[c]) for c in cols[2:]]]
            for _, r in front_table.iterrows()]
    header = ["subnet", "val accuracy", *[c.replace("latency_ms", "latency (ms)")
                                          .replace("_measured", " measured") for c in cols[2:]]]
    body += f"<h3>Pareto front: {len(rows)} subnets</h3>" + table(
        rows, header, highlight=lambda row: chosen is not None and row[0] == key(chosen))
    if chosen is not None:
        body += note("The selected subnet is highlighted.")
    return body


def architecture(run: RunDir) -> str:
    selected = read_selected(run)
    if selected is None:
        return missing("Nothing selected yet (selected.json is missing)", f"hwnas select {run.path}")
    arch = Arch(selected["arch"])
    shapes = _feature_shapes(run, arch)
    body = f"<p>{key(arch.key)}</p>" + figure(
        lambda: drawn_png(lambda p: draw_arch(arch, p, shapes=shapes, title="selected subnet")),
        "The selected subnet")
    if shapes:
        rows = [[name, code(option), "×".join(map(str, shapes.get(name, ())))]
                for name, option in arch.items()]
        return body + table(rows, ["choice", "option", "input (C×H×W)"])
    return body + table([[name, code(option)] for name, option in arch.items()],
                        ["choice", "option"])


def _feature_shapes(run: RunDir, arch) -> dict[str, tuple[int, int, int]] | None:
    """(C, H, W) entering every block of a chain space, without its weights; None for cells,
    or when the data set that fixes the input shape cannot be loaded."""
    if any(CELL_KEY.match(name) for name in arch):
        return None
    cfg = run.config
    try:
        space = space_from_config(cfg, load_dataset(cfg.data, seed=cfg.seed))
    except (HwnasError, OSError, ValueError):
        return None
    shapes = getattr(space, "feature_shapes", None)
    return {k: tuple(map(int, v)) for k, v in shapes().items()} if shapes else None


def reproduce(run: RunDir) -> str:
    cfg, where = run.config, str(run.path)
    out = f"runs/{cfg.name}-again"
    study_strategy = None
    try:
                study_strategy = strategies_of(load_read_only(where), cfg.search.strategy)
    except HwnasError:
        pass
    search = f"hwnas search {out}"
    if study_strategy and study_strategy != cfg.search.strategy and " " not in study_strategy:
        search += f" --strategy {study_strategy}"
    selected = read_selected(run)
    select = f"hwnas select {out}"
    if selected is not None and dict(selected.get("budgets", {})) != dict(cfg.budgets):
        select += "".join(f" --budget {k}={v:g}" for k, v in selected["budgets"].items())
    export = read_record(run.path) or {}
    steps = [f"hwnas train {where}/{RunDir.CONFIG} --out {out}"]
    if cfg.latency.predictor == "lut":
        steps.append(f"hwnas lut {out}")
    steps += [search, f"hwnas front {out}", select]
    if (run / "retrain").is_dir():
        steps.append(f"hwnas retrain {out}")
    checked = read_rank_check(run)
    if checked is not None:
        steps.append(f"hwnas rank-check {out} --subnets {len(checked['subnets'])} --epochs "
                     f"{checked['recipe'].get('epochs', cfg.retrain.epochs)} "
                     f"--seeds {checked['seeds']}")
    exported = f"hwnas export {out}" + "".join(f" --format {f}" for f in export.get("formats", ()))
    if selected is not None and export.get("key") not in (None, selected["key"]):
        exported += f" --arch '{export['key']}'"
    steps.append(exported)
    steps.append(f"hwnas report {out}")
    body = (f"<p>The whole pipeline, into a new directory (the config's seed fixes the data "
            f"splits and the initial weights; latencies, and so the subnets a search proposes, "
            f"depend on the device):</p>"
            f"<pre>hwnas run {esc(where)}/{RunDir.CONFIG} --out {esc(out)}</pre>"
            f"<p>or step by step:</p><pre>{esc(chr(10).join(steps))}</pre>")
    commit = source_commit()
    body += pairs([("hwnas", _version("hwnas")), ("hwnas source", commit or "not a git checkout"),
                   ("Python", platform.python_version()), ("nnabla", _version("nnabla")),
                   ("optuna", _version("optuna")), ("numpy", _version("numpy")),
                   ("Platform", platform.platform()), ("Machine", platform.processor() or
                                                       platform.machine())])
    return body


def _version(package: str) -> str:
    if package == "hwnas":
        return hwnas.__version__
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def source_commit() -> str | None:
    """The git commit of the hwnas source in use, with " (modified)" when its tracked files
    differ from it; None when hwnas is not run from a git checkout."""
    package = Path(hwnas.__file__).resolve().parent
    top = (git(package, "rev-parse", "--show-toplevel") or "").strip()
    # An installed copy inside some other repository is not that repository's commit.
    if not top or not (Path(top) / "hwnas" / "__init__.py").resolve().parent == package:
        return None
    state = source_state(package, ".")
    if state is None:
        return None
    return state["commit"] + (" (modified)" if state["modified"] else "")


SECTIONS: tuple[tuple[str, str, Builder], ...] = (
    ("experiment", "Experiment", experiment),
    ("training", "Supernet training", training),
    ("front", "Pareto front", front),
    ("architecture", "Selected architecture", architecture),
    ("costs", "Costs of the selected subnet", results.costs),
    ("budgets", "Budgets", results.budgets),
    ("retrained", "Retrained from scratch", results.retrained),
    ("rank-check", "Does the supernet rank? (rank check)", results.rank_check),
    ("export", "Exported files", results.export),
    ("reproduce", "How to reproduce", reproduce),
)
