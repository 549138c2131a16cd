"""Budgets: hard upper limits on objectives, checked, parsed and measured in one place.

The config, the command line (``--budget``), the strategies, the front and the
selection all take their budgets through here: one rule for what a valid budget
is, and one measure of how far a subnet breaks its budgets.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from hwnas.objectives import OBJECTIVES


def check_budget(name: str, value: float) -> float:
    """Returns one budget as a float after checking it.

    A budget is a hard upper limit on a minimised objective: it must be finite
    and positive (violations are measured relative to it), and an ``error``
    budget is a fraction, so at most 1.

    Raises:
        ValueError: unknown objective, non-number, non-finite, non-positive, or error > 1.
    """
    if name not in OBJECTIVES:
        raise ValueError(f"unknown budget objective {name!r}; known: {', '.join(OBJECTIVES)}")
    if isinstance(value, bool):
        raise ValueError(f"budget {name} must be a number, got {value!r}")
    try:
        limit = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"budget {name} must be a number, got {value!r}") from exc
    if not math.isfinite(limit):
        raise ValueError(f"budget {name} must be finite, got {value!r}")
    if limit <= 0:
        raise ValueError(f"budget {name} must be positive, got {value!r}")
    if name == "error" and limit > 1:
        raise ValueError(f"budget error is a fraction in (0, 1], so <= 1, got {value!r}")
    return limit


def check_budgets(budgets: Mapping[str, float] | None) -> dict[str, float]:
    """Returns a validated copy of ``budgets`` (``None`` means no budget)."""
    if budgets is None:
        return {}
    return {name: check_budget(name, value) for name, value in budgets.items()}


def parse_budgets(items: Iterable[str]) -> dict[str, float]:
    """Parses command-line budgets such as ``latency_ms=1.5`` or ``params=20000``.

    Args:
        items: ``name=value`` strings, one per budget.

    Returns:
        objective name -> hard upper limit.

    Raises:
        ValueError: an item lacks ``=``, names an unknown objective or repeats
            one, or its value is not a positive finite number (an error budget
            is a fraction, at most 1).
    """
    budgets: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep:
            raise ValueError(f"budget {item!r} is not name=value (e.g. latency_ms=1.5)")
        if name not in OBJECTIVES:
            raise ValueError(f"budget {item!r}: unknown objective {name!r}; "
                             f"known: {', '.join(OBJECTIVES)}")
        if name in budgets:
            raise ValueError(f"budget {item!r}: {name} is given more than once")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"budget {item!r}: {text!r} is not a number") from None
        try:
            budgets[name] = check_budget(name, value)
        except ValueError as exc:
            raise ValueError(f"budget {item!r}: {exc}") from None
    return budgets


def excess(values: Mapping[str, float], budgets: Mapping[str, float]) -> dict[str, float]:
    """How far each broken budget is exceeded, relative to the budget.

    Args:
        values: objective name -> value (every budgeted objective must be there).
        budgets: objective name -> hard upper limit (checked).

    Returns:
        objective name -> ``value / budget - 1`` for the broken budgets only, e.g.
        ``{'latency_ms': 0.25}`` for 25 % over; empty when every budget is met
        (a value equal to its budget meets it).

    Raises:
        ValueError: a budget is invalid or a value is not finite.
    """
    out = {}
    for name, limit in check_budgets(budgets).items():
        value = float(values[name])
        if not math.isfinite(value):
            raise ValueError(f"{name} = {value} is not finite")
        if value > limit:
            out[name] = _over(value, limit)
    return out


def violation(values: Mapping[str, float], budgets: Mapping[str, float]) -> float:
    """The total relative excess over every budget: 0 when all are met, else > 0.

    This is what constrained domination compares (the smaller, the nearer to
    feasible). The budgets are taken as checked; a value that is not finite
    gives a violation that is not finite.
    """
    return sum(max(0.0, _over(float(values[name]), limit)) for name, limit in budgets.items())


def _over(value: float, limit: float) -> float:
    return value / limit - 1.0
