"""The catalogue of bad input that test_bad_input.py runs: one ``Case`` for each kind."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from collections.abc import Callable

import numpy as np
import pytest

from _bad_input_damage import (Ctx, a_file, alias_bomb, both, cifar10_batch, claim_other_subnet,
                              claim_with_a_list_recipe, config, copy_run,
                              corrected_config_replaces_it, corrected_recipe_retrains,
                              data_config, delete, edit_json, edit_lut, edit_run_config,
                              foreign_journal, full_disk, garbage, half, hold_run,
                              interrupt_evaluation, interrupt_training, mnist,
                              other_space_weights, rank_check_of_one_subnet, read_only_sys, released_then, replace,
                              resumes_after_interrupt, retrain_file,
                              searches_once_there_is_room, sqlite_file, tear_a_middle_record,
                              tear_claim, trains_on_after_interrupt,
                              weights_of_another_training, without, zero_for_the_fastest_subnet,
                              few_shot_run, copies_of_another_training,
                              digit_images, digits_npz, edit_text, huge_npz, user_data,
                              entry_point, user_file)

UNREACHABLE = "postgresql+psycopg2://x@127.0.0.1:1/db"  # port 1: nothing listens there


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
        status: the exit status (130 for Ctrl-C, which is not bad input but must leave
            the run directory just as intact).
    """

    argv: tuple[str, ...]
    fragments: tuple[str, ...]
    damage: Callable[[Ctx], None] | None = None
    added: tuple[str, ...] = ()
    appended: tuple[str, ...] = ()
    after: Callable[[Ctx, pytest.CaptureFixture], None] | None = None
    status: int = 2


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
                               appended=("run/study.journal",), after=resumes_after_interrupt,
                               status=130),
    "interrupted_training": Case(("train", "{run}", "--quiet"),
                                 ("interrupted", "same command again"),
                                 both(edit_run_config("  epochs: 1\n", "  epochs: 2\n"),
                                      interrupt_training),
                                 after=trains_on_after_interrupt, status=130),
    # -- issue 15: the latency table and its calibration (hwcost)
    "lut_calibration_slope_nan": Case(  # issue 15, item 6: the search went on with NaN latencies
        ("search", "{run}", "--trials", "74", "--quiet"),
        ("{run}/lut.json", "calibration.a is nan", "hwnas lut {run}"),
        edit_lut(lambda data: data["calibration"].update(a=float("nan")))),
    "lut_calibration_slope_negative": Case(
        ("search", "{run}", "--trials", "7", "--quiet"),
        ("{run}/lut.json", "calibration.a is negative", "hwnas lut {run}"),
        edit_lut(lambda data: data["calibration"].update(a=-data["calibration"]["a"]))),
    "lut_calibration_zero_for_the_fastest_subnet": Case(  # issue 15, item 7
        ("search", "{run}", "--trials", "7", "--quiet"),
        ("{run}/lut.json", "predicts 0 ms for the fastest subnet", "hwnas lut {run}"),
        zero_for_the_fastest_subnet),
    "calibration_samples_below_the_minimum": Case(
        RUN_BAD, ("bad.yaml", "latency.calibration_samples", "between 6", "got 4"),
        config(("latency: {", "latency: {calibration_samples: 4, "))),
    # -- issue 15: one writer per run directory (the holder: this test process)
    "run_dir_in_use": Case(("front", "{run}"),
                           ("{run} is in use by 'hwnas search'", f"pid {os.getpid()} on",
                            "wait for it"),
                           hold_run("hwnas search"), after=released_then("front", "{run}")),
    "run_into_a_run_dir_in_use": Case(("run", "{tiny}", "--out", "{run}", "--quiet"),
                                      ("in use by 'hwnas export'", f"pid {os.getpid()} on"),
                                      hold_run("hwnas export"),
                                      after=released_then("select", "{run}")),
    "train_while_workers_run": Case(("train", "{run}", "--quiet"),
                                    ("in use by 'hwnas worker'", f"pid {os.getpid()} on"),
                                    hold_run("hwnas worker", shared=True),
                                    after=released_then("report", "{run}")),
    "study_in_sqlite_memory": Case(("study", "{run}", "--storage", "sqlite://"),
                                   ("sqlite://", "in memory", "sqlite:///")),
    "journal_on_a_full_disk": Case(("search", "{run}", "--trials", "8", "--quiet"),
                                   ("No space left on device", "{run}/study.journal"), full_disk,
                                   after=searches_once_there_is_room),
    "journal_record_without_op_code": Case(("dashboard", "{run}", "--port", "0"),
                                           ("{run}/study.journal", "not a readable",
                                            "without an op_code"),
                                           replace("study.journal",
                                                   lambda old: old + b'{"worker_id": "x"}\n')),
    # -- issue 15: the config loader (sizes, ranges, NUL, nesting, aliases, names, duplicates)
    "config_alias_bomb": Case(RUN_BAD, ("bad.yaml", "expands to more than", "aliases"),
                              config(text=alias_bomb())),
    "config_alias_in_its_own_anchor": Case(RUN_BAD, ("bad.yaml", "alias *k", "its own anchor"),
                                           config(("kernels: [3, 5]", "kernels: &k [3, *k]"))),
    "config_file_too_big": Case(RUN_BAD, ("bad.yaml", "at most 1048576 bytes"),
                                config(("epochs: 1,", "epochs: " + "a" * 2_000_000 + ","))),
    "config_huge_string_value": Case(RUN_BAD, ("bad.yaml", "train.epochs", "'aaa",
                                               "(500000 characters)"),
                                     config(("epochs: 1,", "epochs: " + "a" * 500_000 + ","))),
    "config_integer_of_5000_digits": Case(RUN_BAD, ("bad.yaml", "line 10", "5000 digits"),
                                          config(("epochs: 1,", "epochs: " + "9" * 5000 + ","))),
    "seed_negative": Case(RUN_BAD, ("bad.yaml", "'seed'", "2147483647", "-1"),
                          config(("seed: 1", "seed: -1"))),
    "seed_2_to_the_32": Case(RUN_BAD, ("bad.yaml", "'seed'", "4294967296"),
                             config(("seed: 1", "seed: 4294967296"))),
    "name_with_a_nul": Case(RUN_BAD, ("bad.yaml", "'name'", "NUL"),
                            config(("name: tiny", 'name: "ti\\0ny"'))),
    "command_with_a_nul": Case(RUN_BAD, ("bad.yaml", "latency.command", "NUL"),
                               config(("max_spread: 10.0}",
                                       'max_spread: 10.0, command: "echo\\0 {model}"}'))),
    "config_nested_600_deep": Case(
        RUN_BAD, ("bad.yaml", "line 7", "nested deeper"),
        config(("kernels: [3, 5]", "kernels: " + "[" * 600 + "]" * 600))),
    "head_channels_1e9": Case(RUN_BAD, ("bad.yaml", "space.head_channels", "4096", "1000000000"),
                              config(("head_channels: 16", "head_channels: 1000000000"))),
    "repeats_1e9": Case(RUN_BAD, ("bad.yaml", "latency.repeats", "100000", "1000000000"),
                        config(("repeats: 10", "repeats: 1000000000"))),
    "expansions_repeated": Case(RUN_BAD, ("bad.yaml", "space.expansions", "repeats"),
                                config(("expansions: [2, 3]", "expansions: [3, 3]"))),
    # No --out: the run directory would be runs/NAME below the test's directory.
    "name_dot_dot": Case(("run", "{cfg}", "--quiet"), ("bad.yaml", "'name'", "'..'"),
                         config(("name: tiny", 'name: ".."'))),
    "name_dot": Case(("run", "{cfg}", "--quiet"), ("bad.yaml", "'name'", "'.'"),
                     config(("name: tiny", 'name: "."'))),
    "name_with_a_control_character": Case(("run", "{cfg}", "--quiet"),
                                          ("bad.yaml", "'name'", "control"),
                                          config(("name: tiny", 'name: "a\\tb"'))),
    "duplicate_key": Case(RUN_BAD, ("bad.yaml", "'seed'", "twice", "lines 2 and 15"),
                          config(("budgets: {params: 100000}\n",
                                  "budgets: {params: 100000}\nseed: 5\n"))),
}

# -- issue 15: run files (export all-or-nothing, retrain claim, shapes, supernet fingerprint)
CASES.update({
    "selected_wrong_shape_report": Case(("report", "{run}"), ("{run}/selected.json", "'arch' missing"),
                                        replace("selected.json", b'{"key": "b0=skip"}')),
    "selected_wrong_shape_export": Case(("export", "{run}"),
                                        ("{run}/selected.json", "'arch' is a list"),
                                        edit_json("selected.json",
                                                  lambda r: {**r, "arch": list(r["arch"])})),
    "selected_key_not_its_arch": Case(("retrain", "{run}"), ("{run}/selected.json", "'key'"),
                                      edit_json("selected.json",
                                                lambda r: {**r, "key": "b0=skip|b1=ir_k3_e2"})),
    "export_record_wrong_shape": Case(("report", "{run}"),
                                      ("{run}/export.json", "'formats' is an integer"),
                                      replace("export.json", b'{"key": "b0=skip", "formats": 3}')),
    "export_model_not_the_recorded_one": Case(("report", "{run}"),
                                              ("{run}/model.onnx", "export.json", "hwnas export"),
                                              replace("model.onnx", b"another model\n")),
    "measured_wrong_shape": Case(("select", "{run}"), ("{run}/measured.json", "a list"),
                                 replace("measured.json", b"[]")),
    "measured_entry_wrong_shape": Case(("report", "{run}"),
                                       ("{run}/measured.json", "latency_ms' is a string"),
                                       edit_json("measured.json", lambda r: {
                                           k: {**v, "latency_ms": "fast"} for k, v in r.items()})),
    "derived_wrong_shape": Case(("search", "{run}", "--trials", "7", "--quiet"),
                                ("{run}/derived.json", "'choices' missing"),
                                replace("derived.json", b'{"key": "b0=skip"}')),
    "search_stats_wrong_shape": Case(("report", "{run}"),
                                     ("{run}/search_stats.json", "'evaluated' is a string"),
                                     edit_json("search_stats.json",
                                               lambda r: {**r, "evaluated": "six"})),
    "storage_wrong_shape": Case(("search", "{run}"), ("{run}/storage.json", "'url' is an integer"),
                                replace("storage.json", b'{"url": 5, "study": "tiny"}')),
    "retrain_claim_wrong_shape": Case(("retrain", "{run}"), ("arch.json", "damaged", "'key' missing"),
                                      edit_json(retrain_file("arch.json"), without("key"))),
    "retrain_result_wrong_shape_export": Case(("export", "{run}"),
                                              ("result.json", "'test_accuracy' missing"),
                                              edit_json(retrain_file("result.json"),
                                                        without("test_accuracy"))),
    "retrain_result_wrong_shape_report": Case(("report", "{run}"),
                                              ("result.json", "'arch' is a string"),
                                              edit_json(retrain_file("result.json"),
                                                        lambda r: {**r, "arch": "b0"})),
    "retrain_batch_larger_than_the_data": Case(
        ("retrain", "{run}", "--arch", "b0=skip|b1=ir_k3_e2", "--quiet"),
        ("cannot retrain", "batch_size 60000"),
        edit_run_config("  batch_size: 32\n  lr: 0.05", "  batch_size: 60000\n  lr: 0.05"),
        after=corrected_recipe_retrains),
    "weights_of_another_training": Case(("search", "{run}", "--trials", "7", "--quiet"),
                                        ("{run}/supernet.h5", "{run}/train_state.npz",
                                         "another training"),
                                        weights_of_another_training),
    # -- issue 16: the uniform learner's remedies (sandwich rule, in-place distillation)
    "train_sampling_unknown": Case(
        RUN_BAD, ("bad.yaml", "train.sampling", "uniform or sandwich", "greedy"),
        config(("batch_size: 32}", "batch_size: 32, sampling: greedy}"))),
    "train_sandwich_paths_beyond_bound": Case(
        RUN_BAD, ("bad.yaml", "train.sandwich_paths", "65", "64"),
        config(("batch_size: 32}", "batch_size: 32, sampling: sandwich, sandwich_paths: 65}"))),
    "train_distill_not_a_bool": Case(RUN_BAD, ("bad.yaml", "train.distill", "bool"),
                                     config(("batch_size: 32}", "batch_size: 32, distill: 2}"))),
    "train_distill_with_darts": Case(
        RUN_BAD, ("bad.yaml", "train.distill", "uniform learner only", "darts"),
        config(("batch_size: 32}", "batch_size: 32, learner: darts, distill: true}"))),
    "train_sandwich_with_proxyless": Case(
        RUN_BAD, ("bad.yaml", "train.sampling", "uniform learner only", "proxyless"),
        config(("batch_size: 32}", "batch_size: 32, learner: proxyless, sampling: sandwich}"))),
    "train_sandwich_paths_without_sandwich": Case(
        RUN_BAD, ("bad.yaml", "train.sandwich_paths", "train.sampling: sandwich"),
        config(("batch_size: 32}", "batch_size: 32, sandwich_paths: 4}"))),
    "train_finetune_with_uniform": Case(
        RUN_BAD, ("bad.yaml", "train.finetune_epochs", "uniform", "train.epochs"),
        config(("batch_size: 32}", "batch_size: 32, finetune_epochs: 2}"))),
    "train_finetune_epochs_negative": Case(
        RUN_BAD, ("bad.yaml", "train.finetune_epochs", "-1"),
        config(("batch_size: 32}", "batch_size: 32, learner: darts, finetune_epochs: -1}"))),
    "train_resumed_with_other_remedies": Case(
        ("train", "{run}", "--quiet"),
        ("{run}/train_state.npz", "trained with sampling uniform", "asks for sampling sandwich"),
        both(edit_run_config("  epochs: 1\n", "  epochs: 2\n"),
             edit_run_config("  sampling: uniform\n", "  sampling: sandwich\n"))),
    # -- issue 16: regularizers that land on the budget
    "regularizer_unknown_form": Case(
        RUN_BAD, ("bad.yaml", "train.regularizer.form", "tunas", "absolute"),
        config(("batch_size: 32}", "batch_size: 32, learner: darts, regularizer: "
                                   "{objective: params, budget: 5000, form: tunas}}"))),
})

# -- issue 16: rank-check (bad numbers, no study, damaged files: nothing trains)
RANK_CHECK = ("rank-check", "{run}", "--quiet")
CASES.update({
    "rank_check_more_subnets_than_the_study": Case(
        (*RANK_CHECK, "--subnets", "99"), ("--subnets 99", "evaluated only", "distinct subnets")),
    "rank_check_one_subnet": Case((*RANK_CHECK, "--subnets", "1"),
                                  ("--subnets must be >= 2", "got 1")),
    "rank_check_zero_epochs": Case((*RANK_CHECK, "--epochs", "0"),
                                   ("--epochs must be >= 1", "got 0")),
    "rank_check_zero_seeds": Case((*RANK_CHECK, "--seeds", "0"), ("--seeds must be >= 1", "got 0")),
    "rank_check_subnets_not_a_number": Case((*RANK_CHECK, "--subnets", "many"),
                                            ("--subnets", "invalid int value", "'many'")),
    "rank_check_no_study": Case(RANK_CHECK, ("study.journal", "no study yet", "hwnas search"),
                                delete("study.journal")),
    "rank_check_damaged_claim": Case(RANK_CHECK, ("arch.json", "damaged", "'key' missing"),
                                     edit_json(retrain_file("arch.json"), without("key"))),
    "rank_check_json_wrong_shape": Case(("report", "{run}"),
                                        ("{run}/rank_check.json", "'recipe' missing",
                                         "hwnas rank-check"),
                                        replace("rank_check.json", b'{"subnets": 3}')),
    "rank_check_json_of_one_subnet": Case(("report", "{run}"),
                                          ("{run}/rank_check.json", "fewer than 2"),
                                          rank_check_of_one_subnet),
})

# -- issue 16: few-shot supernets
CASES.update({
    "train_split_with_darts": Case(
        RUN_BAD, ("bad.yaml", "train.split_epochs", "uniform learner only", "darts"),
        config(("batch_size: 32}", "batch_size: 32, learner: darts, split_epochs: 1}"))),
    "train_split_choice_unknown": Case(
        RUN_FRESH, ("{tmp}/fresh/config.yaml", "train.split_choice", "'b9'",
                    "known: auto, b0, b1"),
        config(("batch_size: 32}", "batch_size: 32, split_epochs: 1, split_choice: b9}")),
        added=FRESH_CONFIG),
    "train_split_choice_without_split": Case(
        RUN_BAD, ("bad.yaml", "train.split_choice", "train.split_epochs"),
        config(("batch_size: 32}", "batch_size: 32, split_choice: b0}"))),
    "train_split_epochs_beyond_bound": Case(
        RUN_BAD, ("bad.yaml", "train.split_epochs", "10001", "10000"),
        config(("batch_size: 32}", "batch_size: 32, split_epochs: 10001}"))),
    "split_weights_missing": Case(
        ("search", "{run}", "--quiet"), ("{run}/supernet_split.npz", "missing",
                                         "train_state.npz"),
        both(few_shot_run, delete("supernet_split.npz"))),
    "split_weights_truncated": Case(
        ("search", "{run}", "--quiet"), ("{run}/supernet_split.npz", "truncated"),
        both(few_shot_run, replace("supernet_split.npz", half))),
    "split_weights_of_another_training": Case(
        ("export", "{run}"), ("{run}/supernet_split.npz", "{run}/train_state.npz",
                              "another training"),
        both(few_shot_run, copies_of_another_training)),
})

# -- issue 17: data sources (folder, csv, npz): each names the file (and the CSV line)
FOLDER = config(user_data("folder", "images"))
CSV = config(user_data("csv", "images.csv"))
NPZ = config(user_data("npz", "digits.npz"))
CLASS_3 = "images/3/0015.png"  # the first image of class 3, line 17 of images.csv
CASES.update({
    "folder_image_truncated": Case(
        RUN_FRESH, ("{tmp}/" + CLASS_3, "truncated"),
        both(digit_images(lambda tmp: (tmp / CLASS_3).write_bytes(
            (tmp / CLASS_3).read_bytes()[:60])), FOLDER), added=FRESH_CONFIG),
    "folder_image_unreadable": Case(
        RUN_FRESH, ("{tmp}/" + CLASS_3, "not a readable image", "cannot identify"),
        both(digit_images(lambda tmp: (tmp / CLASS_3).write_bytes(b"not a PNG\n")), FOLDER),
        added=FRESH_CONFIG),
    "folder_empty": Case(RUN_FRESH, ("{tmp}/images", "no class folders"),
                         both(lambda ctx: (ctx.tmp / "images").mkdir(), FOLDER),
                         added=FRESH_CONFIG),
    "folder_class_without_images": Case(
        RUN_FRESH, ("{tmp}/images/5", "no images"),
        both(digit_images(*(lambda tmp, i=i: (tmp / f"images/5/00{i}.png").unlink()
                            for i in range(25, 30))), FOLDER), added=FRESH_CONFIG),
    # A file that is not an image is skipped; its note waits for a load that succeeds, so
    # the error stays the only line.
    "folder_class_too_small_to_split": Case(
        RUN_FRESH, ("{tmp}/images", "class '7'", "2 example", "at least 3"),
        both(digit_images(lambda tmp: (tmp / "images/7/README.txt").write_text("notes\n"),
                          *(lambda tmp, i=i: (tmp / f"images/7/00{i}.png").unlink()
                            for i in range(37, 40))), FOLDER), added=FRESH_CONFIG),
    "folder_symlink_loop": Case(
        RUN_FRESH, ("{tmp}/images/4/loop", "symbolic link loop"),
        both(digit_images(lambda tmp: (tmp / "images/4/loop").symlink_to(tmp / "images")),
             FOLDER), added=FRESH_CONFIG),
    "csv_missing_columns": Case(
        RUN_FRESH, ("{tmp}/images.csv", "no 'x' column", "x:image and y:label"),
        both(digit_images(edit_text("images.csv", "x:image,y:label", "image,label")), CSV),
        added=FRESH_CONFIG),
    "csv_label_not_an_integer": Case(
        RUN_FRESH, ("{tmp}/images.csv, line 17", "'three'", "not an integer"),
        both(digit_images(edit_text("images.csv", CLASS_3 + ",3", CLASS_3 + ",three")), CSV),
        added=FRESH_CONFIG),
    "csv_label_out_of_range": Case(
        RUN_FRESH, ("{tmp}/images.csv, line 17", "label -3", "out of range"),
        both(digit_images(edit_text("images.csv", CLASS_3 + ",3", CLASS_3 + ",-3")), CSV),
        added=FRESH_CONFIG),
    "csv_image_missing": Case(
        RUN_FRESH, ("{tmp}/images/3/0099.png", "file not found", "line 17 of {tmp}/images.csv"),
        both(digit_images(edit_text("images.csv", CLASS_3, "images/3/0099.png")), CSV),
        added=FRESH_CONFIG),
    "npz_label_out_of_range": Case(
        RUN_FRESH, ("{tmp}/digits.npz", "label 99999", "out of range"),
        both(digits_npz(y=np.r_[99999, np.arange(49) % 10]), NPZ), added=FRESH_CONFIG),
    "npz_label_not_an_integer": Case(
        RUN_FRESH, ("{tmp}/digits.npz", "label 2.5", "not an integer"),
        both(digits_npz(y=np.r_[2.5, np.arange(49) % 10]), NPZ), added=FRESH_CONFIG),
    "npz_images_of_different_shapes": Case(
        RUN_FRESH, ("{tmp}/digits.npz", "object array", "different shapes"),
        both(digits_npz(x=np.array([np.zeros((8, 8)), np.zeros((9, 9))], dtype=object),
                        y=np.arange(2)), NPZ), added=FRESH_CONFIG),
    "data_channels_not_1_or_3": Case(
        RUN_BAD, ("bad.yaml", "data.channels", "1 (grey) or 3 (RGB)", "got 2"),
        config(("image_size: 8}", "image_size: 8, channels: 2}"))),
    "npz_larger_than_memory": Case(
        RUN_FRESH, ("{tmp}/big.npz", "320,150,994,944 bytes", "memory are available"),
        both(huge_npz, config(user_data("npz", "big.npz"))), added=FRESH_CONFIG),
})

# -- issue 17: a user's own space, strategy and dataset by spec
EXAMPLE_SPACE = (Path(__file__).resolve().parent.parent / "examples" / "custom_space"
                 / "vgg_space.py")


def _space(spec: str, options: str = "") -> tuple[str, str]:
    """The edit that names the space ``spec`` (with ``options``) in the tiny config."""
    return "space:\n", f"space:\n  name: {spec}\n" + (f"  options: {options}\n" if options else "")


CASES.update({
    "space_spec_module_missing": Case(
        RUN_BAD, ("bad.yaml", "space.name", "no_such_pkg.spaces:MySpace", "no module named "
                  "'no_such_pkg'"), config(_space("no_such_pkg.spaces:MySpace"))),
    "space_spec_file_missing": Case(
        RUN_BAD, ("bad.yaml", "space.name", "{tmp}/missing_space.py", "no such file"),
        config(_space("./missing_space.py:MySpace"))),
    "space_spec_attribute_missing": Case(
        RUN_BAD, ("bad.yaml", "space.name", "my_plugin.py", "no attribute 'MySpace'"),
        both(user_file("my_plugin.py"), config(_space("./my_plugin.py:MySpace")))),
    "space_spec_wrong_type": Case(
        RUN_BAD, ("bad.yaml", "space.name", "my_plugin.py:helper", "is a function",
                  "not a BaseSearchSpace subclass"),
        both(user_file("my_plugin.py"), config(_space("./my_plugin.py:helper")))),
    "space_spec_raises_on_import": Case(
        RUN_BAD, ("bad.yaml", "space.name", "my_plugin.py", "RuntimeError: needs a GPU"),
        both(user_file("my_plugin.py", "raise RuntimeError('needs a GPU\\nand more')\n"),
             config(_space("./my_plugin.py:MySpace")))),
    "space_spec_not_a_python_file": Case(
        RUN_BAD, ("bad.yaml", "space.name", "notes.txt", "not a Python file"),
        both(user_file("notes.txt"), config(_space("./notes.txt:MySpace")))),
    "space_entry_point_broken": Case(
        RUN_BAD, ("bad.yaml", "space.name", "'vgg'", "entry point", "hwnas.spaces",
                  "No module named 'gone_pkg'"),
        both(entry_point("hwnas.spaces", "vgg", "gone_pkg.spaces:VggSpace"),
             config(_space("vgg")))),
    "space_option_unknown": Case(
        RUN_BAD, ("bad.yaml", "space.options.widht", "VggSpace", "it takes:", "widths"),
        config(_space(f"{EXAMPLE_SPACE}:VggSpace", "{widht: 8}"))),
    "space_option_is_a_space_key": Case(
        RUN_BAD, ("bad.yaml", "space.options.kernels", "set space.kernels"),
        config(_space("mobilenet", "{kernels: [3]}"))),
    "space_option_refused_by_the_space": Case(
        RUN_FRESH, ("{tmp}/fresh/config.yaml", "'space'", "widths must be even"),
        config(_space(f"{EXAMPLE_SPACE}:VggSpace", "{widths: [3]}")), added=FRESH_CONFIG),
    "space_weight_sharing_unknown": Case(
        RUN_FRESH, ("{tmp}/fresh/config.yaml", "'space'", "weight_sharing must be one of "
                    "separate, nested", "'shared'"),
        config(_space("mobilenet", "{weight_sharing: shared}")), added=FRESH_CONFIG),
    "strategy_spec_wrong_type": Case(
        RUN_BAD, ("bad.yaml", "search.strategy", "my_plugin.py:helper",
                  "not a BaseStrategy subclass"),
        both(user_file("my_plugin.py"), config(("trials: 6", "trials: 6, strategy: "
                                                            "./my_plugin.py:helper")))),
    "strategy_spec_option_file_missing": Case(
        ("search", "{run}", "--strategy", "./gone.py:Mine"),
        ("--strategy", "{tmp}/gone.py", "no such file")),
    "dataset_spec_module_missing": Case(
        RUN_BAD, ("bad.yaml", "data.name", "no_such_pkg", "no module named"),
        config(("name: synthetic", "name: no_such_pkg.data:load"))),
    "check_space_unloadable": Case(
        ("check-space", "./gone.py:MySpace"), ("check-space", "{tmp}/gone.py", "no such file")),
    "check_space_bad_input_shape": Case(
        ("check-space", "mobilenet", "--input-shape", "1,8"), ("--input-shape", "C,H,W",
                                                               "'1,8'")),
    "check_space_nothing_to_check": Case(("check-space",), ("check-space needs a SPEC",)),
})
