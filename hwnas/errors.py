"""User-facing errors: each one becomes one line on stderr and exit status 2."""
from __future__ import annotations

import reprlib


class HwnasError(Exception):
    """An error caused by the user's input; the CLI prints it and exits with 2."""


class ConfigError(HwnasError):
    """A config file is missing, malformed, or holds an invalid value."""


class DataError(HwnasError):
    """A dataset file is missing or malformed."""


class RunDirError(HwnasError):
    """A run directory is missing a file, holds a corrupt one, or belongs to another experiment."""


class MeasurementError(HwnasError):
    """A hardware measurement failed or was unreliable; it is never recorded as a cost."""


class BudgetError(HwnasError):
    """No subnet meets the budgets."""



class _Short(reprlib.Repr):
    """reprlib's cut-short repr, also for integers too long to print in decimal at all."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple = 2, 3, 4, 4
        self.maxstring, self.maxlong, self.maxother = 40, 40, 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:  # repr() of a 5000-digit int raises; no message needs it
            return f"<{'negative ' if x < 0 else ''}integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_SHORT = _Short()


def shorten(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut short for a one-line message: ``'aaaa…' (50000000 characters)``.

    Never builds the whole ``repr`` of a long string, a huge number or a deep or
    self-referencing structure (a YAML alias chain), so a message stays one short line.
    """
    if isinstance(value, str) and len(value) > limit:
        text = repr(value[:limit])
        return f"{text[:-1]}…{text[-1]} ({len(value)} characters)"
    text = _SHORT.repr(value)
    return text if len(text) <= 2 * limit else text[:2 * limit] + "…"
