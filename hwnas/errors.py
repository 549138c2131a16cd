"""User-facing errors: each one becomes one line on stderr and exit status 2."""
from __future__ import annotations


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
