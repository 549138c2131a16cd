"""A user's own space, strategy and dataset by spec: module:attr, file.py:attr, entry points;
space.options; a search with a strategy from a file."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _cli_helpers import cli

from hwnas.config import config_from_dict
from hwnas.data import DATASETS, DataSource, load_dataset
from hwnas.errors import ConfigError
from hwnas.registry import Registry, absolute_spec, is_file_spec
from hwnas.arch import Arch
from hwnas.run import RunDir, configure_run, space_from_config
from hwnas.run.names import check_names
from hwnas.strategies import STRATEGIES, BaseStrategy, strategy_class
from hwnas.studies import load_read_only
from hwnas.supernet import SPACES, ChainSpace, create_space, space_keywords

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "custom_space" / "vgg_space.py"

#: A user's package: a space (a small chain), a strategy and a dataset loader.
PACKAGE = '''\
import numpy as np
from hwnas.data import RawData
from hwnas.strategies import RandomSearch
from hwnas.supernet import ChainSpace


class Narrow(ChainSpace):
    def __init__(self, *, input_shape, n_classes, width=8):
        super().__init__(input_shape=input_shape, n_classes=n_classes, stem_channels=width,
                         stages=[(width, 1, 1)], kernels=[3], expansions=[2, 3])
        self.width = width


class Mine(RandomSearch):
    name = "mine"


def load(cfg):
    rng = np.random.default_rng(0)
    return RawData(x=rng.integers(0, 256, (60, 1, 6, 6)).astype(np.uint8),
                   y=np.arange(60) % 3, peak=255.0, n_classes=3)


NOT_A_CLASS = 3
'''


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``user_pkg_N.plugins`` importable from ``tmp_path``; returns the module name."""
    name = f"user_pkg_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / name / "plugins.py").write_text(PACKAGE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{name}.plugins"
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]


def dist_info(site: Path, entries: dict[str, dict[str, str]]) -> None:
    """An installed package in ``site`` whose entry points are ``entries`` (group -> name ->
    value): what pip leaves behind, and all importlib.metadata reads."""
    info = site / "user_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: user-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{n} = {v}\n" for n, v in names.items())
        for group, names in entries.items()))


# ---------------------------------------------------------------- the forms of a spec


def test_a_module_spec_loads_each_kind(user_package: str) -> None:
    space = SPACES.resolve(f"{user_package}:Narrow")
    assert space.__name__ == "Narrow" and issubclass(space, ChainSpace)
    assert SPACES.resolve(f"{user_package}:Narrow") is space  # loaded once
    assert STRATEGIES.resolve(f"{user_package}:Mine").name == "mine"
    source = DATASETS.resolve(f"{user_package}:load")
    assert isinstance(source, DataSource) and not source.needs_path
    data = load_dataset(config_from_dict({"data": {"name": f"{user_package}:load",
                                                    "image_size": 6}}).data, seed=0)
    assert data.n_classes == 3 and len(data.train.y) + len(data.val.y) + len(data.test.y) == 60
    assert f"{user_package}:Narrow" not in SPACES.names()  # a spec is not a registered name


def test_a_file_spec_is_relative_to_the_config_and_stored_absolute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "spaces.py").write_text(PACKAGE)
    (project / "exp.yaml").write_text(
        "name: mine\ndata: {name: synthetic, image_size: 8}\n"
        "space: {name: ./spaces.py:Narrow, options: {width: 4}}\n"
        "search: {strategy: ./spaces.py:Mine}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the spec is relative to the config, not to here
    run = configure_run(str(project / "exp.yaml"), str(tmp_path / "run"))
    stored = (tmp_path / "run" / "config.yaml").read_text()
    assert f"name: {project / 'spaces.py'}:Narrow" in stored
    assert f"strategy: {project / 'spaces.py'}:Mine" in stored
    assert not (project / "__pycache__").exists()
    space = space_from_config(run.config, load_dataset(run.config.data, seed=0))
    assert type(space).__name__ == "Narrow" and space.width == 4
    assert space.stem_channels == 4  # the option reached the class
    # A command run later from yet another directory reopens it.
    monkeypatch.chdir(tmp_path)
    assert RunDir.open(tmp_path / "run").config.space.name == f"{project / 'spaces.py'}:Narrow"


def test_absolute_spec_touches_files_only(tmp_path: Path) -> None:
    assert absolute_spec("./a/b.py:C", tmp_path) == f"{tmp_path / 'a' / 'b.py'}:C"
    assert absolute_spec("/x/b.py:C", tmp_path) == "/x/b.py:C"
    for spec in ("mobilenet", "pkg.mod:C", "pkg.mod:C.Inner"):
        assert absolute_spec(spec, tmp_path) == spec and not is_file_spec(spec)
    assert is_file_spec("sub/dir/x.py:C") and is_file_spec("x.py:C")


def test_an_entry_point_is_loaded_when_the_name_is_no_built_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_package: str) -> None:
    dist_info(tmp_path / "site", {"hwnas.spaces": {"narrow": f"{user_package}:Narrow"},
                                  "hwnas.strategies": {"mine": f"{user_package}:Mine"},
                                  "hwnas.datasets": {"three": f"{user_package}:load",
                                                     "broken": f"{user_package}:NOT_A_CLASS"}})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert SPACES.resolve("narrow").__name__ == "Narrow"
    assert "narrow" not in SPACES.names()  # the registry's own names stay the built-ins
    assert strategy_class("mine").name == "mine"
    assert DATASETS.resolve("three").load is not None
    # Installed names are listed as known; a broken one names its entry point and group.
    with pytest.raises(ValueError, match=r"known: .*mobilenet, narrow$"):
        SPACES.resolve("zz_none")
    with pytest.raises(ValueError, match="dataset 'broken' is an int, not a dataset loader"):
        DATASETS.resolve("broken")
    config = config_from_dict({"space": {"name": "narrow"}, "search": {"strategy": "mine"},
                               "data": {"name": "three"}})
    check_names(config, "exp.yaml")
    assert "mobilenet" in SPACES.names()  # a built-in name still wins


@pytest.mark.parametrize("spec, fragments", [
    ("{pkg}:Gone", ("has no attribute 'Gone'",)),
    ("{pkg}:NOT_A_CLASS", ("is an int", "not a BaseSearchSpace subclass")),
    ("{pkg}:Mine", ("the class 'Mine'", "not a BaseSearchSpace subclass")),
    ("hwnas.supernet:BaseSearchSpace", ("implements", "arch_units, supernet, units")),
    ("no_such_pkg_zz.spaces:X", ("no module named 'no_such_pkg_zz'",)),
    ("{pkg}:", ("expected a registered name, MODULE:ATTRIBUTE",)),
    ("./gone.py:X", ("no such file",)),
])
def test_a_spec_that_does_not_load_says_why_in_one_line(user_package: str, spec: str,
                                                        fragments: tuple[str, ...]) -> None:
    spec = spec.format(pkg=user_package)
    with pytest.raises(ConfigError) as info:
        check_names(config_from_dict({"space": {"name": spec}}), "exp.yaml")
    message = str(info.value)
    assert message.startswith("exp.yaml: 'space.name' ") and "\n" not in message
    assert all(f in message for f in fragments), message


def test_a_module_that_raises_on_import_is_named_with_its_first_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "raising_zz.py").write_text("import os\nraise RuntimeError('no GPU\\nhere')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError) as info:
        STRATEGIES.resolve("raising_zz:X")
    assert str(info.value) == ("cannot load strategy 'raising_zz:X': importing raising_zz "
                               "raised RuntimeError: no GPU")
    # A module that is there but imports a missing one is the module's fault, not a typo.
    (tmp_path / "needs_zz.py").write_text("import torch_zz_missing\n")
    with pytest.raises(ValueError, match="importing needs_zz raised ModuleNotFoundError"):
        STRATEGIES.resolve("needs_zz:X")
    assert "raising_zz" not in sys.modules


def test_a_registry_without_a_group_resolves_names_and_specs_only(user_package: str) -> None:
    widgets: Registry[object] = Registry("widget")
    widgets.register("a", len)
    assert widgets.resolve("a") is len and widgets.entry_point_names() == []
    assert widgets.resolve(f"{user_package}:NOT_A_CLASS") == 3  # no accept: anything goes
    with pytest.raises(ValueError, match="unknown widget 'b'; known: a$"):
        widgets.resolve("b")


# ---------------------------------------------------------------- space.options


def test_space_options_reach_the_class_and_unknown_ones_are_refused() -> None:
    vgg = SPACES.resolve(f"{EXAMPLE}:VggSpace")
    config = {"input_shape": (1, 8, 8), "n_classes": 10, "kernels": [3, 5, 7], "cells": 8}
    kwargs = space_keywords(vgg, config, {"widths": [4, 8], "kernels": [3]})
    # The space reads none of the section's keys: its own ``kernels`` come from options.
    assert kwargs == {"input_shape": (1, 8, 8), "n_classes": 10, "widths": [4, 8],
                      "kernels": [3]}
    assert vgg(**kwargs).widths == [4, 8]
    with pytest.raises(ValueError) as info:
        space_keywords(vgg, config, {"widht": 4})
    assert str(info.value) == ("'space.options.widht' is no argument of VggSpace; it takes: "
                               "blocks, head_channels, kernels, kinds, optional, width_ratios, "
                               "widths")
    with pytest.raises(ValueError, match="'space.options.n_classes' comes from the data"):
        space_keywords(vgg, config, {"n_classes": 3})
    # A built-in space keeps its section keys; an option may not shadow one.
    chain = {**config, "stem_channels": 8, "skip": False}
    kwargs = space_keywords(ChainSpace, chain, {})
    assert kwargs["skip"] is False and kwargs["kernels"] == [3, 5, 7] and "cells" not in kwargs
    with pytest.raises(ValueError, match="set space.skip instead"):
        space_keywords(ChainSpace, chain, {"skip": True})
    with pytest.raises(ValueError, match="it takes: weight_sharing$"):
        space_keywords(ChainSpace, chain, {"depth": 3})
    assert space_keywords(ChainSpace, chain, {"weight_sharing": "nested"})[
        "weight_sharing"] == "nested"


def test_space_options_in_a_config_are_checked_before_anything_runs() -> None:
    good = config_from_dict({"space": {"name": f"{EXAMPLE}:VggSpace",
                                       "options": {"widths": [4], "optional": False}}})
    check_names(good, "exp.yaml")
    assert good.space.options == {"widths": [4], "optional": False}
    bad = config_from_dict({"space": {"name": f"{EXAMPLE}:VggSpace",
                                      "options": {"width": 4}}})
    with pytest.raises(ConfigError, match="exp.yaml: 'space.options.width' is no argument"):
        check_names(bad, "exp.yaml")
    assert create_space(f"{EXAMPLE}:VggSpace", input_shape=(1, 8, 8), n_classes=2,
                        widths=[4], blocks=1, kernels=[3]).size == 6


# ---------------------------------------------------------------- a user's strategy


STRATEGY = '''\
from hwnas.arch import Arch
from hwnas.strategies import ProposingStrategy


class FirstOptions(ProposingStrategy):
    """Proposes option i of every choice for i = 0, 1, ...: easy to recognise."""

    name = "first-options"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.i = 0

    def _propose(self, n):
        archs = []
        for _ in range(n):
            archs.append(Arch({c: o[min(self.i, len(o) - 1)] for c, o in self.choices.items()}))
            self.i += 1
        return archs

    def _learn(self, arch, values, violation):
        pass

    def trial_attrs(self, arch):
        return {"from_a_file": True}
'''


def test_a_search_runs_with_a_strategy_from_a_file(run_copy: Path, tmp_path: Path,
                                                   capfd: pytest.CaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mine.py").write_text(STRATEGY)
    monkeypatch.chdir(tmp_path)  # --strategy's file is relative to the working directory
    cls = strategy_class("./mine.py:FirstOptions")
    assert issubclass(cls, BaseStrategy)
    before = len(load_read_only(run_copy).trials)
    status, out, err = cli(capfd, "search", run_copy, "--strategy", "./mine.py:FirstOptions",
                           "--trials", "8", "--quiet")
    assert status == 0, err
    trials = load_read_only(run_copy).trials
    mine = [t for t in trials if t.user_attrs.get("strategy") == "first-options"]
    assert mine and len(trials) > before
    assert all(t.user_attrs.get("from_a_file") is True for t in mine)
    # Its proposals are option i of every choice, for consecutive i (repeats of known
    # subnets are answered from the study and not recorded again).
    run = RunDir.open(run_copy)
    space = space_from_config(run.config, load_dataset(run.config.data, seed=run.config.seed))
    longest = max(len(o) for o in space.choices.values())
    proposed = [Arch({c: o[min(i, len(o) - 1)] for c, o in space.choices.items()})
                for i in range(longest)]
    assert {t.user_attrs["key"] for t in mine} <= {a.key for a in proposed}
    assert all(t.state.name == "COMPLETE" for t in mine)
