"""Tests of the uniform learner's remedies: the sandwich rule and in-place distillation."""
from __future__ import annotations

from pathlib import Path

import nnabla as nn
import numpy as np
import pytest
from _learner_helpers import with_weights
from conftest import SMALL_SPACE, snapshot

from hwnas.arch import Arch
from hwnas.config import DataConfig, TrainConfig
from hwnas.data import Dataset, load_dataset
from hwnas.errors import RunDirError
from hwnas.hwcost import count_macs, inference_output
from hwnas.supernet import Supernet, create_space
from hwnas.supernet.learners import BaseLearner, UniformLearner

#: One small space of each built-in kind.
SPACES = {"mobilenet": SMALL_SPACE,
          "darts": dict(input_shape=(1, 8, 8), n_classes=10, cells=3, channels=4, nodes=2,
                        operations=["skip", "max_k3", "sep_k3", "dil_k3"])}
BATCH = 20


@pytest.fixture(scope="module")
def small_data() -> Dataset:
    return load_dataset(DataConfig(name="synthetic", image_size=8, limit=120), seed=0)


def _learner(space, net, data, run_dir=None, learner=UniformLearner, **config) -> BaseLearner:
    cfg = TrainConfig(**{"epochs": 1, "batch_size": BATCH, "lr": 0.1, **config})
    return learner(space=space, supernet=net, data=data, config=cfg, seed=3, run_dir=run_dir,
                   progress=False)


def _macs(net: Supernet, arch: Arch, shape) -> int:
    return count_macs(inference_output(net.extract(arch), nn.Variable((1,) + tuple(shape))))


def _groups_with_weights(net: Supernet, archs: list[Arch]) -> set[str]:
    params = net.parameter_groups()
    used = set()
    for arch in archs:
        net.set_active(arch)
        used.update(g for g in net.active_groups() if params[g])
    return used


def _changed_groups(net: Supernet, before: dict[str, list[np.ndarray]]) -> set[str]:
    return {g for g, params in net.parameter_groups().items()
            if any(not np.array_equal(b, p.d) for b, p in zip(before[g], params.values()))}


def _group_snapshot(net: Supernet) -> dict[str, list[np.ndarray]]:
    return {g: [p.d.copy() for p in params.values()]
            for g, params in net.parameter_groups().items()}


@pytest.mark.parametrize("name", sorted(SPACES))
def test_the_learners_largest_and_smallest_paths_bound_the_macs(name: str) -> None:
    space = create_space(name, **SPACES[name])
    net = space.supernet()
    learner_paths = (space.extremes()[1], space.extremes()[0])  # largest, smallest
    largest, smallest = (_macs(net, a, space.input_shape) for a in learner_paths)
    rng = np.random.default_rng(0)
    for arch in (space.sample(rng) for _ in range(5)):
        assert smallest <= _macs(net, arch, space.input_shape) <= largest, arch.key
    assert smallest < largest


@pytest.mark.parametrize("name", sorted(SPACES))
def test_a_sandwich_step_trains_the_largest_and_the_smallest_path(
        name: str, small_data: Dataset) -> None:
    space = create_space(name, **SPACES[name])
    net = space.supernet()
    learner = _learner(space, net, small_data, sampling="sandwich", sandwich_paths=0)
    x, y = small_data.train.x[:BATCH], small_data.train.y[:BATCH]
    before = _group_snapshot(net)
    learner.train_step(x, y, np.random.default_rng(0), lr=0.1)
    smallest, largest = space.extremes()
    assert _changed_groups(net, before) == _groups_with_weights(net, [largest, smallest])
    # The default trains one path: it cannot reach both extremes' weights in one step.
    plain = _learner(space, net, small_data)
    before = _group_snapshot(net)
    plain.train_step(x, y, np.random.default_rng(0), lr=0.1)
    assert _changed_groups(net, before) != _groups_with_weights(net, [largest, smallest])


def _grads(net: Supernet, arch: Arch, x: np.ndarray, dlogits) -> tuple[dict, np.ndarray]:
    """Gradients of every trainable weight when the logits of ``arch`` get the gradient
    ``dlogits(logits)``, and the logits."""
    net.set_active(arch)
    net.training = True
    logits = net(nn.Variable.from_numpy_array(x))
    logits.forward()
    params = net.get_parameters(grad_only=True)
    for p in params.values():
        p.grad.zero()
    logits.backward(dlogits(logits.d.copy()))
    return {k: p.g.copy() for k, p in params.items()}, logits.d.copy()


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_a_distilled_step_sums_the_teachers_label_gradient_and_the_students_soft_one(
        small_data: Dataset) -> None:
    """Largest on the labels, smallest on the largest's softmax; SGD without momentum."""
    space = create_space("mobilenet", **SMALL_SPACE)
    net = space.supernet()
    smallest, largest = space.extremes()
    x, y = small_data.train.x[:BATCH], small_data.train.y[:BATCH]
    onehot = np.eye(10, dtype=np.float32)[y[:, 0]]
    teacher_g, teacher_logits = _grads(net, largest, x, lambda z: (_softmax(z) - onehot) / BATCH)
    soft = _softmax(teacher_logits)
    student_g, _ = _grads(net, smallest, x, lambda z: (_softmax(z) - soft) / BATCH)
    label_g, _ = _grads(net, smallest, x, lambda z: (_softmax(z) - onehot) / BATCH)
    before = snapshot(net)
    lr = 0.5
    learner = _learner(space, net, small_data, sampling="sandwich", sandwich_paths=0,
                       distill=True, momentum=0.0, weight_decay=0.0)
    learner.train_step(x, y, np.random.default_rng(0), lr=lr)
    after = snapshot(net)
    for key, g in teacher_g.items():
        want = before[key] - lr * (g + student_g[key])
        np.testing.assert_allclose(after[key], want, rtol=1e-4, atol=1e-6, err_msg=key)
    # The student's weights alone (not the teacher's) moved along the soft targets, not
    # the labels: with distillation off this is where the step would differ.
    shared = {k for k in teacher_g if np.any(teacher_g[k])}
    own = [k for k in student_g if k not in shared and np.any(student_g[k])]
    assert own
    assert any(not np.allclose(after[k], before[k] - lr * label_g[k], rtol=1e-3, atol=1e-6)
               for k in own)


class _OldUniform(BaseLearner):
    """The uniform learner as it was before the remedies: one random path per step."""

    def before_batch(self, rng: np.random.Generator) -> None:
        self.supernet.set_active(self.space.sample(rng))


def test_with_the_remedies_off_training_is_bitwise_the_old_one(small_data: Dataset) -> None:
    space = create_space("mobilenet", **SMALL_SPACE)
    first = space.supernet()
    nets = [first, with_weights(space, snapshot(first))]
    old = _learner(space, nets[0], small_data, learner=_OldUniform).fit()
    new = _learner(space, nets[1], small_data).fit()
    assert [r["loss"] for r in old] == [r["loss"] for r in new]
    want = snapshot(nets[0])
    assert all(np.array_equal(want[k], v) for k, v in snapshot(nets[1]).items())


def test_the_checkpoint_records_the_remedies_and_a_resume_keeps_them(
        small_data: Dataset, tmp_path: Path) -> None:
    space = create_space("mobilenet", **{**SMALL_SPACE, "stages": [(8, 1, 1)]})
    _learner(space, space.supernet(), small_data, tmp_path, sampling="sandwich",
             sandwich_paths=1, distill=True).fit()
    for changed in ({"sampling": "uniform"}, {"sandwich_paths": 2}, {"distill": False}):
        config = {"sampling": "sandwich", "sandwich_paths": 1, "distill": True, **changed}
        with pytest.raises(RunDirError, match="sampling sandwich, sandwich_paths 1, distill true"):
            _learner(space, space.supernet(), small_data, tmp_path, epochs=2, **config).fit()
    history = _learner(space, space.supernet(), small_data, tmp_path, epochs=2,
                       sampling="sandwich", sandwich_paths=1, distill=True).fit()
    assert [r["epoch"] for r in history] == [1, 2]


def test_a_checkpoint_from_before_the_remedies_resumes_only_without_them(
        small_data: Dataset, tmp_path: Path) -> None:
    space = create_space("mobilenet", **{**SMALL_SPACE, "stages": [(8, 1, 1)]})
    _learner(space, space.supernet(), small_data, tmp_path, learner=_OldUniform).fit()
    with pytest.raises(RunDirError, match="trained with sampling uniform, distill false"):
        _learner(space, space.supernet(), small_data, tmp_path, epochs=2,
                 sampling="sandwich").fit()
    assert len(_learner(space, space.supernet(), small_data, tmp_path, epochs=2).fit()) == 2


def test_with_a_remedy_the_log_reports_the_mean_label_loss_of_the_steps_paths(
        small_data: Dataset) -> None:
    """The log's loss is the mean label loss of the step's paths."""
    space = create_space("mobilenet", **SMALL_SPACE)
    net = space.supernet()
    x, y = small_data.train.x[:BATCH], small_data.train.y[:BATCH]
    smallest, largest = space.extremes()
    onehot = np.eye(10, dtype=np.float32)[y[:, 0]]
    losses = []
    for arch in (largest, smallest):
        _, logits = _grads(net, arch, x, lambda z: np.zeros_like(z))
        losses.append(float(np.mean(-np.sum(onehot * np.log(_softmax(logits)), axis=1))))
    loss, _ = _learner(space, net, small_data, sampling="sandwich", sandwich_paths=0,
                       distill=True).train_step(x, y, np.random.default_rng(0), lr=0.0)
    assert loss == pytest.approx(np.mean(losses), rel=1e-4)


def test_the_step_with_distillation_alone_trains_the_largest_and_one_random_path(
        small_data: Dataset) -> None:
    space = create_space("mobilenet", **SMALL_SPACE)
    learner = _learner(space, space.supernet(), small_data, distill=True)
    paths = learner.step_paths(np.random.default_rng(1))
    assert paths == [space.extremes()[1], space.sample(np.random.default_rng(1))]
    sandwich = _learner(space, space.supernet(), small_data, sampling="sandwich",
                        sandwich_paths=3).step_paths(np.random.default_rng(1))
    assert sandwich[:2] == space.extremes()[::-1] and len(sandwich) == 5
