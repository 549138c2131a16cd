"""The Python API (hwnas.Run, hwnas.search, the registries): the README's example runs, and
gives what the command line gives on the same run."""
from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import matplotlib
import pandas as pd
import pytest
from matplotlib.figure import Figure

import hwnas
from hwnas.config import DataConfig
from hwnas.data import DATASETS, load_dataset, register_dataset
from hwnas.errors import HwnasError, RunDirError
from hwnas.run import RunDir, Writer
from hwnas.strategies import RandomSearch, TPEStrategy, register_strategy
from hwnas.studies import ReadOnlyError
from hwnas.supernet import register_space
from tests._cli_helpers import cli, load_trials

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    """The first Python block of the README's "Python API" section."""
    text = README.read_text()
    section = text[text.index("\n## Python API\n"):]
    section = section[:section.index("\n## ", 1)]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_gives_the_front_and_selection_of_the_command_line(
        run_copy: Path, capfd, tmp_path: Path, monkeypatch):
    status, _, err = cli(capfd, "front", run_copy)
    assert status == 0, err
    cli_front = pd.read_csv(run_copy / RunDir.FRONT, float_precision="round_trip")
    status, cli_selected, err = cli(capfd, "select", run_copy, "--budget", "params=30000")
    assert status == 0, err
    (run_copy / RunDir.SELECTED).unlink()
    evaluated = {t.user_attrs["key"] for t in load_trials(run_copy) if t.values}

    code = readme_example()
    assert 'hwnas.Run("runs/digits")' in code
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    printed = io.StringIO()
    try:
        # rc_context: Optuna's matplotlib plots set the ggplot style for the whole process,
        # which would change every later test's plots.
        with contextlib.redirect_stdout(printed), matplotlib.rc_context():
            exec(compile(code.replace("runs/digits", str(run_copy)), str(README), "exec"),
                 namespace)
        loaded = load_dataset(DataConfig(name="blobs", image_size=8), seed=0)
    finally:
        if "blobs" in DATASETS:
            DATASETS.unregister("blobs")

    # The front, as a DataFrame, is front.csv of `hwnas front`: same rows, columns, numbers.
    front = namespace["front"]
    assert "latency_ms_measured" in front  # the tiny run predicts latency from its table
    pd.testing.assert_frame_equal(front.reset_index(drop=True), cli_front, check_exact=True)
    for key in cli_front["key"]:
        assert key in printed.getvalue()
    assert isinstance(namespace["study"], optuna.Study)
    with pytest.raises(ReadOnlyError):
        namespace["study"].set_user_attr("touched", True)
    assert (tmp_path / "my_front.png").stat().st_size > 10_000

    # select: the rule of `hwnas select` with the same budget (before the search went on),
    # and its record.
    chosen = namespace["chosen"]
    assert cli_selected.splitlines()[1] == chosen.arch.key
    record = json.loads((run_copy / RunDir.SELECTED).read_text())
    assert (record["key"], record["budgets"]) == (chosen.arch.key, {"params": 30000.0})

    # The search went on with the strategy object: two new subnets, recorded as its own.
    trials = load_trials(run_copy)
    new = [t for t in trials if t.values and t.user_attrs["key"] not in evaluated
           and not t.user_attrs.get("cached")]
    assert len(new) == 2
    assert {t.user_attrs["strategy"] for t in new} == {"random"}
    assert not (run_copy / RunDir.LOCK).exists()

    # The dataset registered at run time is one the config's data.name reaches.
    assert loaded.n_classes == 3 and loaded.input_shape == (1, 8, 8)


def test_methods_that_write_respect_the_run_lock(run_copy: Path):
    run = hwnas.Run(run_copy)
    assert run.config.name == "tiny" and repr(run) == f"hwnas.Run({str(run_copy)!r})"
    other = Writer("hwnas search")
    other.hold(run_copy)
    try:
        with pytest.raises(RunDirError, match="in use by 'hwnas search'"):
            run.select()
        with pytest.raises(RunDirError, match="in use by 'hwnas search'"):
            hwnas.search(run, trials=7)
        # Reading needs no lock: the front was measured whole by `hwnas run`.
        assert len(run.front()) >= 1
        assert isinstance(run.plot_front(["error", "params"]), Figure)
    finally:
        other.release()
    before = (run_copy / RunDir.SELECTED).read_bytes()
    chosen = run.select()  # the lock is free again
    assert json.loads(before)["key"] == chosen.arch.key  # the config's budgets, as `hwnas run`
    (run_copy / "model.nnp").unlink()
    info = run.export(formats=("nnp",))
    assert info["key"] == chosen.arch.key and (run_copy / "model.nnp").stat().st_size > 1000
    assert info["formats"]["nnp"]["max_abs_diff"] < 1e-4
    assert not (run_copy / RunDir.LOCK).exists()


def test_create_makes_a_run_directory_without_training(tiny_config: Path, tmp_path: Path):
    run = hwnas.Run.create(tiny_config, tmp_path / "new")
    assert run.path == tmp_path / "new" and run.config.name == "tiny"
    assert sorted(p.name for p in run.path.iterdir()) == [RunDir.CONFIG]  # no lock left behind
    assert hwnas.Run.create(tiny_config, run.path).config == run.config  # reopened
    other = tmp_path / "other.yaml"
    other.write_text(tiny_config.read_text().replace("seed: 1", "seed: 2"))
    (run.path / RunDir.LUT).write_text("{}")  # something the first experiment made
    with pytest.raises(RunDirError, match="already holds a different experiment"):
        hwnas.Run.create(other, run.path)
    with pytest.raises(RunDirError, match="nothing searched yet|no study yet"):
        run.study


def test_search_takes_a_strategy_object_and_refuses_one_that_does_not_fit(run_copy: Path):
    run = hwnas.Run(run_copy)
    choices, objectives = run.space.choices, run.config.search.objectives
    wrong = RandomSearch(choices={**choices, "extra": ("a", "b")}, objectives=objectives,
                         budgets=run.config.budgets)
    with pytest.raises(HwnasError, match="other choices than the run's"):
        hwnas.search(run, strategy=wrong, trials=8)
    nameless = type("Nameless", (RandomSearch,), {"name": ""})(
        choices=choices, objectives=objectives, budgets=run.config.budgets)
    with pytest.raises(HwnasError, match="Nameless has no name"):
        hwnas.search(run, strategy=nameless, trials=8)
    before = len(run.evaluations())
    # An Optuna strategy object proposes through the run's study, with its own seed.
    tpe = TPEStrategy(study=None, choices=choices, objectives=objectives,
                      budgets=run.config.budgets, seed=11)
    evs = hwnas.search(str(run_copy), strategy=tpe, trials=before + 1)
    assert len({e.arch.key for e in evs}) == before + 1
    assert len(tpe.study.trials) == len(run.study.trials)  # bound to the run's study
    assert load_trials(run_copy)[-1].user_attrs["strategy"] == "tpe"


def test_importing_hwnas_loads_nothing_heavy():
    # `python -m hwnas` imports hwnas first; its Ctrl-C handler and nnabla's log settings
    # must be in place before nnabla loads, so the API is imported on first use.
    code = ("import sys, hwnas; heavy = [m for m in ('nnabla', 'optuna', 'pandas') "
            "if m in sys.modules]; print(heavy, sorted(hwnas.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("[] ")
    assert [getattr(hwnas, name) for name in hwnas.__all__]  # every public name resolves
    assert (hwnas.register_dataset, hwnas.register_space, hwnas.register_strategy) == (
        register_dataset, register_space, register_strategy)  # the registries themselves
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        hwnas.nonsense  # noqa: B018
