"""Search spaces, weight-sharing supernets and the learners that train them."""
from __future__ import annotations

from hwnas.arch import Arch
from hwnas.supernet._candidates import parse_candidate
from hwnas.supernet._chain import MixedChain
# Importing the two spaces' modules registers them ("darts", "mobilenet").
from hwnas.supernet._darts import CellSpace, CellSupernet
from hwnas.supernet._mixed import MODES, MixedOp
from hwnas.supernet._mobilenet import ChainSpace, ChainSupernet
from hwnas.supernet._ops import ConvBNReLU, Head, Op
from hwnas.supernet._space import (DATA_ARGUMENTS, SPACES, BaseSearchSpace, InfeasibleArch,
                                   Supernet, Unit, create_space, list_spaces, register_space,
                                   space_arguments, space_keywords, head_unit, unit_key)
from hwnas.supernet._split import SplitWeights, split_choice
from hwnas.supernet._viz import CELL_KEY, draw_arch, plot_arch_trajectories
from hwnas.registry import import_modules

import_modules(__name__)  # a new space's module registers it, with nothing else to edit

__all__ = ["Arch", "BaseSearchSpace", "CELL_KEY", "CellSpace", "CellSupernet", "ChainSpace",
           "ChainSupernet", "ConvBNReLU", "DATA_ARGUMENTS", "Head", "InfeasibleArch", "MODES",
           "MixedChain", "MixedOp", "Op", "SPACES", "SplitWeights", "Supernet", "Unit",
           "create_space", "draw_arch", "head_unit", "list_spaces", "parse_candidate",
           "plot_arch_trajectories", "register_space", "space_arguments", "space_keywords",
           "split_choice", "unit_key"]
