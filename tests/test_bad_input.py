"""The catalogue of bad input: each kind gets one clear line, exit status 2, and leaves every
file that was already there as it was.

Every case runs the real command line in-process against a private copy of the session's
finished tiny run (``run``) inside the test's own directory (``tmp``, also the working
directory). The whole of ``tmp`` is compared before and after: nothing may change, appear
or vanish, except what a case names (``added``: new files of a fresh run directory;
``appended``: a study journal that may only grow, its old bytes intact).
"""
from __future__ import annotations

import dataclasses
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from conftest import SMALL_SPACE, TINY_CONFIG
from test_cli import assert_usage_error, cli, load_trials

UNREACHABLE = "postgresql+psycopg2://x@127.0.0.1:1/db"  # port 1: nothing listens there


@dataclasses.dataclass
class Ctx:
    """What a case's damage and command line refer to."""

    run: Path  # a finished run, private to the test
    tmp: Path  # the test's directory and working directory (the run lies inside)
    tiny: Path  # the tiny experiment's config
    monkeypatch: pytest.MonkeyPatch

    @property
    def cfg(self) -> Path:
        """Where a case writes its bad config."""
        return self.tmp / "bad.yaml"

    def fill(self, text: str) -> str:
        return text.format(run=self.run, tmp=self.tmp, tiny=self.tiny, cfg=self.cfg)


@dataclasses.dataclass(frozen=True)
class Case:
    """One kind of bad input.

    Attributes:
        argv: the command line; ``{run}``, ``{tmp}``, ``{tiny}``, ``{cfg}`` are filled in.
        fragments: what the one stderr line must name (filled in the same way).
        damage: prepares the bad input before the snapshot is taken.
        added: files (relative to ``tmp``) the command may create.
        appended: files (relative to ``tmp``) the command may append to.
        after: further checks once the generic ones passed.
    """

    argv: tuple[str, ...]
    fragments: tuple[str, ...]
    damage: Callable[[Ctx], None] | None = None
    added: tuple[str, ...] = ()
    appended: tuple[str, ...] = ()
    after: Callable[[Ctx, pytest.CaptureFixture], None] | None = None


# --- damage -----------------------------------------------------------------------------


def config(*edits: tuple[str, str], text: str | bytes | None = None) -> Callable[[Ctx], None]:
    """Writes the bad config: the tiny config with ``edits`` (old, new) applied, or ``text``."""
    def damage(ctx: Ctx) -> None:
        if isinstance(text, bytes):
            ctx.cfg.write_bytes(text)
            return
        body = TINY_CONFIG if text is None else text
        for old, new in edits:
            assert old in body, old
            body = body.replace(old, new)
        ctx.cfg.write_text(body.replace("{tmp}", str(ctx.tmp)))
    return damage


def data_config(name: str, folder: str) -> tuple[str, str]:
    """The edit that points the tiny config at a dataset in ``tmp/folder``."""
    return "{name: synthetic, image_size: 8}", f"{{name: {name}, path: '{{tmp}}/{folder}'}}"


def both(*damages: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    def damage(ctx: Ctx) -> None:
        for d in damages:
            d(ctx)
    return damage


def replace(name: str, data: bytes | Callable[[bytes], bytes]) -> Callable[[Ctx], None]:
    """Replaces run file ``name`` with ``data`` (or ``data(old bytes)``)."""
    def damage(ctx: Ctx) -> None:
        path = ctx.run / name
        path.write_bytes(data(path.read_bytes()) if callable(data) else data)
    return damage


def delete(name: str) -> Callable[[Ctx], None]:
    return lambda ctx: (ctx.run / name).unlink()


def a_file(name: str = "a_file") -> Callable[[Ctx], None]:
    return lambda ctx: (ctx.tmp / name).write_text("not a directory\n")


def read_only_sys(ctx: Ctx) -> None:
    """Root may write anywhere but below /sys, where even root cannot create a directory."""
    try:
        Path("/sys/hwnas-bad-input").mkdir()
    except OSError:
        return
    Path("/sys/hwnas-bad-input").rmdir()
    pytest.skip("/sys takes new directories here")


def garbage(n: int = 4096) -> bytes:
    """Random bytes with newlines in them and none at the end."""
    return np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes().rstrip(b"\n")


def half(data: bytes) -> bytes:
    return data[:len(data) // 2]


def tear_a_middle_record(data: bytes) -> bytes:
    """The journal with one record in its middle cut short; the records after it intact."""
    lines = data.splitlines(keepends=True)
    middle = len(lines) // 2
    lines[middle] = lines[middle][:len(lines[middle]) // 2] + b"\n"
    return b"".join(lines)


def foreign_journal(study_name: str, objectives: list[str]) -> Callable[[Ctx], None]:
    """A valid Optuna journal holding study ``study_name`` over ``objectives``."""
    def damage(ctx: Ctx) -> None:
        path = ctx.run / "study.journal"
        path.unlink()
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(path)))
        study = optuna.create_study(study_name=study_name, storage=storage,
                                    directions=["minimize"] * len(objectives))
        study.set_user_attr("objectives", objectives)
        study.add_trial(optuna.trial.create_trial(values=[0.5] * len(objectives)))
    return damage


def sqlite_file(path: Callable[[Ctx], Path]) -> Callable[[Ctx], None]:
    """A SQLite database of some other program at ``path(ctx)``."""
    def damage(ctx: Ctx) -> None:
        import sqlite3
        target = path(ctx)
        target.unlink(missing_ok=True)
        with sqlite3.connect(target) as db:
            db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
            db.executemany("INSERT INTO notes (text) VALUES (?)", [("a",), ("b\nc",)] * 50)
        db.close()
    return damage


def other_space_weights(ctx: Ctx) -> None:
    """supernet.h5 of a supernet of another space (one more block in the first stage)."""
    from hwnas.supernet import create_space
    from hwnas.supernet.learners import save_weights
    supernet = create_space("mobilenet", **SMALL_SPACE).supernet()
    save_weights(supernet, ctx.run / "supernet.h5")


def mnist(images_shape: tuple[int, ...], n_images: int | None = None) -> Callable[[Ctx], None]:
    """An MNIST directory whose image file announces ``images_shape`` but may hold
    ``n_images`` images' worth of bytes of 28x28."""
    def damage(ctx: Ctx) -> None:
        folder = ctx.tmp / "mnist"
        folder.mkdir()
        n = images_shape[0]
        body = np.zeros((n_images or n) * 28 * 28, np.uint8).tobytes()
        header = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in images_shape)
        (folder / "train-images-idx3-ubyte").write_bytes(header + body)
        labels = (np.arange(n) % 10).astype(np.uint8).tobytes()
        (folder / "train-labels-idx1-ubyte").write_bytes(
            (0x801).to_bytes(4, "big") + n.to_bytes(4, "big") + labels)
    return damage


def cifar10_batch(data: np.ndarray, labels: list[int]) -> Callable[[Ctx], None]:
    def damage(ctx: Ctx) -> None:
        folder = ctx.tmp / "cifar"
        folder.mkdir()
        (folder / "data_batch_1").write_bytes(
            pickle.dumps({b"data": data, b"labels": labels}, protocol=2))
    return damage


def copy_run(name: str, *edits: tuple[str, str]) -> Callable[[Ctx], None]:
    """A second finished run at ``tmp/name``, its config.yaml edited."""
    def damage(ctx: Ctx) -> None:
        other = Path(shutil.copytree(ctx.run, ctx.tmp / name))
        text = (other / "config.yaml").read_text()
        for old, new in edits:
            assert old in text, old
            text = text.replace(old, new)
        (other / "config.yaml").write_text(text)
    return damage


def selected_retraining(ctx: Ctx) -> Path:
    """The retraining directory of the finished run's selected subnet."""
    import json

    from hwnas.retrain import retrain_dir
    return retrain_dir(ctx.run, json.loads((ctx.run / "selected.json").read_text())["key"])


def claim_other_subnet(ctx: Ctx) -> None:
    """The retraining directory of subnet b0=skip|b1=ir_k3_e2 claims another subnet (a
    directory moved by hand)."""
    import json
    import shutil

    from hwnas.retrain import retrain_dir
    target = retrain_dir(ctx.run, "b0=skip|b1=ir_k3_e2")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(selected_retraining(ctx), target)
    claim = json.loads((target / "arch.json").read_text())
    assert claim["key"] != "b0=skip|b1=ir_k3_e2"


def claim_with_a_list_recipe(ctx: Ctx) -> None:
    import json
    path = selected_retraining(ctx) / "arch.json"
    claim = json.loads(path.read_text())
    claim["recipe"] = [claim["recipe"]["epochs"]]
    path.write_text(json.dumps(claim))


def tear_claim(ctx: Ctx) -> None:
    path = selected_retraining(ctx) / "arch.json"
    path.write_bytes(half(path.read_bytes()))


def interrupt_evaluation(ctx: Ctx) -> None:
    """Ctrl-C while the first new subnet is being evaluated."""
    from hwnas.evaluate import Evaluator

    def interrupted(self, arch):
        raise KeyboardInterrupt
    ctx.monkeypatch.setattr(Evaluator, "__call__", interrupted)


def edit_run_config(old: str, new: str) -> Callable[[Ctx], None]:
    """The finished run's own config.yaml with ``old`` replaced by ``new``."""
    def damage(ctx: Ctx) -> None:
        path = ctx.run / "config.yaml"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new))
    return damage


def interrupt_training(ctx: Ctx) -> None:
    """Ctrl-C during the first batch of the next epoch."""
    from hwnas.supernet.learners._base import BaseLearner

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt
    ctx.monkeypatch.setattr(BaseLearner, "train_step", interrupted)


def trains_on_after_interrupt(ctx: Ctx, capfd: pytest.CaptureFixture) -> None:
    ctx.monkeypatch.undo()
    status, _, err = cli(capfd, "train", ctx.run, "--quiet")
    assert status == 0, err
    with np.load(ctx.run / "train_state.npz") as state:
        assert int(state["epochs_done"]) == 2
    assert (ctx.run / "train_log.csv").read_text().count("\n") == 3  # header + 2 epochs


def corrected_config_replaces_it(ctx: Ctx, capfd: pytest.CaptureFixture) -> None:
    """A directory holding nothing but the failed config takes the corrected one."""
    from hwnas._rundir import configure_run
    run = configure_run(str(ctx.tiny), str(ctx.tmp / "fresh"))
    assert run.config.data.name == "synthetic"
    assert "synthetic" in (ctx.tmp / "fresh" / "config.yaml").read_text()


def resumes_after_interrupt(ctx: Ctx, capfd: pytest.CaptureFixture) -> None:
    trials = load_trials(ctx.run)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert len({t.user_attrs["key"] for t in trials if t.state == TrialState.COMPLETE}) == 6
    ctx.monkeypatch.undo()
    status, out, err = cli(capfd, "search", ctx.run, "--trials", 9, "--quiet")
    assert status == 0, err
    done = load_trials(ctx.run)
    assert not [t for t in done if t.state == TrialState.RUNNING]
    assert len({t.user_attrs["key"] for t in done if t.state == TrialState.COMPLETE}) == 9
    assert [(t.number, t.values) for t in done[:len(trials)]] == \
        [(t.number, t.values) for t in trials]


# --- the catalogue ----------------------------------------------------------------------

RUN_BAD = ("run", "{cfg}", "--out", "{run}", "--quiet")  # a bad config against a finished run
RUN_FRESH = ("run", "{cfg}", "--out", "{tmp}/fresh", "--quiet")  # ... into a new directory
FRESH_CONFIG = ("fresh/config.yaml",)

CASES: dict[str, Case] = {
    # -- the config file
    "config_missing": Case(("run", "{tmp}/missing.yaml", "--out", "{run}"),
                           ("{tmp}/missing.yaml", "not found")),
    "config_is_a_directory": Case(("run", "{tmp}", "--out", "{run}"), ("{tmp}", "directory")),
    "config_not_text": Case(RUN_BAD, ("bad.yaml", "not UTF-8"),
                            config(text=b"name: \xff\xfe\x00tiny\n")),
    "yaml_malformed": Case(RUN_BAD, ("bad.yaml", "YAML"),
                           config(text="name: tiny\ntrain: {epochs: 1\n")),
    "yaml_not_a_mapping": Case(RUN_BAD, ("bad.yaml", "mapping", "list"),
                               config(text="- name: tiny\n- seed: 1\n")),
    "section_not_a_mapping": Case(RUN_BAD, ("bad.yaml", "train", "mapping", "int"),
                                  config(("train: {epochs: 1, batch_size: 32}", "train: 5"))),
    "unknown_key_top_level": Case(RUN_BAD, ("bad.yaml", "colour", "known keys"),
                                  config(("budgets:", "colour: red\nbudgets:"))),
    "unknown_key_nested": Case(RUN_BAD, ("bad.yaml", "train.epoch", "epochs"),
                               config(("train: {epochs: 1,", "train: {epochs: 1, epoch: 2,"))),
    "unknown_key_in_a_list_item": Case(RUN_BAD, ("bad.yaml", "space.stages[0].width"),
                                       config(("stride: 1}", "stride: 1, width: 2}"))),
    "wrong_type": Case(RUN_BAD, ("bad.yaml", "train.epochs", "int", "ten"),
                       config(("train: {epochs: 1,", 'train: {epochs: "ten",'))),
    "scalar_for_a_list": Case(RUN_BAD, ("bad.yaml", "space.kernels", "list"),
                              config(("kernels: [3, 5]", "kernels: 3"))),
    "negative_value": Case(RUN_BAD, ("bad.yaml", "train.lr", "-0.1"),
                           config(("batch_size: 32}", "batch_size: 32, lr: -0.1}"))),
    "zero_value": Case(RUN_BAD, ("bad.yaml", "search.trials", "0"),
                       config(("trials: 6", "trials: 0"))),
    "not_finite": Case(RUN_BAD, ("bad.yaml", "train.lr", "finite"),
                       config(("batch_size: 32}", "batch_size: 32, lr: .nan}"))),
    "fraction_out_of_range": Case(RUN_BAD, ("bad.yaml", "data.val_fraction", "0.7"),
                                  config(("image_size: 8}", "image_size: 8, val_fraction: 0.7}"))),
    "even_kernel": Case(RUN_BAD, ("bad.yaml", "space.kernels", "odd"),
                        config(("kernels: [3, 5]", "kernels: [3, 4]"))),
    "stride_3": Case(RUN_BAD, ("bad.yaml", "stride", "1 or 2", "3"),
                     config(("blocks: 1, stride: 2}", "blocks: 1, stride: 3}"))),
    "unknown_operation": Case(RUN_BAD, ("bad.yaml", "space.operations", "warp_k3"),
                              config(("head_channels: 16",
                                      "head_channels: 16\n  operations: [warp_k3]"))),
    "error_budget_above_one": Case(RUN_BAD, ("bad.yaml", "budgets.error", "<= 1", "2"),
                                  config(("{params: 100000}", "{error: 2}"))),
    "name_with_a_slash": Case(RUN_BAD, ("bad.yaml", "name", "'/'", "a/b"),
                              config(("name: tiny", "name: a/b"))),
    "negative_budget": Case(RUN_BAD, ("bad.yaml", "budgets.params", "-5"),
                            config(("{params: 100000}", "{params: -5}"))),
    "budget_on_no_objective": Case(RUN_BAD, ("bad.yaml", "budgets.flops", "latency_ms"),
                                   config(("{params: 100000}", "{flops: 5}"))),
    "objectives_without_error": Case(RUN_BAD, ("bad.yaml", "search.objectives", "error"),
                                     config(("bn_samples: 64}",
                                             "bn_samples: 64, objectives: [latency_ms, params]}"))),
    "objectives_repeated": Case(RUN_BAD, ("bad.yaml", "search.objectives", "repeats"),
                                config(("bn_samples: 64}",
                                        "bn_samples: 64, objectives: [error, params, params]}"))),
    "objective_unknown": Case(RUN_BAD, ("bad.yaml", "search.objectives", "speed", "latency_ms"),
                              config(("bn_samples: 64}",
                                      "bn_samples: 64, objectives: [error, speed]}"))),
    "regularizer_without_gradient_learner": Case(
        RUN_BAD, ("bad.yaml", "train.regularizer", "darts or proxyless"),
        config(("batch_size: 32}",
                "batch_size: 32, regularizer: {objective: params, budget: 5000}}"))),
    "regularizer_on_error": Case(
        RUN_BAD, ("bad.yaml", "train.regularizer.objective", "error"),
        config(("batch_size: 32}", "batch_size: 32, learner: darts, "
                                   "regularizer: {objective: error, budget: 0.1}}"))),
    "darts_warmup_beyond_epochs": Case(
        RUN_BAD, ("bad.yaml", "train.warmup_epochs", "3"),
        config(("batch_size: 32}", "batch_size: 32, learner: darts, warmup_epochs: 3}"))),
    "darts_order_3": Case(RUN_BAD, ("bad.yaml", "train.order", "1 or 2"),
                          config(("batch_size: 32}", "batch_size: 32, learner: darts, order: 3}"))),
    "proxyless_unknown_estimator": Case(
        RUN_BAD, ("bad.yaml", "train.estimator", "gumbel", "binary_gate"),
        config(("batch_size: 32}", "batch_size: 32, learner: proxyless, estimator: gumbel}"))),
    # -- unknown names
    "unknown_strategy_in_config": Case(
        RUN_BAD, ("bad.yaml", "search.strategy", "annealing", "tpe-ls"),
        config(("trials: 6", "trials: 6, strategy: annealing"))),
    "unknown_strategy_option": Case(("search", "{run}", "--strategy", "annealing"),
                                    ("--strategy", "annealing", "tpe-ls")),
    "unknown_space": Case(RUN_BAD, ("bad.yaml", "space.name", "resnet", "mobilenet"),
                          config(("space:\n", "space:\n  name: resnet\n"))),
    "unknown_learner": Case(RUN_BAD, ("bad.yaml", "train.learner", "sgd", "uniform"),
                            config(("batch_size: 32}", "batch_size: 32, learner: sgd}"))),
    "unknown_dataset": Case(RUN_BAD, ("bad.yaml", "data.name", "imagenet", "cifar10"),
                            config(("name: synthetic", "name: imagenet"))),
    # -- datasets
    "dataset_without_path": Case(RUN_BAD, ("bad.yaml", "data.path", "cifar10"),
                                 config(("name: synthetic", "name: cifar10"))),
    "dataset_path_missing": Case(RUN_FRESH, ("{tmp}/mnist", "not found"),
                                 config(data_config("mnist", "mnist")), added=FRESH_CONFIG,
                                 after=corrected_config_replaces_it),
    "dataset_smaller_than_a_batch": Case(
        RUN_FRESH, ("{tmp}/fresh/config.yaml", "batch_size 32", "training examples"),
        config(("image_size: 8}", "image_size: 8, limit: 20}")), added=FRESH_CONFIG),
    "latency_context_unavailable": Case(RUN_FRESH, ("latency.context", "cudnn", "cpu"),
                                        config(("latency: {", "latency: {context: cudnn, ")),
                                        added=FRESH_CONFIG),
    "latency_command_not_found": Case(("lut", "{run}", "--quiet"),
                                      ("latency command failed", "/nonexistent/tool"),
                                      edit_run_config("command: null",
                                                      "command: /nonexistent/tool {model}")),
    "mnist_dims_disagree_with_data": Case(
        RUN_FRESH, ("{tmp}/mnist/train-images-idx3-ubyte", "header", "100x28x28"),
        both(mnist((100, 28, 28), n_images=90), config(data_config("mnist", "mnist"))),
        added=FRESH_CONFIG),
    "mnist_images_and_labels_disagree": Case(
        RUN_FRESH, ("{tmp}/mnist/train-images-idx3-ubyte", "100 images", "labels"),
        both(mnist((100, 28, 28)), config(data_config("mnist", "mnist")),
             lambda ctx: (ctx.tmp / "mnist/train-labels-idx1-ubyte").write_bytes(
                 (0x801).to_bytes(4, "big") + (99).to_bytes(4, "big") + bytes(99))),
        added=FRESH_CONFIG),
    "cifar10_wrong_row_size": Case(
        RUN_FRESH, ("{tmp}/cifar/data_batch_1", "3072", "(20, 3000)"),
        both(cifar10_batch(np.zeros((20, 3000), np.uint8), [0] * 20),
             config(data_config("cifar10", "cifar"))), added=FRESH_CONFIG),
    "cifar10_labels_do_not_match": Case(
        RUN_FRESH, ("{tmp}/cifar/data_batch_1", "labels", "20"),
        both(cifar10_batch(np.zeros((20, 3072), np.uint8), [0] * 19),
             config(data_config("cifar10", "cifar"))), added=FRESH_CONFIG),
    # -- budgets on the command line
    "budget_unknown_objective": Case(("select", "{run}", "--budget", "flops=5"),
                                     ("--budget", "flops", "latency_ms")),
    "budget_without_value": Case(("select", "{run}", "--budget", "params"),
                                 ("--budget", "params", "name=value")),
    "budget_not_a_number": Case(("select", "{run}", "--budget", "params=many"),
                                ("--budget", "many", "not a number")),
    "budget_negative": Case(("run", "{tiny}", "--out", "{run}", "--budget", "params=-5"),
                            ("--budget", "-5")),
    "budget_repeated": Case(("select", "{run}", "--budget", "params=5", "--budget", "params=6"),
                            ("--budget", "params", "more than once")),
    "budget_nothing_meets": Case(("select", "{run}", "--budget", "params=1"),
                                 ("no subnet fits", "params")),
    # -- run files damaged
    "run_config_damaged": Case(("search", "{run}"), ("{run}/config.yaml", "damaged"),
                               replace("config.yaml", b"name: [tiny\n")),
    "weights_of_another_space": Case(
        ("search", "{run}", "--quiet"),
        ("{run}/supernet.h5", "different search space", "this space lacks"), other_space_weights),
    "weights_truncated": Case(("export", "{run}"), ("{run}/supernet.h5", "truncated"),
                              replace("supernet.h5", half)),
    "weights_garbage": Case(("search", "{run}", "--quiet"), ("{run}/supernet.h5", "unreadable"),
                            replace("supernet.h5", garbage())),
    "checkpoint_truncated_search": Case(("search", "{run}", "--quiet"),
                                        ("{run}/train_state.npz", "unreadable"),
                                        replace("train_state.npz", half)),
    "checkpoint_truncated_train": Case(("train", "{run}", "--quiet"),
                                       ("{run}/train_state.npz", "unreadable"),
                                       replace("train_state.npz", half)),
    "not_trained": Case(("search", "{run}", "--quiet"), ("not trained", "hwnas train"),
                        delete("train_state.npz")),
    "derived_damaged": Case(("search", "{run}", "--trials", "7", "--quiet"),
                            ("{run}/derived.json", "derived"),
                            lambda ctx: (ctx.run / "derived.json").write_text("{\"key\": ")),
    "train_log_damaged": Case(("train", "{run}", "--quiet"),
                              ("{run}/train_log.csv", "unreadable training log"),
                              replace("train_log.csv", b"loss,lr\n\"0.5,\n")),
    "selected_damaged": Case(("export", "{run}"), ("{run}/selected.json", "damaged"),
                             replace("selected.json", b"[1, 2")),
    # -- the study
    "journal_garbage": Case(("front", "{run}"),
                            ("{run}/study.journal", "not a readable", "line 1 is not"),
                            replace("study.journal", garbage())),
    "journal_record_torn_in_the_middle": Case(("front", "{run}"),
                                              ("{run}/study.journal", "is not a journal record"),
                                              replace("study.journal", tear_a_middle_record)),
    "journal_empty": Case(("front", "{run}"), ("{run}/study.journal", "empty", "no study"),
                          replace("study.journal", b"")),
    "journal_of_another_study": Case(
        ("search", "{run}", "--trials", "7", "--quiet"),
        ("{run}/study.journal", "someone-else", "not this run's study"),
        foreign_journal("someone-else", ["error", "params"])),
    "journal_with_other_objectives": Case(("select", "{run}"),
                                          ("{run}/study.journal", "objectives", "macs"),
                                          foreign_journal("hwnas", ["error", "macs"])),
    "journal_is_a_sqlite_database": Case(
        ("front", "{run}"), ("{run}/study.journal", "not a readable", "line 1 is not"),
        sqlite_file(lambda ctx: ctx.run / "study.journal")),
    "select_before_search": Case(("select", "{run}"), ("{run}/study.journal", "hwnas search"),
                                 delete("study.journal")),
    "storage_record_damaged": Case(("search", "{run}"), ("{run}/storage.json", "damaged"),
                                   lambda ctx: (ctx.run / "storage.json").write_text("{\"url\":")),
    "storage_unreachable": Case(("study", "{run}", "--storage", UNREACHABLE),
                                ("cannot open the study storage", "127.0.0.1:1", "refused"),
                                delete("study.journal")),
    "storage_url_malformed": Case(("worker", "{run}", "--storage", "notaurl"),
                                  ("cannot open the study storage", "notaurl")),
    "storage_not_a_database": Case(("study", "{run}", "--storage", "sqlite:///{tmp}/notes.txt"),
                                   ("cannot open the study storage", "not a database"),
                                   both(delete("study.journal"),
                                        lambda ctx: (ctx.tmp / "notes.txt").write_text("notes\n"))),
    "study_into_a_journal_run": Case(("study", "{run}", "--storage", "sqlite:///{tmp}/s.db"),
                                     ("{run}", "study.journal", "new run directory")),
    "worker_on_a_journal_run": Case(("worker", "{run}"), ("{run}", "study.journal", "hwnas study")),
    # -- run directories
    "run_dir_missing": Case(("select", "{tmp}/nowhere"),
                            ("{tmp}/nowhere", "no such run directory")),
    "run_dir_is_a_file": Case(("search", "{tmp}/a_file"), ("{tmp}/a_file", "is a file"),
                              a_file()),
    "run_dir_without_config": Case(("front", "{tmp}"), ("{tmp}", "not a run directory")),
    "out_is_a_file": Case(("run", "{tiny}", "--out", "{tmp}/a_file", "--quiet"),
                          ("{tmp}/a_file", "is a file"), a_file()),
    "out_below_a_file": Case(("run", "{tiny}", "--out", "{tmp}/a_file/run", "--quiet"),
                             ("{tmp}/a_file/run", "cannot write"), a_file()),
    "out_in_a_read_only_place": Case(("train", "{tiny}", "--out", "/sys/hwnas-bad-input/run"),
                                     ("/sys/hwnas-bad-input/run", "cannot write"), read_only_sys),
    "run_dir_of_another_experiment": Case(RUN_BAD, ("different experiment", "seed", "{run}"),
                                          config(("seed: 1", "seed: 2"))),
    "run_dir_and_out": Case(("train", "{run}", "--out", "{tmp}/elsewhere"),
                            ("either a run directory", "--out")),
    # -- command-line values
    "trials_zero": Case(("search", "{run}", "--trials", "0"), ("--trials", ">= 1", "0")),
    "trials_not_a_number": Case(("search", "{run}", "--trials", "ten"), ("--trials", "ten")),
    "workers_zero": Case(("search", "{run}", "--workers", "0"), ("--workers", ">= 1", "0")),
    "workers_and_dask": Case(("search", "{run}", "--workers", "2", "--dask", "tcp://x:1"),
                             ("--workers", "--dask")),
    "dask_unreachable": Case(("search", "{run}", "--trials", "8", "--dask", "tcp://127.0.0.1:1",
                              "--quiet"), ("--dask", "tcp://127.0.0.1:1", "cannot reach")),
    "check_zero": Case(("profile", "{run}", "--check", "0"), ("--check", ">= 1")),
    "unknown_command": Case(("frobnicate",), ("frobnicate",)),
    "compare_different_budgets": Case(("compare", "{run}", "{tmp}/other", "--out", "{tmp}/cmp"),
                                      ("{tmp}/other", "budgets", "same objectives"),
                                      copy_run("other", ("params: 100000", "params: 50000"))),
    "compare_a_run_twice": Case(("compare", "{run}", "{run}", "--out", "{tmp}/cmp"),
                                ("named twice",)),
    "compare_into_a_read_only_place": Case(
        ("compare", "{run}", "{tmp}/twin", "--out", "/sys/hwnas-bad-input/cmp"),
        ("/sys/hwnas-bad-input/cmp", "cannot write"), both(read_only_sys, copy_run("twin"))),
    "export_unknown_option": Case(("export", "{run}", "--arch", "b0=ir_k9_e9|b1=ir_k3_e2"),
                                  ("ir_k9_e9", "b0")),
    "export_malformed_key": Case(("export", "{run}", "--arch", "b0"), ("--arch", "name=option")),
    "export_key_missing_a_choice": Case(("export", "{run}", "--arch", "b0=ir_k3_e2"), ("b1",)),
    "export_before_select": Case(("export", "{run}"), ("nothing selected", "hwnas select"),
                                 delete("selected.json")),
    # -- retrain
    "retrain_epochs_zero": Case(("retrain", "{run}", "--epochs", "0"), ("--epochs", ">= 1")),
    "retrain_unknown_option": Case(("retrain", "{run}", "--arch", "b0=ir_k9_e9|b1=ir_k3_e2"),
                                   ("ir_k9_e9", "b0")),
    "retrain_arch_and_arch_json": Case(("retrain", "{run}", "--arch", "b0=skip|b1=ir_k3_e2",
                                        "--arch-json", "{run}/selected.json"),
                                       ("--arch-json", "not allowed")),
    "retrain_arch_json_missing": Case(("retrain", "{run}", "--arch-json", "{tmp}/none.json"),
                                      ("--arch-json", "none.json")),
    "retrain_arch_json_not_json": Case(("retrain", "{run}", "--arch-json", "{tmp}/a_file"),
                                       ("--arch-json", "not JSON"), a_file()),
    "retrain_another_subnet": Case(("retrain", "{run}", "--arch", "b0=skip|b1=ir_k3_e2"),
                                   ("another subnet", "move it away"), claim_other_subnet),
    "retrain_other_recipe": Case(("retrain", "{run}", "--epochs", "7"),
                                 ("retrain", "epochs=", "not 7")),
    "retrain_damaged_claim": Case(("retrain", "{run}"), ("arch.json", "damaged"),
                                  tear_claim),
    "retrain_claim_recipe_not_a_mapping": Case(("retrain", "{run}"),
                                               ("arch.json", "damaged", "list"),
                                               claim_with_a_list_recipe),
    "retrain_before_select": Case(("retrain", "{run}"), ("nothing selected", "hwnas select"),
                                  delete("selected.json")),
    # -- Ctrl-C
    "interrupted_search": Case(("search", "{run}", "--trials", "9", "--quiet"),
                               ("interrupted", "same command again"), interrupt_evaluation,
                               appended=("run/study.journal",), after=resumes_after_interrupt),
    "interrupted_training": Case(("train", "{run}", "--quiet"),
                                 ("interrupted", "same command again"),
                                 both(edit_run_config("  epochs: 1\n", "  epochs: 2\n"),
                                      interrupt_training),
                                 after=trains_on_after_interrupt),
}


def tree(directory: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and directory (None) under ``directory``, by relative path."""
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(directory.rglob("*"))}


def test_catalogue_is_large_enough():
    assert len(CASES) >= 35


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, run_copy, tmp_path, tiny_config, capfd, monkeypatch):
    case = CASES[name]
    monkeypatch.chdir(tmp_path)  # a default runs/NAME would land here, and be noticed
    ctx = Ctx(run=run_copy, tmp=tmp_path, tiny=tiny_config, monkeypatch=monkeypatch)
    if case.damage is not None:
        case.damage(ctx)
    before = tree(tmp_path)
    status, _, err = cli(capfd, *(ctx.fill(a) for a in case.argv))
    assert_usage_error(status, err, *(ctx.fill(f) for f in case.fragments))
    after = tree(tmp_path)
    added = {p for p in set(after) - set(before)
             if not any(p == a or a.startswith(p + "/") for a in case.added)}
    assert not added, f"{name} added {sorted(added)}"
    assert not set(before) - set(after), f"{name} removed {sorted(set(before) - set(after))}"
    for path, data in before.items():
        if path in case.appended:
            assert after[path][:len(data)] == data, f"{name} rewrote {path} (may only append)"
        else:
            assert after[path] == data, f"{name} changed {path}"
    if case.after is not None:
        case.after(ctx, capfd)
