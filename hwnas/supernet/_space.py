"""BaseSearchSpace, the Supernet contract and the search-space registry."""
from __future__ import annotations

import abc
import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import nnabla as nn
import numpy as np

from hwnas.arch import Arch
from hwnas.registry import Registry, subclass_of
from hwnas.supernet._mixed import MODES, MixedOp
from hwnas.supernet._ops import Head, Op


class Supernet(Op):
    """A weight-sharing network over every subnet of a search space.

    ``set_active(arch)`` selects one path; the shared weights stay in place.
    ``extract(arch)`` gives a standalone network holding copies of the
    weights that path uses. Architecture parameters (one vector of logits
    per searchable block or edge type, see ``mixed_ops``) are kept apart from
    network weights; ``set_mode`` switches every mixed operation between one
    active path, the DARTS weighted sum and ProxylessNAS gates, and
    ``derive`` reads the most likely subnet off the architecture parameters.
    """

    @abc.abstractmethod
    def set_active(self, arch: Arch) -> None:
        """Routes every later forward pass through ``arch``'s path."""

    @abc.abstractmethod
    def extract(self, arch: Arch) -> Supernet:
        """A standalone network for ``arch`` with copies of the shared weights."""

    @abc.abstractmethod
    def parameter_groups(self) -> dict[str, dict[str, nn.Variable]]:
        """Trainable weights by group (the fixed parts and each option of each choice)."""

    @abc.abstractmethod
    def active_groups(self) -> list[str]:
        """The groups the active path uses."""

    def _with_my_weights(self, subnet: Supernet,
                         derived: Mapping[str, np.ndarray] | None = None) -> Supernet:
        """``subnet`` (built from this network's modules' names) holding copies of my weights,
        in inference mode: what ``extract`` returns.

        Args:
            derived: the subnet's weights that are no weight of mine under their name (slices
                of shared weights), by the subnet's name.
        """
        mine, derived = self.net_parameters(), derived or {}
        subnet.set_parameters({
            key: nn.Variable.from_numpy_array(
                (derived[key] if key in derived else mine[key].d).copy(), need_grad=p.need_grad)
            for key, p in subnet.net_parameters().items()}, raise_if_missing=True)
        subnet.training = False
        return subnet

    def net_parameters(self) -> dict[str, nn.Variable]:
        """Every network weight, trainable or not (BN running statistics included)."""
        return self.get_parameters(grad_only=False)

    def mixed_ops(self) -> dict[str, list[MixedOp]]:
        """Mixed operations by the architecture parameters they share; empty for a subnet."""
        return {}

    def arch_parameters(self) -> dict[str, nn.Variable]:
        """Architecture parameters (candidate logits) by block or edge type."""
        return {name: ops[0].alpha for name, ops in self.mixed_ops().items()}

    def arch_options(self) -> dict[str, tuple[str, ...]]:
        """The candidate names that the entries of each architecture parameter stand for."""
        return {name: ops[0].options for name, ops in self.mixed_ops().items()}

    def probabilities(self) -> dict[str, np.ndarray]:
        """softmax of every architecture parameter."""
        return {name: ops[0].probabilities() for name, ops in self.mixed_ops().items()}

    def set_mode(self, mode: str) -> None:
        """Puts every mixed operation in ``mode`` (one of ``MODES``)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        if mode != "single" and not self.mixed_ops():
            raise ValueError(f"mode {mode!r} needs architecture parameters; this network has none")
        for ops in self.mixed_ops().values():
            for op in ops:
                op.mode = mode

    @abc.abstractmethod
    def derive(self) -> Arch:
        """The subnet the architecture parameters favour."""


@dataclasses.dataclass(frozen=True)
class Unit:
    """One separately measurable piece of a subnet, as a latency table stores it.

    Attributes:
        key: what determines its latency, e.g. ``ir_k3_e6|in=16x8x8|out=24|s=2``
            (operation, input shape (C, H, W), output channels, stride); equal
            keys are the same computation wherever they occur in a space.
        input_shape: (C, H, W) of the input it sees in the network.
        build: a new module of the piece, with freshly initialised weights.
    """

    key: str
    input_shape: tuple[int, int, int]
    build: Callable[[], nn.Module] = dataclasses.field(compare=False, repr=False)


def unit_key(op: str, input_shape: tuple[int, ...], **fields: object) -> str:
    """A ``Unit.key``: ``op|in=CxHxW|name=value|...`` (fields in the order given), e.g.
    ``unit_key("ir_k3_e6", (16, 8, 8), out=24, s=2)`` is ``ir_k3_e6|in=16x8x8|out=24|s=2``."""
    return "|".join([op, "in=" + "x".join(str(v) for v in input_shape),
                     *(f"{name}={value}" for name, value in fields.items())])


def head_unit(input_shape: tuple[int, int, int], channels: int, n_classes: int) -> Unit:
    """The unit of a ``Head`` (1x1 conv to ``channels``, pooling, classifier) on its input."""
    return Unit(unit_key("head", input_shape, out=channels, classes=n_classes), input_shape,
                lambda: Head(channels, n_classes))


#: Random draws ``BaseSearchSpace.sample`` makes before it gives up on finding a subnet
#: the space can build.
MAX_DRAWS = 1000


class InfeasibleArch(ValueError):
    """A combination of options its search space cannot build (``BaseSearchSpace.validate``).

    Args:
        arch: the refused subnet.
        choices: the choices whose options clash (at least one).
        reason: why the space cannot build them together.
    """

    def __init__(self, arch: Arch, choices: Sequence[str], reason: str) -> None:
        if not choices:
            raise ValueError("InfeasibleArch names at least one choice")
        self.arch, self.choices, self.reason = arch, tuple(choices), reason
        clash = ", ".join(f"{name}={arch.get(name)}" for name in self.choices)
        super().__init__(f"infeasible: {clash}: {reason}")

    def __reduce__(self) -> tuple:
        return (InfeasibleArch, (self.arch, self.choices, self.reason))


class BaseSearchSpace(abc.ABC):
    """A search space: ordered choices, each with its options, and its supernet.

    Subclasses set ``choices`` in ``__init__`` and implement ``supernet``,
    ``arch_units`` and ``units``. Where some encodings are the same network,
    ``canonical`` maps them onto one; where some combinations cannot be built,
    ``validate`` refuses them (:class:`InfeasibleArch`).
    """

    #: choice name -> options, in the order that defines Arch keys.
    choices: dict[str, tuple[str, ...]]

    #: The keys of the config's ``space`` section this space is built with (besides
    #: ``input_shape`` and ``n_classes``); its other arguments come from ``space.options``.
    config_keys: ClassVar[tuple[str, ...]] = ()

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random subnet among those the space can build (``validate``).

        Raises:
            ValueError: ``MAX_DRAWS`` draws in a row gave subnets the space cannot build.
        """
        for _ in range(MAX_DRAWS):
            arch = Arch({name: options[rng.integers(len(options))]
                         for name, options in self.choices.items()})
            try:
                return self.validate(arch)
            except InfeasibleArch:
                continue
        raise ValueError(f"{MAX_DRAWS} random subnets in a row cannot be built in this space")

    def check_choices(self, arch: Arch) -> Arch:
        """Returns ``arch`` if it assigns one of its options to every choice, in order; the
        first check of ``validate``, which says nothing about whether the space can build it.

        Raises:
            ValueError: a choice is missing or unknown, or an option is not one of its choice's.
        """
        if list(arch) != list(self.choices):
            missing = [c for c in self.choices if c not in arch]
            extra = [c for c in arch if c not in self.choices]
            raise ValueError(f"Arch {arch.key!r} does not fit this space: "
                             f"missing {missing}, unknown {extra}")
        for name, option in arch.items():
            if option not in self.choices[name]:
                raise ValueError(f"Arch {arch.key!r}: option {option!r} is not one of "
                                 f"{list(self.choices[name])} for choice {name!r}")
        return arch

    def validate(self, arch: Arch) -> Arch:
        """Returns ``arch`` if the space can build it, else raises.

        The base check: every choice, in order, with one of its options. A space
        that cannot build some combinations of options overrides this, calls
        ``super().validate(arch)`` first, and raises :class:`InfeasibleArch`
        naming the choices that clash. The search checks every proposal before
        anything is measured; one that fails is recorded as infeasible and never
        proposed again.

        Raises:
            ValueError: a choice is missing or unknown, or an option is not one of its
                choice's (``check_choices``).
            InfeasibleArch: (a ValueError) the options are valid one by one but the
                space cannot build them together.
        """
        return self.check_choices(arch)

    def canonical(self, arch: Arch) -> Arch:
        """The one encoding that stands for every encoding of ``arch``'s network.

        Two encodings are equivalent when their subnets compute the same
        function with the same shared weights and have the same costs (for
        example, where one option makes another choice irrelevant). A space
        with such equivalences overrides this to map each class onto one member
        by a fixed rule (a choice that does not matter set to its first option,
        say). It must be idempotent and return a valid encoding of the same
        network. The search measures only canonical encodings: another encoding
        of a network already in the study is answered from it.

        By default every encoding is a network of its own: ``arch`` itself.

        Args:
            arch: a subnet the space can build (``validate``).
        """
        return arch

    def extremes(self) -> list[Arch]:
        """The cheapest and the most expensive subnets, which bound the front.

        A search seeded with them spans the whole cost range from its start.
        By default the first and the last option of every choice.
        """
        return [Arch({n: o[0] for n, o in self.choices.items()}),
                Arch({n: o[-1] for n, o in self.choices.items()})]

    @property
    def size(self) -> int:
        """How many subnets the space holds."""
        return int(np.prod([len(o) for o in self.choices.values()], dtype=object))

    @abc.abstractmethod
    def supernet(self) -> Supernet:
        """A new supernet with freshly initialised weights for every option."""

    def initial_supernet(self) -> Supernet:
        """The supernet whose initial weights a subnet trained from scratch is extracted from:
        ``supernet()``, unless that one shares weights between options (a subnet's start
        should not depend on how the supernet shares)."""
        return self.supernet()

    @abc.abstractmethod
    def arch_units(self) -> tuple[list[Unit], dict[str, dict[str, list[Unit]]], dict[str, float]]:
        """The units behind the supernet's architecture parameters, for expected costs.

        Returns:
            (fixed, edges, share): the units every subnet has; per architecture
            parameter and candidate, the units that candidate adds (summed over
            every mixed operation sharing the parameter); and per architecture
            parameter the share of those operations a derived subnet keeps
            (1 for a chain block, 2/inputs for a DARTS node's edges).
        """

    @abc.abstractmethod
    def units(self, arch: Arch | None = None) -> list[Unit]:
        """The separately measurable pieces of the space, or of one subnet.

        A subnet's latency is predicted as the sum of its units' latencies, so
        a choice's units must not depend on the other choices, and every
        computation of the subnet must belong to exactly one unit (an option
        that computes nothing, such as ``skip``, has none). The latency table
        sums units choice by choice, so they are defined for every combination
        of options (``check_choices``), even one ``validate`` refuses.

        Args:
            arch: a subnet of the space; None for the whole space.

        Returns:
            With ``arch``: its units in forward order. Without: every distinct
            unit of the space (by key), each once.
        """


#: name -> search space class (or factory taking the space's keyword arguments); a config
#: may also name a class by spec (``resolve``), or an installed package's ``hwnas.spaces``.
SPACES: Registry[Callable[..., BaseSearchSpace]] = Registry(
    "search space", sort=True, group="hwnas.spaces", accept=subclass_of(BaseSearchSpace))


def register_space(name: str) -> Callable[[type], type]:
    """Class decorator registering a search space under ``name``.

    Raises:
        ValueError: ``name`` is already registered.
    """
    return SPACES.register(name)


def list_spaces(pattern: str = "*") -> list[str]:
    """Registered space names matching a shell-style wildcard, sorted."""
    return SPACES.names(pattern)


def space_arguments(name: str) -> set[str]:
    """The keyword arguments the space ``name`` (a registered name or spec) takes; a space
    that takes ``**kwargs`` takes any."""
    return _arguments(SPACES.resolve(name))


def _arguments(factory: Callable[..., object]) -> set[str]:
    params = inspect.signature(factory).parameters.values()
    return {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def takes_any_keyword(factory: Callable[..., object]) -> bool:
    """Whether ``factory`` takes ``**kwargs``."""
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())


#: What every space is built with, from the data rather than from the config's ``space``.
DATA_ARGUMENTS = ("input_shape", "n_classes")


def space_keywords(factory: Callable[..., BaseSearchSpace], config: Mapping[str, object],
                   options: Mapping[str, object]) -> dict[str, object]:
    """The keyword arguments that build a space: ``DATA_ARGUMENTS``, the keys of the
    config's ``space`` section that it reads, and the config's ``space.options``.

    A space reads the section keys its ``config_keys`` names (a factory without
    that attribute: the keys its signature takes); every other argument comes
    from ``options``.

    Args:
        factory: the space class (or factory).
        config: the section's values and ``DATA_ARGUMENTS``, by name.
        options: ``space.options``.

    Raises:
        ValueError: an option the space does not take (the message lists those it
            does), or one that is a key of the section or comes from the data.
    """
    takes = _arguments(factory)
    reads = set(getattr(factory, "config_keys", config)) | set(DATA_ARGUMENTS)
    kwargs = {k: v for k, v in config.items() if k in reads and k in takes}
    name = getattr(factory, "__name__", "this space")
    for key, value in options.items():
        if key in DATA_ARGUMENTS:
            raise ValueError(f"'space.options.{key}' comes from the data; leave it out")
        if key in reads:
            raise ValueError(f"'space.options.{key}' is a key of the space section: "
                             f"set space.{key} instead")
        if key not in takes and not takes_any_keyword(factory):
            accepted = sorted(takes - reads)
            raise ValueError(f"'space.options.{key}' is no argument of {name}; it takes: "
                             + (", ".join(accepted) or "none"))
        kwargs[key] = value
    return kwargs


def create_space(name: str, **kwargs) -> BaseSearchSpace:
    """Builds the space ``name`` (a registered name or a spec, see ``Registry.resolve``);
    an unknown name lists the known ones."""
    return SPACES.resolve(name)(**kwargs)
