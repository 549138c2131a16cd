"""The sections of an experiment config: data, space, training, search, latency, retraining.

Types and ranges only: names of datasets, spaces, learners, strategies and the
like are checked against their registries (``hwnas.run.names.check_names``).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from hwnas.objectives import OBJECTIVES


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it lives and how it is split.

    Attributes:
        name: a registered dataset (``hwnas.data.DATASETS``): ``digits`` (embedded),
            ``cifar10``, ``mnist`` or ``synthetic``.
        path: the user's local copy, for a dataset that needs one (cifar10:
            directory or .tar.gz; mnist: directory of IDX files).
        image_size: side of the square images fed to the network (digits are upsampled).
        val_fraction: share of the data that scores subnets during search.
        test_fraction: share held out for the final report.
        limit: use at most this many examples (0: all).
    """

    name: str = "digits"
    path: Optional[str] = None
    image_size: int = 16
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    limit: int = 0

    def _check(self, err) -> None:
        if not 4 <= self.image_size <= 512:
            err("image_size", f"must be between 4 and 512, got {self.image_size}")
        for key in ("val_fraction", "test_fraction"):
            if not 0.0 < getattr(self, key) < 0.5:
                err(key, f"must be in (0, 0.5), got {getattr(self, key)}")
        if self.limit < 0:
            err("limit", f"must be >= 0, got {self.limit}")


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """A stage of the chain space: ``blocks`` searchable blocks of ``channels`` outputs."""

    channels: int
    blocks: int
    stride: int = 1

    def _check(self, err) -> None:
        if self.channels < 1:
            err("channels", f"must be >= 1, got {self.channels}")
        if self.blocks < 1:
            err("blocks", f"must be >= 1, got {self.blocks}")
        if self.stride not in (1, 2):
            err("stride", f"must be 1 or 2, got {self.stride}")


@dataclasses.dataclass(frozen=True)
class SpaceConfig:
    """The search space and its shape.

    Attributes:
        name: a registered search space (``hwnas.supernet.SPACES``).
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
    """

    name: str = "mobilenet"
    stem_channels: int = 16
    stages: list[StageConfig] = dataclasses.field(default_factory=lambda: [
        StageConfig(16, 2, 1), StageConfig(24, 2, 2), StageConfig(32, 2, 2)])
    kernels: list[int] = dataclasses.field(default_factory=lambda: [3, 5, 7])
    expansions: list[int] = dataclasses.field(default_factory=lambda: [3, 6])
    skip: bool = True
    head_channels: int = 64
    operations: list[str] = dataclasses.field(default_factory=list)
    cells: int = 8
    channels: int = 16
    nodes: int = 4

    def _check(self, err) -> None:
        for key in ("cells", "channels", "nodes"):
            if getattr(self, key) < 1:
                err(key, f"must be >= 1, got {getattr(self, key)}")
        if not self.stages:
            err("stages", "needs at least one stage")
        if not self.kernels or any(k < 1 or k % 2 == 0 for k in self.kernels):
            err("kernels", f"must be odd positive kernel sizes, got {self.kernels}")
        if not self.expansions or any(e < 1 for e in self.expansions):
            err("expansions", f"must be positive, got {self.expansions}")
        for key in ("stem_channels", "head_channels"):
            if getattr(self, key) < 1:
                err(key, f"must be >= 1, got {getattr(self, key)}")


@dataclasses.dataclass(frozen=True)
class RegularizerConfig:
    """A hardware constraint on the learned architecture (DARTS and ProxylessNAS).

    Attributes:
        objective: a registered regularizer objective
            (``hwnas.supernet.learners.COST_OBJECTIVES``): ``latency_ms`` (from
            the run's latency table), ``params`` or ``macs``.
        budget: the target value of the objective.
        form: a registered form (``hwnas.supernet.learners.FORMS``): ``additive``
            (loss + weight * max(0, E[cost]/budget - 1)) or ``multiplicative``
            (loss * (E[cost]/budget) ** weight, MnasNet).
        weight: penalty weight (additive) or exponent (multiplicative).
    """

    objective: str
    budget: float
    form: str = "additive"
    weight: float = 1.0

    def _check(self, err) -> None:
        if self.budget <= 0:
            err("budget", f"must be > 0, got {self.budget}")
        if self.weight <= 0:
            err("weight", f"must be > 0, got {self.weight}")


def _check_sgd(config, err) -> None:
    """Checks the SGD settings that supernet training and retraining share."""
    for key in ("epochs", "batch_size"):
        if getattr(config, key) < 1:
            err(key, f"must be >= 1, got {getattr(config, key)}")
    if config.lr <= 0:
        err("lr", f"must be > 0, got {config.lr}")
    if not 0 <= config.momentum < 1:
        err("momentum", f"must be in [0, 1), got {config.momentum}")
    if config.weight_decay < 0:
        err("weight_decay", f"must be >= 0, got {config.weight_decay}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Supernet training.

    Attributes:
        learner: a registered learner (``hwnas.supernet.learners.LEARNERS``):
            ``uniform`` (uniform path sampling), ``darts`` or ``proxyless``.
        epochs: passes over the weight-training split.
        batch_size: examples per step.
        lr: initial learning rate (cosine-annealed to 0).
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        order: DARTS: 1 (first order) or 2 (the unrolled step, with the
            finite-difference Hessian-vector product).
        estimator: ProxylessNAS: ``binary_gate`` or ``reinforce``.
        arch_lr: Adam learning rate of the architecture parameters.
        arch_weight_decay: L2 weight decay of the architecture parameters.
        arch_fraction: share of the training split kept apart for architecture
            updates (gradient learners; weights train on the rest).
        warmup_epochs: first epochs that train weights only (paths sampled uniformly).
        regularizer: a hardware constraint on the learned architecture (a gradient
            learner's), or none.
    """

    learner: str = "uniform"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 4e-5
    order: int = 1
    estimator: str = "binary_gate"
    arch_lr: float = 0.003
    arch_weight_decay: float = 0.001
    arch_fraction: float = 0.5
    warmup_epochs: int = 0
    regularizer: Optional[RegularizerConfig] = None

    def _check(self, err) -> None:
        if self.order not in (1, 2):
            err("order", f"must be 1 or 2, got {self.order}")
        if self.estimator not in ("binary_gate", "reinforce"):
            err("estimator", f"must be binary_gate or reinforce, got {self.estimator!r}")
        if self.arch_lr <= 0:
            err("arch_lr", f"must be > 0, got {self.arch_lr}")
        if self.arch_weight_decay < 0:
            err("arch_weight_decay", f"must be >= 0, got {self.arch_weight_decay}")
        if not 0 < self.arch_fraction < 1:
            err("arch_fraction", f"must be in (0, 1), got {self.arch_fraction}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            err("warmup_epochs", f"must be in [0, epochs], got {self.warmup_epochs}")
        _check_sgd(self, err)


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
    trials: int = 60
    objectives: list[str] = dataclasses.field(
        default_factory=lambda: ["error", "latency_ms", "params"])
    bn_samples: int = 512
    batch: int = 4

    def _check(self, err) -> None:
        if self.trials < 1:
            err("trials", f"must be >= 1, got {self.trials}")
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or not self.objectives:
            err("objectives", f"unknown objective(s) {unknown}; known: {', '.join(OBJECTIVES)}")
        if len(set(self.objectives)) != len(self.objectives):
            err("objectives", f"repeats an objective: {self.objectives}")
        if "error" not in self.objectives:
            err("objectives", "must include 'error'")
        if self.bn_samples < 1:
            err("bn_samples", f"must be >= 1, got {self.bn_samples}")
        if self.batch < 1:
            err("batch", f"must be >= 1, got {self.batch}")


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
    batch_size: int = 1
    warmup: int = 5
    repeats: int = 30
    statistic: str = "cpu_median"
    max_spread: float = 0.25
    retries: int = 2
    predictor: str = "lut"
    calibration_samples: int = 20
    command: Optional[str] = None
    command_timeout: float = 120.0

    def _check(self, err) -> None:
        if self.context not in ("cpu", "cudnn"):
            err("context", f"must be 'cpu' or 'cudnn', got {self.context!r}")
        if self.statistic not in ("cpu_median", "wall_p10", "wall_median"):
            err("statistic", f"must be cpu_median, wall_p10 or wall_median, got {self.statistic!r}")
        for key in ("batch_size", "repeats"):
            if getattr(self, key) < 1:
                err(key, f"must be >= 1, got {getattr(self, key)}")
        for key in ("warmup", "retries"):
            if getattr(self, key) < 0:
                err(key, f"must be >= 0, got {getattr(self, key)}")
        if self.max_spread <= 0:
            err("max_spread", f"must be > 0, got {self.max_spread}")
        if self.predictor not in ("lut", "measure"):
            err("predictor", f"must be 'lut' or 'measure', got {self.predictor!r}")
        if self.calibration_samples < MIN_CALIBRATION_SAMPLES:
            err("calibration_samples", f"must be >= {MIN_CALIBRATION_SAMPLES} (fewer subnets "
                "cannot tell the calibration's offset from noise), "
                f"got {self.calibration_samples}")
        if self.command is not None and "{model}" not in self.command:
            err("command", "must contain '{model}', the path of the exported .nnp")
        if self.command_timeout <= 0:
            err("command_timeout", f"must be > 0, got {self.command_timeout}")


@dataclasses.dataclass(frozen=True)
class RetrainConfig:
    """The recipe that trains the chosen subnet from scratch (``hwnas retrain``).

    Attributes:
        epochs: passes over the training split.
        batch_size: examples per step.
        lr: initial learning rate, cosine-annealed to 0 over all steps.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        augmentation: ``auto`` (the dataset's own: ``shift`` for digits, MNIST and
            synthetic data, ``crop-flip`` for CIFAR-10) or a registered augmentation
            (``hwnas.data.AUGMENTATIONS``): ``shift`` (random translation by up
            to ``max(1, image_size // 8)`` pixels, padding with black),
            ``crop-flip`` (the same, plus a random horizontal flip) or ``none``.
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augmentation: str = "auto"

    def _check(self, err) -> None:
        _check_sgd(self, err)
