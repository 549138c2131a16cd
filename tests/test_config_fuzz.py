"""Random YAML values at every key of the config: each is refused with one line, or works.

For every key of the schema (sections, fields, list items such as ``space.stages[0].channels``)
Hypothesis puts a random YAML value of every type into the tiny config. A value the loader
refuses must give ``hwnas run`` exit status 2, exactly one short stderr line, no traceback and
no run directory; a value it accepts must survive what follows loading: writing and reopening
the run directory and building the workspace (data, search space, supernet), which may refuse
only with a clean ``HwnasError``.
"""
from __future__ import annotations

import dataclasses
import shutil
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from _cli_helpers import assert_usage_error, cli
from conftest import TINY_CONFIG
from hwnas.config import ExperimentConfig, load_config
from hwnas.errors import ConfigError, HwnasError
from hwnas.run import RunDir, workspace
from hwnas.run.names import check_names, with_learner_defaults

#: The longest stderr line a refusal may print (a value is shown shortened).
LINE_LIMIT = 600

#: The tiny config, with a regularizer so that its keys have a section to live in.
BASE = yaml.safe_load(TINY_CONFIG)
BASE["train"].update(learner="darts", regularizer={"objective": "params", "budget": 5000.0})


def schema_keys(cls: type = ExperimentConfig, prefix: tuple = ()) -> dict[tuple, Any]:
    """Every key of the schema as a path (a list item is index 0), sections included: its type."""
    keys = {}
    for name, hint in typing.get_type_hints(cls).items():
        if typing.get_origin(hint) is typing.Union:  # Optional[X]
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        path = prefix + (name,)
        keys[path] = hint
        if dataclasses.is_dataclass(hint):
            keys.update(schema_keys(hint, path))
        elif typing.get_origin(hint) in (list, dict):
            item = typing.get_args(hint)[-1]
            keys[path + ((0,) if typing.get_origin(hint) is list else ("params",))] = item
            if dataclasses.is_dataclass(item):
                keys.update(schema_keys(item, path + (0,)))
    return keys


KEYS = schema_keys()

_ints = st.one_of(st.integers(), st.integers(min_value=-2**70, max_value=2**70),
                  st.sampled_from([0, -1, 1, 2, 3, 2**31, 2**32 - 1, 2**32, 2**63, 10**6, 10**9,
                                   10**30]))
_floats = st.one_of(st.floats(), st.sampled_from([1e308, -1e308, 1e-308, 0.5, 1e9]))
_strings = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8).map(lambda s: s + "\x00"),
    st.sampled_from(["", ".", "..", "a/b", "tiny", "params", "/", "\n", "x\ty", "{model}",
                     "echo {model}", "cpu", "darts", "lut", "auto", "runs/../x", "~", " "]),
    st.builds(lambda c, n: c * n, st.sampled_from("a\x00é"), st.integers(1000, 100_000)))
_scalars = st.one_of(st.none(), st.booleans(), _ints, _floats, _strings)
#: Any YAML value: scalars of every type, lists and mappings of them.
ANY = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)


def of_type(hint: Any) -> st.SearchStrategy:
    """Values of the key's own type, extremes included: those get past the type check."""
    origin = typing.get_origin(hint)
    if origin is list:
        return st.lists(of_type(typing.get_args(hint)[0]), max_size=6)
    if origin is dict:
        return st.dictionaries(_strings, of_type(typing.get_args(hint)[1]), max_size=3)
    if dataclasses.is_dataclass(hint):
        return st.fixed_dictionaries({}, optional={
            name: of_type(h) for name, h in typing.get_type_hints(hint).items()})
    return {int: _ints, float: _floats, str: _strings, bool: st.booleans()}.get(hint, ANY)


def with_value(key: tuple, value: Any) -> dict:
    """The base config with ``value`` at ``key`` (missing sections and list items created)."""
    data = yaml.safe_load(yaml.safe_dump(BASE))
    node = data
    for part, child in zip(key, key[1:]):
        if isinstance(node, list) and not node:
            node.append({})
        empty = [] if isinstance(child, int) else {}
        if isinstance(node, dict) and not isinstance(node.get(part), type(empty)):
            node[part] = empty
        node = node[part]
    if isinstance(node, list) and not node:
        node.append(None)
    node[key[-1]] = value
    return data


@pytest.mark.filterwarnings("ignore")
# Deterministic and bounded (about 30 s here); no shrinking, which takes minutes on examples
# that build a supernet: the failing key and value are reported as drawn.
@settings(max_examples=240, deadline=None, derandomize=True, database=None,
          phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_key_takes_any_value_cleanly(data, tmp_path_factory, capfd):
    key = data.draw(st.sampled_from(sorted(KEYS, key=str)), label="key")
    value = data.draw(st.one_of(of_type(KEYS[key]), ANY), label="value")
    tmp = tmp_path_factory.mktemp("fuzz")
    try:
        check(key, value, tmp, capfd)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check(key: tuple, value: Any, tmp: Path, capfd) -> None:
    path, out = tmp / "bad.yaml", tmp / "out"
    path.write_text(yaml.safe_dump(with_value(key, value), allow_unicode=True))
    try:
        config = load_config(path)
        check_names(config, str(path))
    except ConfigError:
        status, _, err = cli(capfd, "run", path, "--out", out, "--quiet")
        line = assert_usage_error(status, err, str(path))
        assert len(line) <= LINE_LIMIT, f"{len(line)} characters: {line[:200]}..."
        assert not out.exists(), "a refused config wrote a run directory"
        return
    # Accepted: whatever follows loading works or refuses cleanly.
    try:
        run = RunDir.create(out, config)
        # (As resolved for its learner: train.finetune_epochs left out is the learner's.)
        assert RunDir.open(out).config == with_learner_defaults(config), \
            "the written config reads back different"
        workspace(run, trained=False, progress=False)
    except HwnasError:
        pass
