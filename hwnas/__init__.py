"""hwnas: hardware-aware neural architecture search for NNabla.

The Python API, for notebooks (see the README's "Python API")::

    import hwnas

    run = hwnas.Run("runs/digits")
    run.study                      # the optuna.Study (read-only)
    run.front()                    # the Pareto front, a pandas DataFrame (front.csv)
    run.select(budgets={"params": 20000})
    hwnas.search(run, strategy=my_strategy, trials=100)

and the registries, to add a dataset, search space or strategy at run time:
``register_dataset``, ``register_space``, ``register_strategy``.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it.
_API = {
    "Run": "hwnas._api",
    "search": "hwnas._api",
    "register_dataset": "hwnas.data",
    "register_space": "hwnas.supernet",
    "register_strategy": "hwnas.strategies",
}

__all__ = ["Run", "__version__", "register_dataset", "register_space", "register_strategy",
           "search"]


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use (PEP 562).

    Every module of the package imports this one first, and so does ``python -m hwnas``,
    which must install its Ctrl-C handler and nnabla's logging settings before nnabla
    loads (``hwnas.cli``): the API, which stands on the whole application, cannot be
    imported here eagerly.
    """
    if name not in _API:
        raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
