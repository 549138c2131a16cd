"""Retraining: the chosen subnet trained from scratch with the config's recipe.

Each subnet gets its own directory, ``RUN/retrain/DIGEST/`` (the first 12 hex
digits of the SHA-1 of its key), so selecting another subnet and retraining it
keeps the earlier retraining: ``arch.json`` (the subnet and recipe, written
first), the per-epoch checkpoint (``state.npz``, ``weights.h5``, ``log.csv``; a
rerun resumes from it) and, once done, ``result.json`` with the test accuracy
beside the supernet's estimate for the same subnet. Export uses these weights
for the subnet it exports.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

import nnabla as nn

from hwnas.config import RetrainConfig, TrainConfig
from hwnas.data import augment, default_augmentation
from hwnas.errors import HwnasError, RunDirError
from hwnas.evaluate import Evaluator, split_accuracy
from hwnas.io import atomic_write_json
from hwnas.run.files import RunDir
from hwnas.run.records import read_retrain_claim, read_retrain_result
from hwnas.run.workspace import Workspace, workspace
from hwnas.supernet import Arch, BaseSearchSpace, Supernet
from hwnas.supernet.learners import BaseLearner, load_weights, recorded_fingerprint



class RetrainLearner(BaseLearner):
    """Trains one standalone subnet: its single path, the recipe's augmentation, and the
    validation accuracy logged after every epoch."""

    checkpoint_file = RunDir.RETRAIN_CHECKPOINT
    weights_file, log_file = RunDir.RETRAIN_WEIGHTS, RunDir.RETRAIN_LOG
    weight_graph = "subnet"  # one path: the training graph is built once

    def __init__(self, *, augmentation: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.augmentation = augmentation
        # What a black pixel becomes after normalisation: the padding of shifted images.
        self.fill = -np.asarray(self.data.mean, np.float32) / np.asarray(self.data.std, np.float32)

    def before_batch(self, rng: np.random.Generator) -> None:
        """Nothing to choose: the subnet has one path."""

    def augment(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return augment(x, rng, self.augmentation, fill=self.fill)

    def epoch_metrics(self) -> dict[str, float]:
        self.supernet.training = False
        return {"val_accuracy": split_accuracy(self.supernet, self.data.val)}


def retrain_dir(run: RunDir, key: str, *, seed: int | None = None,
                recipe: dict[str, Any] | None = None) -> Path:
    """Where the retraining of the subnet with Arch key ``key`` lives.

    Without ``seed`` and ``recipe``: the directory of ``hwnas retrain`` (the digest of the
    key alone), which export and the report read. With them: a retraining of its own (the
    digest of the key, the seed and the recipe as JSON), which ``hwnas rank-check`` uses
    for its further seeds and for recipes other than the one that directory holds.
    """
    name = key if seed is None and recipe is None else \
        f"{key}\n{json.dumps({'seed': seed, 'recipe': recipe}, sort_keys=True)}"
    return run / RunDir.RETRAIN_DIR / hashlib.sha1(name.encode()).hexdigest()[:12]


def fresh_subnet(space: BaseSearchSpace, arch: Arch, seed: int) -> Supernet:
    """A standalone subnet for ``arch`` with freshly initialised, seeded weights."""
    nn.seed(seed)
    np.random.seed(seed)  # nnabla's initialisers draw from numpy's global generator
    return space.initial_supernet().extract(arch)


def recipe_of(config: RetrainConfig, dataset: str) -> dict[str, Any]:
    """The recipe as recorded: the config's, with ``auto`` augmentation resolved."""
    recipe = dataclasses.asdict(config)
    if recipe["augmentation"] == "auto":
        recipe["augmentation"] = default_augmentation(dataset)
    return recipe


def run_recipe(run: RunDir, epochs: int | None = None) -> dict[str, Any]:
    """The run's retraining recipe as recorded, with ``epochs`` instead of the config's."""
    cfg = run.config
    return recipe_of(cfg.retrain if epochs is None
                     else dataclasses.replace(cfg.retrain, epochs=epochs), cfg.data.name)


def retrain(run: RunDir, arch: Arch, *, epochs: int | None = None, progress: bool = True,
            ws: Workspace | None = None, seed: int | None = None,
            where: Path | None = None) -> dict[str, Any]:
    """Trains ``arch`` from scratch (or resumes) and writes ``retrain/result.json``.

    Args:
        run: the run directory (its supernet trained: it gives the estimate).
        arch: the subnet.
        epochs: instead of the config's ``retrain.epochs``.
        seed: of the initial weights and the batches, instead of the config's.
        where: the retraining's directory instead of ``retrain_dir(run, arch.key)``
            (``hwnas rank-check`` keeps its other seeds and recipes apart there).

    Returns:
        What result.json records.

    Raises:
        RunDirError: ``retrain/`` holds another subnet, recipe or seed.
        HwnasError: ``arch`` is not in the run's space.
    """
    cfg = run.config
    ws = ws or workspace(run, progress=progress)
    try:
        arch = ws.space.validate(arch)
    except ValueError as exc:
        raise HwnasError(str(exc)) from None
    recipe = run_recipe(run, epochs)
    seed = cfg.seed if seed is None else seed
    where = retrain_dir(run, arch.key) if where is None else where
    claim = {"key": arch.key, "arch": dict(arch), "recipe": recipe, "seed": seed}
    subnet = fresh_subnet(ws.space, arch, seed)
    train = TrainConfig(epochs=recipe["epochs"], batch_size=recipe["batch_size"],
                        lr=recipe["lr"], momentum=recipe["momentum"],
                        weight_decay=recipe["weight_decay"])
    try:  # before the claim: a recipe the data cannot meet claims nothing
        learner = RetrainLearner(space=ws.space, supernet=subnet, data=ws.data, config=train,
                                 seed=seed, run_dir=where, progress=progress,
                                 augmentation=recipe["augmentation"])
    except ValueError as exc:
        raise HwnasError(f"{run / RunDir.CONFIG}: cannot retrain: {exc}") from None
    _claim(where, claim)
    result_path = where / RunDir.RETRAIN_RESULT
    try:
        done = read_retrain_result(where)
    except RunDirError:
        done = None  # damaged: computed again from the finished checkpoint below
    if done is not None and (done["key"], done["recipe"]) == (arch.key, recipe):
        return done
    history = learner.fit()
    subnet.training = False
    estimate = Evaluator(space=ws.space, supernet=ws.supernet, data=ws.data,
                         latency=cfg.latency, bn_samples=cfg.search.bn_samples, split=ws.split)
    result = {
        **claim,
        "epochs": recipe["epochs"],
        "test_accuracy": split_accuracy(subnet, ws.data.test),
        "val_accuracy": split_accuracy(subnet, ws.data.val),
        "supernet_val_accuracy": estimate.accuracy(arch, ws.data.val),
        "supernet_test_accuracy": estimate.accuracy(arch, ws.data.test),
        "test_examples": len(ws.data.test),
        "seconds": round(float(sum(row["seconds"] for row in history)), 3),
        "weights": str((where / learner.weights_file).relative_to(run.path)),
    }
    atomic_write_json(result_path, result)
    return result


def _claim(where: Path, claim: dict[str, Any]) -> None:
    """Records which subnet and recipe ``where`` trains; refuses a directory holding others."""
    path = where / RunDir.RETRAIN_CLAIM
    held = read_retrain_claim(where)
    if held is not None:
        key, recipe = held["key"], held["recipe"]
        if key != claim["key"]:
            raise RunDirError(f"{where} holds the retraining of another subnet ({key}); "
                              "move it away to retrain this one there")
        if held.get("seed", claim["seed"]) != claim["seed"]:
            raise RunDirError(f"{where} was retrained with seed {held['seed']!r}, not "
                              f"{claim['seed']!r}; move it away to retrain with this seed")
        # A claim alone (no checkpoint, log or result) trained nothing: a corrected recipe
        # replaces it.
        if recipe != claim["recipe"] and any(p.name != RunDir.RETRAIN_CLAIM
                                             for p in where.iterdir()):
            diff = next(k for k in {**recipe, **claim["recipe"]}
                        if recipe.get(k) != claim["recipe"].get(k))
            raise RunDirError(f"{where} was retrained with {diff}={recipe.get(diff)!r}, not "
                              f"{claim['recipe'].get(diff)!r}; move it away to retrain with "
                              "this recipe")
        if recipe == claim["recipe"]:
            return
    where.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, claim)


def retrained_subnet(run: RunDir, supernet: Supernet, arch: Arch) -> Supernet | None:
    """The retrained subnet of ``arch`` (inference mode), or None when it was not retrained.

    ``supernet`` (the run's) only lends the subnet's structure: every weight is replaced.
    """
    where = retrain_dir(run, arch.key)
    result = read_retrain_result(where)
    if result is None or result["key"] != arch.key:
        return None
    subnet = supernet.extract(arch)
    ckpt = where / RetrainLearner.checkpoint_file
    load_weights(subnet, where / RetrainLearner.weights_file,
                 expected=recorded_fingerprint(ckpt) if ckpt.exists() else None,
                 recorded_in=ckpt)
    subnet.training = False
    return subnet


def read_arch_json(path: str | Path) -> Arch:
    """An Arch from a JSON file: a mapping of choices, or a record with an ``arch`` entry
    (selected.json, retrain/result.json)."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise HwnasError(f"--arch-json: cannot read {path} ({exc.strerror})") from None
    except ValueError as exc:
        raise HwnasError(f"--arch-json: {path} is not JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("arch"), dict):
        data = data["arch"]
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise HwnasError(f"--arch-json: {path} must hold a mapping of choice -> option")
    try:
        return Arch(data)
    except ValueError as exc:
        raise HwnasError(f"--arch-json: {exc}") from None
