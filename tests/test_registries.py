"""Conformance tests of every registry, and of the config's independence from them."""
from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hwnas.config import DataConfig, ExperimentConfig, config_from_dict
from hwnas.data import (AUGMENTATIONS, DATASETS, RawData, augment, default_augmentation,
                        load_dataset, register_dataset)
from hwnas.errors import ConfigError
from hwnas.registry import Registry
from hwnas.run.names import check_names
from hwnas.strategies import STRATEGIES, RandomSearch
from hwnas.supernet import SPACES, ChainSpace
from hwnas.supernet.learners import COST_OBJECTIVES, FORMS, LEARNERS, UniformLearner

ROOT = Path(__file__).resolve().parent.parent
NEW = "zz_new_entry"


def _config(dotted: str, name: str) -> ExperimentConfig:
    """The default config with the name at ``dotted`` set (with what that name needs)."""
    regularized = {"learner": "darts", "regularizer": {"objective": "params", "budget": 1.0}}
    data: dict[str, Any] = {
        "data.name": {"data": {"name": name}},
        "space.name": {"space": {"name": name}},
        "train.learner": {"train": {"learner": name}},
        "train.regularizer.objective": {"train": {**regularized, "regularizer": {
            "objective": name, "budget": 1.0}}},
        "train.regularizer.form": {"train": {**regularized, "regularizer": {
            "objective": "params", "budget": 1.0, "form": name}}},
        "search.strategy": {"search": {"strategy": name}},
        "retrain.augmentation": {"retrain": {"augmentation": name}},
    }[dotted]
    return config_from_dict(data)


def _toy_loader(cfg: DataConfig) -> RawData:
    rng = np.random.default_rng(0)
    return RawData(x=rng.integers(0, 256, (40, 1, 6, 6)).astype(np.float32),
                   y=np.arange(40) % 2, peak=255.0, n_classes=2)


# registry, the key a config names it under, a new entry it accepts.
CASES: dict[str, tuple[Registry, str, Callable[[], Any]]] = {
    "spaces": (SPACES, "space.name", lambda: ChainSpace),
    "strategies": (STRATEGIES, "search.strategy", lambda: RandomSearch),
    "learners": (LEARNERS, "train.learner", lambda: UniformLearner),
    "regularizer objectives": (COST_OBJECTIVES, "train.regularizer.objective",
                               lambda: "a toy cost"),
    "regularizer forms": (FORMS, "train.regularizer.form", lambda: FORMS.get("additive")),
    "datasets": (DATASETS, "data.name", lambda: DATASETS.get("synthetic")),
    "augmentations": (AUGMENTATIONS, "retrain.augmentation", lambda: AUGMENTATIONS.get("shift")),
}


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest) -> tuple[Registry, str, Callable[[], Any]]:
    return CASES[request.param]


@pytest.fixture
def cleanup():
    """``cleanup(registry, name)`` before registering: the test leaves the registry as it was."""
    added: list[tuple[Registry, str]] = []
    yield lambda registry, name: added.append((registry, name))
    for registry, name in added:
        if name in registry:
            registry.unregister(name)


# ---------------------------------------------------------------- every registry


def test_registry_is_not_empty_and_iterates_its_names(case) -> None:
    registry, _, _ = case
    assert len(registry) >= 2
    assert list(registry) == registry.names() == [name for name, _ in registry.items()]
    assert all(name in registry for name in registry)
    assert NEW not in registry and 3 not in registry and [] not in registry


def test_unknown_name_lists_every_known_name(case) -> None:
    registry, _, _ = case
    with pytest.raises(ValueError) as info:
        registry.get("zz_no_such")
    message = str(info.value)
    assert f"unknown {registry.kind} 'zz_no_such'" in message
    assert message.endswith("known: " + ", ".join(registry.names()))
    with pytest.raises(ValueError, match="zz_no_such"):
        registry["zz_no_such"]


def test_duplicate_registration_is_refused(case) -> None:
    registry, _, new_entry = case
    name = registry.names()[0]
    before = registry.get(name)
    with pytest.raises(ValueError, match=f"{registry.kind} '{name}' is already registered"):
        registry.register(name, new_entry())
    assert registry.get(name) is before and registry.names()[0] == name


def test_wildcard_listing(case) -> None:
    registry, _, _ = case
    names = registry.names()
    assert registry.names("*") == names
    assert registry.names("zz_no_such_*") == []
    for name in names:
        assert registry.names(name) == [name]
        assert name in registry.names(name[0] + "*")
        assert registry.names(name[:-1] + "?") == [n for n in names if n[:-1] == name[:-1]
                                                   and len(n) == len(name)]


def test_a_registered_entry_is_accepted_by_check_names(case, cleanup) -> None:
    registry, key, new_entry = case
    config = _config(key, NEW)
    with pytest.raises(ConfigError) as info:
        check_names(config, "exp.yaml")
    message = str(info.value)
    assert message.startswith(f"exp.yaml: '{key}' ") and f"'{NEW}'" in message
    assert all(name in message for name in registry)
    assert "\n" not in message
    cleanup(registry, NEW)
    entry = new_entry()
    assert registry.register(NEW, entry) is entry
    assert registry.get(NEW) is entry and NEW in registry.names()
    if not registry.sort:
        assert registry.names()[-1] == NEW  # a default registered first stays first
    check_names(config, "exp.yaml")
    registry.unregister(NEW)
    assert NEW not in registry
    with pytest.raises(ConfigError):
        check_names(config, "exp.yaml")


# ---------------------------------------------------------------- the generic class


def test_register_as_a_decorator_returns_its_target() -> None:
    registry: Registry[Callable] = Registry("widget")

    @registry.register("b")
    def b() -> None: ...

    registry.register("a", len)
    assert registry.get("b") is b and registry["a"] is len
    assert registry.names() == ["b", "a"]  # registration order
    assert Registry("widget", sort=True).names() == []
    with pytest.raises(ValueError, match="non-empty"):
        registry.register("", len)
    with pytest.raises(ValueError, match="unknown widget 'c'; known: b, a"):
        registry.unregister("c")
    assert registry.unregister("b") is b and registry.names() == ["a"]


def test_a_sorted_registry_lists_and_reports_names_sorted() -> None:
    registry: Registry[int] = Registry("number", sort=True)
    for name in ("two", "three", "one"):
        registry.register(name, len(name))
    assert registry.names() == ["one", "three", "two"] == list(registry)
    with pytest.raises(ValueError, match="known: one, three, two$"):
        registry.get("four")
    with pytest.raises(ValueError, match=r"unknown number \['x'\]"):
        registry.get(["x"])  # an unhashable name from YAML is just unknown


# ---------------------------------------------------------------- datasets and augmentations


def test_a_registered_dataset_loads_and_declares_what_it_needs(cleanup) -> None:
    cleanup(DATASETS, NEW)
    assert register_dataset(NEW, _toy_loader, needs_path=True,
                            augmentation="crop-flip") is _toy_loader
    config = config_from_dict({"data": {"name": NEW, "image_size": 4}})
    with pytest.raises(ConfigError, match=f"'data.path' dataset '{NEW}' needs the path"):
        check_names(config, "exp.yaml")
    config = config_from_dict({"data": {"name": NEW, "image_size": 4, "path": "/toy"}})
    check_names(config, "exp.yaml")
    ds = load_dataset(config.data, seed=0)
    assert ds.name == NEW and ds.n_classes == 2
    assert len(ds.train) + len(ds.val) + len(ds.test) == 40
    assert ds.train.x.shape[1:] == (1, 4, 4)
    assert default_augmentation(NEW) == "crop-flip"


def test_a_dataset_must_name_a_registered_augmentation(cleanup) -> None:
    cleanup(DATASETS, NEW)
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        register_dataset(NEW, _toy_loader, augmentation="rotate")
    assert NEW not in DATASETS


def test_a_registered_augmentation_is_used_by_augment(cleanup) -> None:
    cleanup(AUGMENTATIONS, NEW)
    seen = {}

    @AUGMENTATIONS.register(NEW)
    def negate(x, rng, *, fill, pad):
        seen.update(fill=fill, pad=pad)
        return -x

    x = np.ones((2, 3, 8, 8), np.float32)
    assert np.array_equal(augment(x, np.random.default_rng(0), NEW), -x)
    assert seen["pad"] == 1 and np.array_equal(seen["fill"], np.zeros(3, np.float32))


# ---------------------------------------------------------------- no loop through the config


@pytest.mark.parametrize("module", ["hwnas/config.py", "hwnas/_config_sections.py",
                                    "hwnas/_config_training.py"])
def test_the_config_imports_none_of_the_packages_it_configures(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names]
    assert imported, "the parse found no import at all"
    configured = ("hwnas.data", "hwnas.supernet", "hwnas.strategies")
    assert [m for m in imported if m and m.startswith(configured)] == []


def test_loading_the_data_package_or_the_config_imports_neither_the_other() -> None:
    code = ("import sys, importlib; importlib.import_module(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[2:]))))")
    for module, others in (("hwnas.data", ["hwnas.config"]),
                           ("hwnas.config", ["hwnas.data", "hwnas.supernet", "hwnas.strategies"])):
        out = subprocess.run([sys.executable, "-c", code, module, *others], check=True,
                             capture_output=True, text=True).stdout
        assert out.strip() == "[]", f"{module} imported {out.strip()}"


# --- a new entry is one new module ---------------------------------------------------------


def test_import_modules_imports_every_module_of_a_folder_once(tmp_path, monkeypatch):
    import sys

    from hwnas.registry import Registry, import_modules
    toys = Registry("toy")
    package = tmp_path / "toyplugins"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("_b", "_a", "c"):
        (package / f"{name}.py").write_text(
            f"from hwnas_toy_registry import TOYS\nTOYS.register({name!r}, {name!r})\n")
    (package / "sub").mkdir()
    (package / "sub" / "__init__.py").write_text("raise ImportError('subpackages are left alone')")
    holder = type(sys)("hwnas_toy_registry")
    holder.TOYS = toys
    monkeypatch.setitem(sys.modules, "hwnas_toy_registry", holder)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    importlib.import_module("toyplugins")
    try:
        assert import_modules("toyplugins") == ["toyplugins._a", "toyplugins._b", "toyplugins.c"]
        assert toys.names() == ["_a", "_b", "c"]
        assert import_modules("toyplugins") == []  # each module once
    finally:
        for name in [m for m in sys.modules if m.startswith("toyplugins")]:
            del sys.modules[name]


@pytest.mark.parametrize("package", ["hwnas.data", "hwnas.supernet", "hwnas.supernet.learners",
                                     "hwnas.strategies"])
def test_a_registering_package_imports_every_module_of_its_folder(package):
    import importlib
    import pkgutil
    import sys
    face = importlib.import_module(package)
    modules = [f"{package}.{info.name}" for info in pkgutil.iter_modules(face.__path__)
               if not info.ispkg]
    assert modules and [m for m in modules if m not in sys.modules] == []
