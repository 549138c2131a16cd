"""Search spaces, weight-sharing supernets and the learners that train them."""
from __future__ import annotations

from hwnas.supernet import _darts  # noqa: F401  (registers "darts")
from hwnas.supernet import _mobilenet  # noqa: F401  (registers "mobilenet")
from hwnas.arch import Arch
from hwnas.supernet._darts import CellSpace, CellSupernet
from hwnas.supernet._mobilenet import ChainSpace, ChainSupernet
from hwnas.supernet._space import (BaseSearchSpace, Supernet, Unit, create_space, list_spaces,
                                   register_space, space_arguments)

__all__ = ["Arch", "BaseSearchSpace", "CellSpace", "CellSupernet", "ChainSpace", "ChainSupernet",
           "Supernet", "Unit", "create_space", "list_spaces", "register_space",
           "space_arguments"]
