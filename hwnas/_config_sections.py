"""The sections of an experiment config: data, space, search and latency (training and
retraining: ``hwnas._config_training``), and the bounds their fields share.

Types and ranges only: names of datasets, spaces, learners, strategies and the
like are checked against their registries (``hwnas.run.names.check_names``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from hwnas.errors import shorten
from hwnas.objectives import OBJECTIVES

#: Upper bounds shared by several fields: generous for real use (ImageNet-scale models and
#: schedules sit well below them), small enough that no single value exhausts memory.
WIDTH = 4096  # channels of a layer: a 1x1 convolution of 4096 x 4096 is 64 MiB
EPOCHS = 10_000  # passes over the data
BATCH = 65_536  # examples per step: large-batch training uses up to 64k


def bounded(default: Any = dataclasses.MISSING, *, low: int, high: int,
            length: tuple[int, int] | None = None,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A config field whose value (each item, for a list of ``length`` items) lies in
    ``[low, high]``; the loader checks it, naming the key and the bounds."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"bounds": (low, high), "length": length})


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it lives and how it is split.

    Attributes:
        name: a registered dataset (``hwnas.data.DATASETS``): ``digits`` (embedded),
            ``digits-hard`` (derived from it), ``cifar10``, ``mnist``, ``synthetic``, or
            one of the user's own data: ``folder`` (one subfolder of images per class, or
            ``train/``, ``val/``, ``test/`` folders of those), ``csv`` (a Neural Network
            Console dataset CSV ``x:image,y:label``, or a folder holding ``train.csv``
            with optional ``val.csv`` and ``test.csv``) or ``npz`` (arrays ``x`` and ``y``).
        path: the user's local copy, for a dataset that needs one (cifar10:
            directory or .tar.gz; mnist: directory of IDX files; folder, csv, npz: above).
        image_size: side of the square images fed to the network (digits are upsampled).
        channels: 1 (grey) or 3 (RGB): images are converted to it; None keeps what the
            images are (folder and csv: 1 when every image is grey, else 3).
        val_fraction: share of the data that scores subnets during search (a source
            with given splits draws only a missing val split, from its train split).
        test_fraction: share held out for the final report (likewise).
        limit: use at most this many examples (0: all).
    """

    name: str = "digits"
    path: Optional[str] = None
    image_size: int = bounded(16, low=4, high=512)  # 512 x 512 inputs: 1 MiB per example
    channels: Optional[int] = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    limit: int = bounded(0, low=0, high=10**9)  # 0: all; no dataset here has 10**9 examples

    def _check(self, err) -> None:
        for key in ("val_fraction", "test_fraction"):
            if not 0.0 < getattr(self, key) < 0.5:
                err(key, f"must be in (0, 0.5), got {getattr(self, key)}")
        if self.channels is not None and self.channels not in (1, 3):
            err("channels", f"must be 1 (grey) or 3 (RGB), got {shorten(self.channels)}")


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """A stage of the chain space: ``blocks`` searchable blocks of ``channels`` outputs."""

    channels: int = bounded(low=1, high=WIDTH)
    blocks: int = bounded(low=1, high=64)  # ResNet-152's deepest stage has 36 blocks
    stride: int = 1

    def _check(self, err) -> None:
        if self.stride not in (1, 2):
            err("stride", f"must be 1 or 2, got {shorten(self.stride)}")


@dataclasses.dataclass(frozen=True)
class SpaceConfig:
    """The search space and its shape.

    Attributes:
        name: a registered search space (``hwnas.supernet.SPACES``), an installed
            package's (entry point ``hwnas.spaces``), or a class by spec:
            ``my_pkg.spaces:MySpace`` or ``./my_space.py:MySpace`` (relative to the config).
        stem_channels: output channels of the fixed stem convolution.
        stages: the searchable stages.
        kernels: kernel sizes offered to every inverted-residual block.
        expansions: expansion ratios offered to every inverted-residual block.
        skip: whether blocks whose input and output shapes match may be skipped.
        head_channels: channels of the final 1x1 convolution before pooling.
        operations: candidate operations besides inverted residuals (``mobilenet``:
            offered to every block, e.g. ``sep_k3``, ``conv_k3``, ``dil_k3``,
            ``grp_k3_g2``, ``max_k3``, ``affine``) or on every cell edge (``darts``;
            empty: the eight DARTS operations).
        cells: cells of the ``darts`` space (reduction cells at 1/3 and 2/3 of the depth).
        channels: initial channels of the ``darts`` space (doubled at every reduction).
        nodes: intermediate nodes per ``darts`` cell.
        options: keyword arguments of the space class besides the keys above (a user's
            space, ``space.name: ./my_space.py:MySpace``, takes its own settings here).
    """

    name: str = "mobilenet"
    stem_channels: int = bounded(16, low=1, high=WIDTH)
    stages: list[StageConfig] = dataclasses.field(default_factory=lambda: [
        StageConfig(16, 2, 1), StageConfig(24, 2, 2), StageConfig(32, 2, 2)])
    # Each option multiplies the candidates of every block; 31 x 31 is wider than any image here.
    kernels: list[int] = bounded(low=1, high=31, length=(1, 16),
                                 default_factory=lambda: [3, 5, 7])
    expansions: list[int] = bounded(low=1, high=32, length=(1, 16),
                                    default_factory=lambda: [3, 6])
    skip: bool = True
    head_channels: int = bounded(64, low=1, high=WIDTH)
    operations: list[str] = dataclasses.field(default_factory=list)
    cells: int = bounded(8, low=1, high=64)  # DARTS evaluates networks of 20 cells
    channels: int = bounded(16, low=1, high=WIDTH)
    nodes: int = bounded(4, low=1, high=16)  # a cell's edges grow with the square of its nodes
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def _check(self, err) -> None:
        if not self.stages:
            err("stages", "needs at least one stage")
        if len(self.stages) > 16:  # the deepest networks here have 7 stages
            err("stages", f"must hold at most 16 stages, got {len(self.stages)}")
        if any(k % 2 == 0 for k in self.kernels):
            err("kernels", f"must be odd positive kernel sizes, got {self.kernels}")
        for key in ("kernels", "expansions", "operations"):
            options = getattr(self, key)
            if len(set(options)) != len(options):  # each names one candidate of a block
                err(key, f"repeats an option: {shorten(options)}")
        if len(self.operations) > 16:
            err("operations", f"must hold at most 16 operations, got {len(self.operations)}")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Black-box search over the trained supernet.

    Attributes:
        strategy: a registered strategy (``hwnas.strategies.STRATEGIES``): ``tpe-ls``
            (Optuna's TPE with Pareto local search, the default), ``tpe``, ``nsga2``, ``nsga3``, ``optuna-random``,
            ``qmc``, ``deap-nsga2``, ``deap-nsga3``, ``deap-spea2``, ``random``.
        trials: distinct subnets to evaluate in total (a resumed search stops
            there too; a repeated proposal is answered from the study and not
            counted).
        objectives: what the front trades off, all minimised.
        bn_samples: training examples used to recalibrate batch norm per subnet.
        batch: subnets proposed at once and evaluated together (by the
            ``--workers`` processes or a Dask cluster); what is proposed depends
            on the seed and the batch, never on how many workers evaluate.
    """

    strategy: str = "tpe-ls"
    trials: int = bounded(60, low=1, high=1_000_000)  # each is one record in the study
    objectives: list[str] = dataclasses.field(
        default_factory=lambda: ["error", "latency_ms", "params"])
    bn_samples: int = bounded(512, low=1, high=100_000)  # examples held at once per subnet
    batch: int = bounded(4, low=1, high=1024)  # subnets held at once

    def _check(self, err) -> None:
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or not self.objectives:
            err("objectives", f"unknown objective(s) {shorten(unknown)}; "
                f"known: {', '.join(OBJECTIVES)}")
        if len(set(self.objectives)) != len(self.objectives):
            err("objectives", f"repeats an objective: {shorten(self.objectives)}")
        if "error" not in self.objectives:
            err("objectives", "must include 'error'")


#: The fewest whole subnets a latency table is calibrated on. The fit has two parameters
#: (slope, offset) and keeps the offset only when it predicts each subnet left out of the
#: fit better than the plain ratio does: with 6 subnets each left-out line rests on 5
#: points, and the predictions' uncertainty (the residual spread) on 4 degrees of freedom.
#: With 4 subnets one noisy measurement decided the offset: it came out negative, and the
#: cheapest subnets were predicted below 0 ms.
MIN_CALIBRATION_SAMPLES = 6


@dataclasses.dataclass(frozen=True)
class LatencyConfig:
    """The latency measurement protocol.

    Attributes:
        context: nnabla context, ``cpu`` or ``cudnn``.
        batch_size: batch size of the timed forward pass.
        warmup: untimed forward passes first.
        repeats: timed forward passes.
        statistic: ``cpu_median`` (median of per-call thread CPU time), ``wall_p10``
            or ``wall_median``.
        max_spread: largest (p75 - p25) / statistic accepted before re-measuring.
        retries: re-measurements before a measurement is reported unreliable.
        predictor: ``lut`` (search predicts latency from the run's calibrated
            per-block table, lut.json, and re-measures the front and the
            selected subnet) or ``measure`` (every subnet is measured whole).
        calibration_samples: whole subnets measured to calibrate the table,
            at least ``MIN_CALIBRATION_SAMPLES``.
        command: measure on another device: a shell command run once per
            network, with ``{model}`` replaced by the path of an exported .nnp
            (leave it unquoted) and ``{batch_size}``, ``{warmup}``,
            ``{repeats}`` by the protocol's values; its last stdout line gives
            the latency in ms (its last number, or a JSON object with
            ``latency_ms`` and optionally ``spread``), and a line ``device: ...``
            names the device (``tools/nnp_latency.py`` does all this). None:
            measure in this process.
        command_timeout: seconds a command may run before it counts as failed.
    """

    context: str = "cpu"
    batch_size: int = bounded(1, low=1, high=BATCH)
    # The timings of every repeat are held in memory; 10**5 forwards take minutes already.
    warmup: int = bounded(5, low=0, high=100_000)
    repeats: int = bounded(30, low=1, high=100_000)
    statistic: str = "cpu_median"
    max_spread: float = 0.25
    retries: int = bounded(2, low=0, high=100)
    predictor: str = "lut"
    # Each is a whole-subnet measurement.
    calibration_samples: int = bounded(20, low=MIN_CALIBRATION_SAMPLES, high=10_000)
    command: Optional[str] = None
    command_timeout: float = 120.0

    def _check(self, err) -> None:
        if self.context not in ("cpu", "cudnn"):
            err("context", f"must be 'cpu' or 'cudnn', got {shorten(self.context)}")
        if self.statistic not in ("cpu_median", "wall_p10", "wall_median"):
            err("statistic", "must be cpu_median, wall_p10 or wall_median, "
                f"got {shorten(self.statistic)}")
        if self.max_spread <= 0:
            err("max_spread", f"must be > 0, got {self.max_spread}")
        if self.predictor not in ("lut", "measure"):
            err("predictor", f"must be 'lut' or 'measure', got {shorten(self.predictor)}")
        if self.command is not None and "{model}" not in self.command:
            err("command", "must contain '{model}', the path of the exported .nnp")
        if not 0 < self.command_timeout <= 7 * 86400:  # longer overflows some OS timers
            err("command_timeout", f"must be > 0 and at most a week (604800 s), "
                f"got {self.command_timeout}")
