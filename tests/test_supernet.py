"""Tests of hwnas.supernet spaces: registry, choices, sampling and validation."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from _supernet_helpers import INPUT_SHAPE, SMALL, make_space

from hwnas.arch import Arch
from hwnas.supernet import SPACES, ChainSpace, create_space, list_spaces, register_space
from hwnas.supernet._ops import parse_option


# ---------------------------------------------------------------- registry


def test_create_space_builds_a_registered_space() -> None:
    space = create_space("mobilenet", **SMALL)
    assert isinstance(space, ChainSpace)
    assert space.input_shape == INPUT_SHAPE and space.n_classes == 10


@pytest.fixture
def unregister():
    """Call it with a space name before registering it: the test leaves the registry as it was."""
    names: list[str] = []
    yield names.append
    for name in names:
        if name in SPACES:
            SPACES.unregister(name)


def test_list_spaces_with_wildcards(unregister) -> None:
    assert "mobilenet" in list_spaces()
    assert list_spaces("mobile*") == ["mobilenet"]
    assert "mobilenet" in list_spaces("*net")
    assert all(name.endswith("net") for name in list_spaces("*net"))
    assert list_spaces("zz_no_such_*") == []
    for name in ("zz_test_b", "zz_test_a"):
        unregister(name)
        register_space(name)(ChainSpace)
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


def test_duplicate_registration_raises(unregister) -> None:
    before = SPACES.items()

    class Other(ChainSpace):
        pass

    with pytest.raises(ValueError, match="mobilenet"):
        register_space("mobilenet")(Other)
    assert SPACES.items() == before  # the first registration is kept
    unregister("zz_new")
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

