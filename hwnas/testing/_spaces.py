"""The search-space conformance suite: what ``hwnas check-space`` and tests/test_spaces.py run.

Each check takes a space and returns its failures, one line each. Checks that
look at subnets run on a few subnets that together take every option of every
choice; when one fails, the options it differs in from the first are tried one
at a time, so that a failure names the choice and the option behind it.
"""
from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path

import nnabla as nn
import numpy as np

from hwnas.arch import Arch
from hwnas.deploy import export_module_nnp, run_nnp
from hwnas.hwcost import count_graph_params, count_macs, count_params, inference_output
from hwnas.supernet import BaseSearchSpace, Supernet

#: Outputs that agree within this are the same computation (float32, a few layers deep).
ATOL = 1e-5
#: A check's report lists this many failures, then how many more there are.
MAX_SHOWN = 3
BATCH = 2

__all__ = ["ATOL", "SPACE_CHECKS", "CheckResult", "check_space", "covering_archs"]


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One check's outcome.

    Attributes:
        name: the check (a key of ``SPACE_CHECKS``).
        failures: one line per failure, naming the choice and option; empty when it passes.
    """

    name: str
    failures: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    def line(self) -> str:
        """``pass  NAME`` or ``FAIL  NAME: first failure (and N more)``."""
        if self.ok:
            return f"pass  {self.name}"
        more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        return f"FAIL  {self.name}: {self.failures[0]}{more}"


class _Probe:
    """What the checks share: the space, one supernet with random weights, an input batch."""

    def __init__(self, space: BaseSearchSpace, seed: int) -> None:
        self.space = space
        self.seed = seed
        nn.seed(seed)
        self.net = space.supernet()
        rng = np.random.default_rng(seed)
        # Random weights and running statistics: every path computes something of its own
        # (fresh residual blocks may start as the identity).
        for key, param in self.net.net_parameters().items():
            param.d = (rng.uniform(0.5, 2.0, param.shape) if key.endswith("/var")
                       else rng.normal(0.0, 0.5, param.shape))
        self.net.training = False
        self.x = rng.normal(size=(BATCH,) + tuple(space.input_shape)).astype(np.float32)
        self.archs = covering_archs(space)

    def output(self, net: Supernet) -> np.ndarray:
        net.training = False
        y = net(nn.Variable.from_numpy_array(self.x))
        y.forward(clear_buffer=True)
        return y.d.copy()


def covering_archs(space: BaseSearchSpace) -> list[Arch]:
    """Valid subnets that together take every option of every choice: the i-th takes each
    choice's option i (its last, past the end); the first takes every first option. An
    option whose subnet the space refuses (``validate``) is tried in the first subnet
    instead, and left out if the space refuses that too."""
    longest = max(len(o) for o in space.choices.values())
    base = Arch({n: o[0] for n, o in space.choices.items()})
    archs, covered = [], set()
    for i in range(longest):
        arch = Arch({n: o[min(i, len(o) - 1)] for n, o in space.choices.items()})
        if _valid(space, arch) and arch not in archs:
            archs.append(arch)
            covered.update(arch.items())
    for name, options in space.choices.items():
        for option in options:
            variant = Arch({**base, name: option})
            if (name, option) not in covered and _valid(space, variant):
                archs.append(variant)
                covered.add((name, option))
    return archs


def _valid(space: BaseSearchSpace, arch: Arch) -> bool:
    try:
        space.validate(arch)
    except ValueError:
        return False
    return True


def _sweep(probe: _Probe, check: Callable[[Arch], str | None],
           archs: list[Arch] | None = None) -> list[str]:
    """Runs ``check`` (None: fine, else what is wrong) on ``archs`` (the covering subnets,
    the first first); a failure is traced to the options that differ from the first
    subnet's, one choice at a time."""
    base, *others = archs if archs is not None else probe.archs
    wrong = check(base)
    if wrong is not None:
        return [f"subnet {base.key}: {wrong}"]
    failures = []
    for arch in others:
        wrong = check(arch)
        if wrong is None:
            continue
        found = []
        for name, option in arch.items():
            if option != base[name]:
                variant = Arch({**base, name: option})
                if _valid(probe.space, variant):
                    alone = check(variant)
                    if alone is not None:
                        found.append(f"choice {name!r}, option {option!r}: {alone}")
        failures += found or [f"subnet {arch.key}: {wrong}"]
    return list(dict.fromkeys(failures))


# ---------------------------------------------------------------- the checks


def check_sample_validate(probe: _Probe) -> list[str]:
    """``sample`` is seeded and valid; ``validate`` accepts every subnet and refuses a
    wrong option, a missing choice and an unknown one."""
    space, failures = probe.space, []
    if space.sample(np.random.default_rng(3)) != space.sample(np.random.default_rng(3)):
        failures.append("two samples from the same seed differ")
    if space.size != int(np.prod([len(o) for o in space.choices.values()], dtype=object)):
        failures.append(f"size is {space.size}, not the product of the numbers of options")
    rng = np.random.default_rng(probe.seed)
    sampled = [space.sample(rng) for _ in range(30)]
    if len(set(sampled)) < min(space.size, 30) / 3:
        failures.append(f"30 samples hold only {len(set(sampled))} distinct subnets of "
                        f"{space.size}")
    extremes = list(space.extremes())
    if len(set(extremes)) < 2:
        failures.append("extremes are not two distinct subnets")
    for arch in sampled + extremes:
        if list(arch) != list(space.choices):
            failures.append(f"subnet {arch.key} does not name the choices in their order")
            continue
        for name, option in arch.items():
            if option not in space.choices[name]:
                failures.append(f"choice {name!r}, option {option!r}: sampled, but not an option")
        if not _valid(space, arch):
            failures.append(f"subnet {arch.key}: sampled (or an extreme), refused by validate")
    for name, options in space.choices.items():
        if not options or len(set(options)) != len(options):
            failures.append(f"choice {name!r}: options must be distinct and at least one, "
                            f"got {list(options)}")
            continue
        base = probe.archs[0] if probe.archs else None
        if base is not None and _valid(space, Arch({**base, name: "no_such_option"})):
            failures.append(f"choice {name!r}, option 'no_such_option': accepted by validate")
    if probe.archs:
        base = dict(probe.archs[0])
        first = next(iter(base))
        del base[first]
        if _valid(space, Arch(base)):
            failures.append(f"choice {first!r}: a subnet without it is accepted by validate")
        if _valid(space, Arch({**probe.archs[0], "zz_unknown": "x"})):
            failures.append("choice 'zz_unknown': a subnet with an unknown choice is accepted")
        backwards = Arch(dict(reversed(list(probe.archs[0].items()))))
        if len(space.choices) > 1 and _valid(space, backwards):
            failures.append("a subnet naming the choices in reverse order is accepted")
    return failures


def check_keys(probe: _Probe) -> list[str]:
    """Every subnet's key and JSON give it back; ``canonical`` gives a valid subnet and is
    idempotent."""
    space = probe.space

    def check(arch: Arch) -> str | None:
        if Arch.from_key(arch.key) != arch or Arch.from_json(arch.to_json()) != arch:
            return f"key {arch.key!r} does not round-trip"
        once = space.canonical(arch)
        if not _valid(space, once):
            return f"canonical gives {once.key}, which validate refuses"
        if space.canonical(once) != once:
            return f"canonical is not idempotent: {once.key} -> {space.canonical(once).key}"
        return None

    return _sweep(probe, check)


def check_extract(probe: _Probe) -> list[str]:
    """``extract(arch)`` computes what the supernet computes with ``set_active(arch)``, and
    holds copies of the supernet's weights (changing one leaves the other as it was)."""
    net = probe.net

    def check(arch: Arch) -> str | None:
        net.set_active(arch)
        want = probe.output(net)
        subnet = net.extract(arch)
        got = probe.output(subnet)
        if got.shape != want.shape:
            return f"the extracted subnet outputs shape {got.shape}, the supernet {want.shape}"
        diff = float(np.max(np.abs(got - want))) if got.size else 0.0
        if not diff <= ATOL * max(1.0, float(np.max(np.abs(want)))):
            return (f"the extracted subnet computes something else than set_active "
                    f"(largest difference {diff:.3g})")
        # Weights under names the supernet lacks are slices of shared ones (nested weight
        # sharing): the outputs agreeing is what says they were inherited.
        mine, theirs = net.net_parameters(), subnet.net_parameters()
        shared = [k for k, p in theirs.items() if k in mine and p is mine[k]]
        if shared:
            return f"the extracted subnet shares weights instead of copying them: {shared[:2]}"
        return None

    failures = _sweep(probe, check)
    outputs = []
    for arch in probe.archs:
        net.set_active(arch)
        outputs.append(probe.output(net))
    if len(outputs) > 1 and all(np.allclose(outputs[0], o, atol=1e-3) for o in outputs[1:]):
        failures.append("every subnet computes the same output: set_active changes nothing")
    return failures


def check_groups(probe: _Probe) -> list[str]:
    """The parameter groups partition the trainable weights, and ``active_groups`` are
    exactly the weights a single path's graph reads (what a uniform learner updates)."""
    net, failures = probe.net, []
    groups = net.parameter_groups()
    members = [p for g in groups.values() for p in g.values()]
    trainable = set(net.get_parameters(grad_only=True).values())
    alphas = set(net.arch_parameters().values())
    if len(members) != len(set(members)) or set(members) != trainable - alphas:
        failures.append("parameter_groups do not partition the trainable weights")
    x = nn.Variable((BATCH,) + tuple(probe.space.input_shape))

    def check(arch: Arch) -> str | None:
        net.set_active(arch)
        y = net(x)
        read: set[nn.Variable] = set()
        y.visit(lambda f: read.update(v for v in f.inputs if v.parent is None and v.need_grad))
        declared = {p for g in net.active_groups() if g in groups for p in groups[g].values()}
        unknown = [g for g in net.active_groups() if g not in groups]
        if unknown:
            return f"active_groups names groups that parameter_groups lacks: {unknown[:2]}"
        if read - alphas != declared:
            return (f"active_groups declare {len(declared)} weights, the path reads "
                    f"{len(read - alphas)} ({len(declared - read)} unused, "
                    f"{len(read - alphas - declared)} undeclared)")
        return None

    return failures + _sweep(probe, check)


def check_units(probe: _Probe) -> list[str]:
    """A subnet's units are units of the space and count its MACs (on the deployed graph)
    exactly; the extracted subnet holds as many parameters as its path reads in the
    supernet; ``arch_units`` names every option of every architecture parameter."""
    space, net, failures = probe.space, probe.net, []
    every = space.units()
    keys = [u.key for u in every]
    if len(keys) != len(set(keys)):
        failures.append("units() lists a unit twice")

    def macs(module: nn.Module, shape: tuple[int, ...]) -> int:
        return count_macs(inference_output(module, nn.Variable((1,) + tuple(shape))))

    x = nn.Variable((1,) + tuple(space.input_shape))
    alphas = set(net.arch_parameters().values())

    def check(arch: Arch) -> str | None:
        units = space.units(arch)
        stray = [u.key for u in units if u.key not in set(keys)]
        if stray:
            return f"unit {stray[0]!r} is not among units()"
        subnet = net.extract(arch)
        counted, want = sum(macs(u.build(), u.input_shape) for u in units), macs(
            subnet, space.input_shape)
        if counted != want:
            return f"its units count {counted} MACs, the subnet computes {want}"
        net.set_active(arch)
        net.training = False
        path = count_graph_params(net(x), inputs=[x] + list(alphas))
        held = count_params(subnet.get_parameters(grad_only=True))
        if held != path:
            return f"the extracted subnet holds {held} parameters, its path reads {path}"
        return None

    failures += _sweep(probe, check)
    fixed, edges, share = space.arch_units()
    options = net.arch_options()
    if set(edges) != set(options) or set(share) != set(options):
        failures.append(f"arch_units names {sorted(edges)}, the architecture parameters are "
                        f"{sorted(options)}")
    for name in set(edges) & set(options):
        missing = [o for o in options[name] if o not in edges[name]]
        if missing:
            failures.append(f"choice {name!r}, option {missing[0]!r}: arch_units gives it "
                            "no entry")
        if not 0 < share.get(name, 0) <= 1:
            failures.append(f"choice {name!r}: arch_units share {share.get(name)} not in (0, 1]")
        for option, units in edges[name].items():
            stray = [u.key for u in units if u.key not in set(keys)]
            if stray:
                failures.append(f"choice {name!r}, option {option!r}: arch unit "
                                f"{stray[0]!r} is not among units()")
    if all(v == 1 for v in share.values()) and all(
            len(ops) == 1 for ops in net.mixed_ops().values()):
        # A chain: the fixed units and one option's per parameter are the subnet's units.
        for arch in probe.archs:
            chosen = [u.key for name in edges for u in edges[name].get(arch[name], [])]
            if sorted([u.key for u in fixed] + chosen) != sorted(u.key for u in space.units(arch)):
                failures.append(f"subnet {arch.key}: arch_units' fixed and chosen units are "
                                "not its units")
                break
    return failures


def check_export(probe: _Probe) -> list[str]:
    """An extracted subnet exported as .nnp (hwnas.deploy) computes what the subnet computes
    when nnabla's runtime loads it."""
    net = probe.net
    with tempfile.TemporaryDirectory() as tmp:
        def check(arch: Arch) -> str | None:
            subnet = net.extract(arch)
            want = probe.output(subnet)
            path = Path(tmp) / "subnet.nnp"
            export_module_nnp(subnet, probe.space.input_shape, path)
            got = run_nnp(path, probe.x)
            if got.shape != want.shape or not np.allclose(got, want, atol=1e-4, rtol=1e-4):
                return "the exported .nnp computes something else than the subnet"
            return None

        # The subnets of every first and every last option: a round trip is per network,
        # not per option (a failing one is still traced to its choice and option).
        return _sweep(probe, check, [probe.archs[0], probe.archs[-1]])


#: name -> check, in the order ``hwnas check-space`` runs them.
SPACE_CHECKS: dict[str, Callable[[_Probe], list[str]]] = {
    "sample and validate": check_sample_validate,
    "keys are canonical": check_keys,
    "extract agrees with set_active": check_extract,
    "parameter groups": check_groups,
    "units and counters": check_units,
    "export round-trips": check_export,
}


def check_space(space: BaseSearchSpace, *, seed: int = 0,
                checks: list[str] | None = None) -> list[CheckResult]:
    """Runs the conformance checks on ``space``.

    Args:
        space: any search space (built: its input shape and classes fixed).
        seed: seeds the supernet's random weights, the input and the samples.
        checks: names of ``SPACE_CHECKS`` to run; None: all.

    Returns:
        One result per check, in order. A check that raises fails with the exception's
        first line (a space that cannot build its supernet fails every check).

    Raises:
        ValueError: a name in ``checks`` is no check.
    """
    names = list(SPACE_CHECKS) if checks is None else list(checks)
    unknown = [n for n in names if n not in SPACE_CHECKS]
    if unknown:
        raise ValueError(f"unknown check {unknown[0]!r}; known: {', '.join(SPACE_CHECKS)}")
    try:
        probe = _Probe(space, seed)
    except Exception as exc:  # the space under test: any failure is a finding
        return [CheckResult(n, (f"building the supernet raised {_first_line(exc)}",))
                for n in names]
    results = []
    for name in names:
        try:
            failures = SPACE_CHECKS[name](probe)
        except Exception as exc:  # the space under test: any failure is a finding
            failures = [f"raised {_first_line(exc)}"]
        results.append(CheckResult(name, tuple(failures)))
    return results


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
