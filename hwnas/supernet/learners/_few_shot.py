"""FewShot: the split phase of a few-shot supernet, which epoch trains which copy of the weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hwnas.arch import Arch
from hwnas.config import TrainConfig
from hwnas.errors import RunDirError
from hwnas.supernet._space import BaseSearchSpace, Supernet
from hwnas.supernet._split import SplitWeights, load, split_choice, weights_of
from hwnas.supernet.learners._weights import load_split, save_split

#: The checkpoint's entry holding the fingerprint of the split weights file written with it.
SPLIT_FINGERPRINT = "split_fingerprint"
#: The checkpoint's entries saying how many epochs the training has in all, and the choice
#: it splits on (what the report says before the split weights exist).
PLANNED, CHOICE = "epochs_planned", "split_choice"


class FewShot:
    """Few-shot supernet training (Zhao et al., "Few-shot Neural Architecture Search", 2021).

    After the one-shot epochs (``config.total_epochs``) the supernet is split on one choice:
    epochs ``total_epochs + k * split_epochs`` to ``total_epochs + (k + 1) * split_epochs - 1``
    train the copy of the choice's ``k``-th option, which starts from the one-shot weights,
    on paths whose split choice is fixed to that option (``pin``). Between epochs the
    supernet holds the one-shot weights (what supernet.h5 and the checkpoint keep); ``enter``
    puts a copy in for an epoch and ``leave`` takes it out again into ``split``.

    Args:
        space: the search space.
        config: the training settings (``split_epochs`` > 0, ``split_choice``).

    Raises:
        ValueError: ``config.split_choice`` is no choice of the space.
    """

    def __init__(self, space: BaseSearchSpace, config: TrainConfig) -> None:
        self.choice = split_choice(space, config.split_choice)
        self.options = space.choices[self.choice]
        self.first, self.per_option = config.total_epochs, config.split_epochs
        self.epochs = config.planned_epochs(len(self.options))
        self.split = SplitWeights(self.choice, {})
        #: The option whose copy the supernet holds now (None: the one-shot weights).
        self.active: str | None = None
        self._one_shot: dict[str, np.ndarray] = {}

    def copy_of(self, epoch: int) -> tuple[str, int] | None:
        """(option, epoch of its copy from 0) that epoch ``epoch`` trains; None before the split."""
        if epoch < self.first:
            return None
        k, j = divmod(epoch - self.first, self.per_option)
        return self.options[k], j

    def pin(self, arch: Arch) -> Arch:
        """``arch`` with the split choice fixed to the option being trained (as it is when
        none is)."""
        return arch if self.active is None else Arch({**arch, self.choice: self.active})

    def enter(self, supernet: Supernet, option: str) -> None:
        """Puts the copy of ``option`` into ``supernet`` (the one-shot weights when it has none
        yet: its first epoch), keeping the one-shot weights apart."""
        self._one_shot = weights_of(supernet)
        if option in self.split.copies:
            load(supernet, self.split.copies[option])
        self.active = option

    def leave(self, supernet: Supernet) -> None:
        """Keeps what ``supernet`` holds as the active option's copy; puts the one-shot
        weights back."""
        self.split.copies[self.active] = weights_of(supernet)
        load(supernet, self._one_shot)
        self.active, self._one_shot = None, {}

    def checkpoint(self, path: Path) -> dict[str, np.ndarray]:
        """Writes the copies trained so far to ``path`` (none before the split); returns what
        the checkpoint records of them."""
        arrays = {PLANNED: np.array(self.epochs), CHOICE: np.array(self.choice)}
        if self.split.copies:
            arrays[SPLIT_FINGERPRINT] = np.array(save_split(self.split, path))
        return arrays

    def restore(self, supernet: Supernet, path: Path, checkpoint: Path,
                arrays: dict[str, np.ndarray], done: int) -> None:
        """Loads the copies of the options that the checkpoint's ``done`` epochs trained."""
        started = -(-max(0, done - self.first) // self.per_option)  # options begun, rounded up
        if started:
            expected = str(arrays[SPLIT_FINGERPRINT]) if SPLIT_FINGERPRINT in arrays else None
            self.split = load_split(supernet, path, choice=self.choice,
                                    options=self.options[:started], expected=expected,
                                    recorded_in=checkpoint)


def trained_split(space: BaseSearchSpace, supernet: Supernet, config: TrainConfig, path: Path,
                  checkpoint: Path) -> SplitWeights:
    """Every copy of a finished few-shot training, checked against the fingerprint that
    ``checkpoint`` recorded.

    Raises:
        ValueError: ``config.split_choice`` is no choice of the space.
        RunDirError: the checkpoint or the split weights file is unreadable, or the file
            lacks a copy or holds another training's.
    """
    few_shot = FewShot(space, config)
    few_shot.restore(supernet, path, checkpoint, _read(checkpoint, SPLIT_FINGERPRINT),
                     few_shot.epochs)
    return few_shot.split


def recorded_plan(checkpoint: Path) -> tuple[int | None, str | None]:
    """(epochs in all, the split choice) that a few-shot training's checkpoint recorded;
    (None, None) for another training's, or where there is no readable checkpoint."""
    try:
        arrays = _read(checkpoint, PLANNED, CHOICE)
    except RunDirError:
        return None, None
    return (int(arrays[PLANNED]) if PLANNED in arrays else None,
            str(arrays[CHOICE]) if CHOICE in arrays else None)


def _read(checkpoint: Path, *names: str) -> dict[str, np.ndarray]:
    """The entries ``names`` of ``checkpoint`` that it holds."""
    try:
        with np.load(checkpoint) as state:
            return {k: state[k] for k in names if k in state.files}
    except Exception as exc:
        raise RunDirError(f"{checkpoint}: unreadable training checkpoint ({exc})") from None
