"""Tests of hwnas.supernet: registry, choices, sampling, weight sharing, learner, checkpoints."""
from __future__ import annotations

import itertools
from pathlib import Path

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_SPACE, forward, graph_leaves, group_of, randomize, snapshot

from hwnas.arch import Arch
from hwnas.config import DataConfig, TrainConfig
from hwnas.data import Dataset, load_dataset
from hwnas.errors import RunDirError
from hwnas.supernet import ChainSpace, create_space, list_spaces, register_space
from hwnas.supernet import _space
from hwnas.supernet._ops import parse_option
from hwnas.supernet.learners import UniformLearner, load_weights, save_weights
from hwnas.supernet.learners._base import CHECKPOINT, LOG, WEIGHTS

INPUT_SHAPE = (1, 8, 8)
SMALL = SMALL_SPACE



@pytest.fixture(scope="module")
def small_data() -> Dataset:
    return load_dataset(DataConfig(name="synthetic", image_size=8, limit=200), seed=0)


#: A smaller space for the tests that write checkpoints (h5 writing dominates their time).
TINY = dict(stages=[(8, 1, 1), (16, 1, 2)], expansions=[2])


def make_space(**overrides) -> ChainSpace:
    return create_space("mobilenet", **{**SMALL, **overrides})


def bn_statistics(y: nn.Variable) -> set[nn.Variable]:
    stats: set[nn.Variable] = set()

    def visit(function) -> None:
        if function.info.type_name in ("BatchNormalization", "NumpyBatchNormalization"):
            stats.update(function.inputs[-2:])

    y.visit(visit)
    return stats


# ---------------------------------------------------------------- registry


def test_create_space_builds_a_registered_space() -> None:
    space = create_space("mobilenet", **SMALL)
    assert isinstance(space, ChainSpace)
    assert space.input_shape == INPUT_SHAPE and space.n_classes == 10


def test_list_spaces_with_wildcards(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "mobilenet" in list_spaces()
    assert list_spaces("mobile*") == ["mobilenet"]
    assert "mobilenet" in list_spaces("*net")
    assert all(name.endswith("net") for name in list_spaces("*net"))
    assert list_spaces("zz_no_such_*") == []
    monkeypatch.setitem(_space._REGISTRY, "zz_test_a", ChainSpace)
    monkeypatch.setitem(_space._REGISTRY, "zz_test_b", ChainSpace)
    assert list_spaces("zz_test_*") == ["zz_test_a", "zz_test_b"]
    assert list_spaces("zz_test_?") == ["zz_test_a", "zz_test_b"]
    assert list_spaces("zz_test_a") == ["zz_test_a"]


def test_unknown_space_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as info:
        create_space("no_such_space", **SMALL)
    message = str(info.value)
    assert "no_such_space" in message
    for name in list_spaces():
        assert name in message


def test_duplicate_registration_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    before = dict(_space._REGISTRY)

    class Other(ChainSpace):
        pass

    with pytest.raises(ValueError, match="mobilenet"):
        register_space("mobilenet")(Other)
    assert _space._REGISTRY == before  # the first registration is kept
    monkeypatch.setattr(_space, "_REGISTRY", dict(before))
    register_space("zz_new")(Other)
    assert isinstance(create_space("zz_new", **SMALL), Other)
    with pytest.raises(ValueError):
        register_space("zz_new")(ChainSpace)


# ---------------------------------------------------------------- choices


@pytest.mark.parametrize("stem, stages", [
    (8, [(8, 2, 1), (16, 1, 2)]),
    (8, [(12, 1, 1), (12, 2, 1), (12, 1, 2), (16, 2, 2)]),
    (4, [(4, 1, 2), (4, 1, 1)]),
])
def test_skip_only_where_input_and_output_shapes_match(stem: int, stages) -> None:
    space = make_space(stem_channels=stem, stages=stages)
    # Walk the stages by hand: (in, out, stride) of every block.
    expected = []
    cin = stem
    for channels, blocks, stride in stages:
        for i in range(blocks):
            expected.append((cin, channels, stride if i == 0 else 1))
            cin = channels
    assert list(space.block_shapes.values()) == expected
    assert list(space.choices) == [f"b{i}" for i in range(len(expected))]
    for (cin, cout, stride), options in zip(expected, space.choices.values()):
        assert ("skip" in options) == (stride == 1 and cin == cout)
    no_skip = make_space(stem_channels=stem, stages=stages, skip=False)
    assert all("skip" not in options for options in no_skip.choices.values())


def test_option_names_decode_to_the_offered_kernels_and_expansions() -> None:
    space = make_space(kernels=[3, 5, 7], expansions=[2, 6])
    for options in space.choices.values():
        decoded = {parse_option(o) for o in options if o != "skip"}
        assert decoded == set(itertools.product([3, 5, 7], [2, 6]))
        assert len(options) == len(set(options))
    assert parse_option("skip") is None
    assert parse_option("ir_k5_e3") == (5, 3)
    assert parse_option("ir_k11_e12") == (11, 12)


@pytest.mark.parametrize("option", ["ir_k5", "conv_k3_e3", "ir_e3_k5", "ir_k5_e3_x", "",
                                    "Skip", "ir_kx_e3"])
def test_malformed_option_names_raise(option: str) -> None:
    with pytest.raises(ValueError):
        parse_option(option)


def test_built_options_have_the_decoded_shapes() -> None:
    space = make_space()
    net = space.supernet()
    groups = net.parameter_groups()
    for name, (cin, cout, stride) in space.block_shapes.items():
        for option in space.choices[name]:
            params = groups[f"{name}/{option}"]
            if option == "skip":
                assert params == {}
                continue
            kernel, expansion = parse_option(option)
            hidden = cin * expansion
            assert params["@expand/conv/conv/W"].shape == (hidden, cin, 1, 1)
            dw = [v for k, v in params.items() if k.startswith("@depthwise/conv/")]
            assert len(dw) == 1 and dw[0].shape[-2:] == (kernel, kernel)
            assert dw[0].shape[0] == hidden
            assert params["@project/conv/conv/W"].shape == (cout, hidden, 1, 1)


def test_invalid_spaces_raise() -> None:
    with pytest.raises(ValueError):
        make_space(input_shape=(8, 8))
    with pytest.raises(ValueError):
        make_space(n_classes=1)


# ---------------------------------------------------------------- sampling and validation


def test_sample_is_seeded_reproducible_and_always_valid() -> None:
    space = make_space()
    first = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    seq_a = [space.sample(rng_a) for _ in range(50)]
    seq_b = [space.sample(rng_b) for _ in range(50)]
    assert seq_a == seq_b
    assert len(set(seq_a)) > 10  # not stuck on one subnet
    for arch in seq_a:
        assert space.validate(arch) is arch
        assert list(arch) == list(space.choices)


def test_sample_reaches_every_option() -> None:
    space = make_space()
    rng = np.random.default_rng(0)
    seen = {name: set() for name in space.choices}
    for _ in range(300):
        for name, option in space.sample(rng).items():
            seen[name].add(option)
    assert seen == {name: set(options) for name, options in space.choices.items()}


def test_size_counts_every_subnet() -> None:
    space = make_space()
    assert space.size == int(np.prod([len(o) for o in space.choices.values()]))
    assert space.size == 5 * 5 * 4


def test_validate_rejects_bad_archs() -> None:
    space = make_space()
    good = dict(space.sample(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="ir_k7_e2"):
        space.validate(Arch({**good, "b0": "ir_k7_e2"}))
    with pytest.raises(ValueError):  # skip is not offered where the stride is 2
        space.validate(Arch({**good, "b2": "skip"}))
    missing = dict(good)
    del missing["b1"]
    with pytest.raises(ValueError, match="b1"):
        space.validate(Arch(missing))
    with pytest.raises(ValueError, match="b9"):
        space.validate(Arch({**good, "b9": "skip"}))


def test_set_active_rejects_unknown_options() -> None:
    space = make_space()
    net = space.supernet()
    arch = space.sample(np.random.default_rng(0))
    with pytest.raises(ValueError):
        net.set_active(Arch({**arch, "b0": "ir_k9_e9"}))


# ---------------------------------------------------------------- weight sharing


def _archs(space, n: int, seed: int = 0) -> list[Arch]:
    rng = np.random.default_rng(seed)
    archs = {space.sample(rng) for _ in range(n * 3)}
    archs = sorted(archs, key=lambda a: a.key)[:n]
    # Always include the biggest and the shallowest subnet.
    big = Arch({n_: o[-2] if o[-1] == "skip" else o[-1] for n_, o in space.choices.items()})
    shallow = Arch({n_: "skip" if "skip" in o else o[0] for n_, o in space.choices.items()})
    return [big, shallow] + archs


def test_extracted_subnet_computes_what_the_active_supernet_computes() -> None:
    space = make_space()
    net = space.supernet()
    randomize(net)
    x = np.random.default_rng(1).normal(size=(4,) + INPUT_SHAPE).astype(np.float32)
    outputs = {}
    for arch in _archs(space, 5):
        net.set_active(arch)
        net.training = False
        expected = forward(net, x)
        subnet = net.extract(arch)
        assert subnet.training is False
        got = forward(subnet, x)
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
        outputs[arch.key] = expected
    # The paths really differ, so routing through the wrong one would show.
    values = list(outputs.values())
    assert all(not np.allclose(values[0], v, atol=1e-3) for v in values[1:])


def test_extracted_subnet_holds_only_its_path() -> None:
    space = make_space()
    net = space.supernet()
    arch = _archs(space, 1)[0]
    subnet = net.extract(arch)
    groups = set(subnet.parameter_groups())
    assert groups == {"stem", "head"} | {f"{n}/{o}" for n, o in arch.items()}
    mine = net.net_parameters()
    for key, param in subnet.net_parameters().items():
        assert key in mine and param.shape == mine[key].shape
        assert param.need_grad == mine[key].need_grad


def test_extracted_weights_are_copies() -> None:
    space = make_space()
    net = space.supernet()
    randomize(net)
    arch = _archs(space, 1)[0]
    x = np.random.default_rng(2).normal(size=(2,) + INPUT_SHAPE).astype(np.float32)
    subnet = net.extract(arch)
    before = forward(subnet, x)
    sub_params = subnet.net_parameters()
    # Changing the supernet afterwards leaves the subnet alone ...
    for param in net.net_parameters().values():
        param.d = param.d + 1.0
    np.testing.assert_array_equal(forward(subnet, x), before)
    # ... and the other way round.
    snap = snapshot(net)
    for param in sub_params.values():
        param.d = np.zeros(param.shape)
    after = snapshot(net)
    assert all(np.array_equal(snap[k], after[k]) for k in snap)
    mine = net.net_parameters()
    assert all(sub_params[k] != mine[k] for k in sub_params)


def test_archs_sharing_an_option_share_its_parameters() -> None:
    space = make_space()
    net = space.supernet()
    groups = net.parameter_groups()
    x = nn.Variable((1,) + INPUT_SHAPE)
    a = Arch({"b0": "ir_k3_e2", "b1": "skip", "b2": "ir_k5_e3"})
    b = Arch({"b0": "ir_k3_e2", "b1": "ir_k5_e2", "b2": "ir_k3_e2"})
    net.set_active(a)
    leaves_a = graph_leaves(net(x))
    groups_a = net.parameter_groups()
    net.set_active(b)
    leaves_b = graph_leaves(net(x))
    groups_b = net.parameter_groups()
    shared = groups["b0/ir_k3_e2"]
    assert shared
    for key, param in shared.items():
        # One Variable object per option, whatever path is active ...
        assert groups_a["b0/ir_k3_e2"][key] is param and groups_b["b0/ir_k3_e2"][key] is param
        # ... and it is what both paths' graphs read.
        assert param in leaves_a and param in leaves_b
    for key in ("stem", "head"):
        assert all(p in leaves_a and p in leaves_b for p in groups[key].values())
    # Different options and different blocks do not share.
    assert not any(p in leaves_a for p in groups["b2/ir_k3_e2"].values())
    assert all(groups["b0/ir_k3_e2"][k] != groups["b1/ir_k3_e2"][k] for k in shared)
    assert all(groups["b0/ir_k3_e2"][k] != groups["b0/ir_k3_e3"].get(k) for k in shared)


def test_parameter_groups_partition_the_trainable_parameters() -> None:
    space = make_space()
    net = space.supernet()
    groups = net.parameter_groups()
    assert set(groups) == {"stem", "head"} | {f"{n}/{o}" for n, opts in space.choices.items()
                                              for o in opts}
    trainable = net.get_parameters(grad_only=True)
    members = [p for g in groups.values() for p in g.values()]
    assert len(members) == len(set(members)) == len(trainable)
    assert set(members) == set(trainable.values())
    for key, param in trainable.items():
        assert param in set(groups[group_of(key)].values())
    # Architecture parameters are apart from the weights: one logit per option of each block.
    alphas = net.arch_parameters()
    assert set(alphas) == set(space.choices)
    assert not set(alphas.values()) & set(members)
    assert all(alphas[n].shape == (len(o),) for n, o in space.choices.items())


@pytest.mark.parametrize("training", [False, True])
def test_active_groups_cover_exactly_the_parameters_the_graph_uses(training: bool) -> None:
    space = make_space()
    net = space.supernet()
    groups = net.parameter_groups()
    x = nn.Variable((2,) + INPUT_SHAPE)
    for arch in _archs(space, 4, seed=5):
        net.set_active(arch)
        net.training = training
        assert net.active_groups() == ["stem", "head"] + [f"{n}/{o}" for n, o in arch.items()]
        y = net(x)
        used = graph_leaves(y) - bn_statistics(y) - {x}
        declared = {p for g in net.active_groups() for p in groups[g].values()}
        assert used == declared
        assert all(p.need_grad for p in used)


# ---------------------------------------------------------------- the learner


def _learner(space, net, data, run_dir=None, **config) -> UniformLearner:
    cfg = TrainConfig(**{"epochs": 1, "batch_size": 20, "lr": 0.1, "momentum": 0.9,
                         "weight_decay": 4e-5, **config})
    return UniformLearner(space=space, supernet=net, data=data, config=cfg, seed=3,
                          run_dir=run_dir, progress=False)


def test_train_step_changes_only_the_active_groups(small_data: Dataset) -> None:
    space = make_space()
    net = space.supernet()
    learner = _learner(space, net, small_data)
    rng = np.random.default_rng(0)
    x, y = small_data.train.x[:20], small_data.train.y[:20]
    actives = set()
    for _ in range(4):
        before = snapshot(net)
        learner.train_step(x, y, rng, lr=0.1)
        after = snapshot(net)
        active = set(net.active_groups())
        actives.add(tuple(sorted(active)))
        for key in before:
            group = group_of(key)
            if group not in active:
                # Weights, momentum and BN statistics of the other options stay put.
                assert np.array_equal(before[key], after[key]), key
        changed = {group_of(k) for k in before if not np.array_equal(before[k], after[k])}
        assert changed == {g for g in active if not g.endswith("/skip")}
    assert len(actives) > 1  # the learner did sample different paths


def test_train_step_uses_the_given_batch(small_data: Dataset) -> None:
    space = make_space()
    net = space.supernet()
    learner = _learner(space, net, small_data)
    x, y = small_data.train.x[:20], small_data.train.y[:20]
    loss, accuracy = learner.train_step(x, y, np.random.default_rng(0), lr=0.0)
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    # With lr 0 the weights do not move; recompute the loss by hand.
    net.training = True
    logits = net(nn.Variable.from_numpy_array(x))
    ref = F.mean(F.softmax_cross_entropy(logits, nn.Variable.from_numpy_array(y)))
    ref.forward()
    assert loss == pytest.approx(float(ref.d), rel=1e-5)
    assert accuracy == pytest.approx(float(np.mean(np.argmax(logits.d, 1) == y[:, 0])))


def _loss(net, arch: Arch, x: np.ndarray, y: np.ndarray) -> float:
    net.set_active(arch)
    net.training = True  # batch statistics: independent of the running ones
    logits = net(nn.Variable.from_numpy_array(x))
    loss = F.mean(F.softmax_cross_entropy(logits, nn.Variable.from_numpy_array(y)))
    loss.forward(clear_buffer=True)
    return float(loss.d)


def test_a_short_fit_lowers_the_loss(data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    # nnabla's initializers draw from its global generator: seed it, so the
    # test does not depend on what ran before.
    monkeypatch.setattr(nn.random, "prng", np.random.RandomState(0))
    space = make_space()
    net = space.supernet()
    x, y = data.train.x[:64], data.train.y[:64]
    archs = _archs(space, 2, seed=11)
    before = np.mean([_loss(net, a, x, y) for a in archs])
    learner = _learner(space, net, data, epochs=2, batch_size=32, lr=0.1)
    history = learner.fit()
    assert [row["epoch"] for row in history] == [1, 2]
    after = np.mean([_loss(net, a, x, y) for a in archs])
    assert after < before - 0.05
    assert history[-1]["loss"] < history[0]["loss"]


# ---------------------------------------------------------------- checkpoints


def _copy_weights(src, dst) -> None:
    theirs = src.net_parameters()
    for key, param in dst.net_parameters().items():
        param.d = theirs[key].d.copy()


def _log(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns=["seconds"])


class _Interrupt(Exception):
    pass


def test_resumed_training_equals_straight_training(small_data: Dataset, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    space = make_space(**TINY)
    init = space.supernet()
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight_dir.mkdir()
    resumed_dir.mkdir()

    straight = space.supernet()
    _copy_weights(init, straight)
    _learner(space, straight, small_data, straight_dir, epochs=2, batch_size=40).fit()

    # The same 2-epoch run, killed at the first step of epoch 2 (after the
    # epoch-1 checkpoint was written).
    first = space.supernet()
    _copy_weights(init, first)
    learner = _learner(space, first, small_data, resumed_dir, epochs=2, batch_size=40)
    steps = len(small_data.train) // learner.config.batch_size
    calls = []
    real_step = learner.train_step

    def step(*args, **kwargs):
        if len(calls) == steps:
            raise _Interrupt
        calls.append(1)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(learner, "train_step", step)
    with pytest.raises(_Interrupt):
        learner.fit()
    assert (resumed_dir / CHECKPOINT).exists() and (resumed_dir / WEIGHTS).exists()
    assert len(pd.read_csv(resumed_dir / LOG)) == 1

    resumed = space.supernet()  # fresh weights: the checkpoint must replace them
    history = _learner(space, resumed, small_data, resumed_dir, epochs=2,
                       batch_size=40).fit()
    assert [row["epoch"] for row in history] == [1, 2]

    want, got = snapshot(straight), snapshot(resumed)
    assert set(want) == set(got)
    for key in want:
        assert np.array_equal(want[key], got[key]), key
    pd.testing.assert_frame_equal(_log(resumed_dir / LOG), _log(straight_dir / LOG))

    # supernet.h5 holds the final weights too.
    loaded = space.supernet()
    load_weights(loaded, resumed_dir / WEIGHTS)
    final = snapshot(loaded)
    assert all(np.array_equal(v, final[k]) for k, v in want.items())


def test_fit_is_a_no_op_once_done(small_data: Dataset, tmp_path: Path) -> None:
    space = make_space(**TINY)
    net = space.supernet()
    _learner(space, net, small_data, tmp_path, epochs=1, batch_size=40).fit()
    done = snapshot(net)
    again = space.supernet()
    history = _learner(space, again, small_data, tmp_path, epochs=1, batch_size=40).fit()
    assert len(history) == 1
    assert all(np.array_equal(done[k], v) for k, v in snapshot(again).items())


def test_corrupt_checkpoint_raises(small_data: Dataset, tmp_path: Path) -> None:
    space = make_space(**TINY)
    (tmp_path / CHECKPOINT).write_bytes(b"not an npz file")
    with pytest.raises(RunDirError):
        _learner(space, space.supernet(), small_data, tmp_path).fit()


def test_checkpoint_of_another_space_raises(small_data: Dataset, tmp_path: Path) -> None:
    other = make_space(**{**TINY, "stages": [(8, 1, 1)]})
    _learner(other, other.supernet(), small_data, tmp_path, epochs=1, batch_size=40).fit()
    space = make_space(**TINY)
    with pytest.raises(RunDirError):
        _learner(space, space.supernet(), small_data, tmp_path, epochs=2, batch_size=40).fit()


def test_weights_round_trip(tmp_path: Path) -> None:
    space = make_space(**TINY)
    net = space.supernet()
    randomize(net, seed=4)
    save_weights(net, tmp_path / WEIGHTS)
    other = space.supernet()
    load_weights(other, tmp_path / WEIGHTS)
    want = snapshot(net)
    assert all(np.array_equal(want[k], v) for k, v in snapshot(other).items())


def test_load_weights_of_a_truncated_file_raises(tmp_path: Path) -> None:
    space = make_space(**TINY)
    net = space.supernet()
    path = tmp_path / WEIGHTS
    save_weights(net, path)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(RunDirError, match=str(path.name)):
        load_weights(space.supernet(), path)
    path.write_bytes(b"")
    with pytest.raises(RunDirError):
        load_weights(space.supernet(), path)


def test_load_weights_of_another_space_raises(tmp_path: Path) -> None:
    path = tmp_path / WEIGHTS
    other = make_space(**{**TINY, "stages": [(8, 1, 1), (16, 2, 2)]})
    save_weights(other.supernet(), path)
    with pytest.raises(RunDirError):
        load_weights(make_space(**TINY).supernet(), path)
    # Same parameter names, other shapes.
    wider = make_space(**TINY, head_channels=24)
    save_weights(wider.supernet(), path)
    with pytest.raises(RunDirError):
        load_weights(make_space(**TINY).supernet(), path)


def test_load_weights_of_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(RunDirError):
        load_weights(make_space(**TINY).supernet(), tmp_path / "none.h5")
