"""ProxylessNAS: sampled paths train the weights; binary gates or REINFORCE the architecture."""
from __future__ import annotations

import numpy as np

from hwnas.supernet.learners._base import BaseLearner
from hwnas.supernet.learners._registry import register_learner

#: Decay of REINFORCE's moving-average reward baseline.
BASELINE_DECAY = 0.95


@register_learner("proxyless")
class ProxylessLearner(BaseLearner):
    """ProxylessNAS (Cai et al., 2019): one path in memory per step.

    The weight step trains one path drawn from softmax(alpha) at every mixed
    operation. The architecture step (``estimator``):

    - ``binary_gate``: draws two candidates per mixed operation, opens one
      gate, and back-propagates the straight-through gate gradient
      ``dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i)`` over the pair; the
      pair's logits are then shifted so that the other candidates keep their
      probabilities (as in ProxylessNAS);
    - ``reinforce``: draws one path, scores its accuracy on the architecture
      batch, and follows ``(reward - baseline) * dlog p(path)/dalpha`` with a
      moving-average baseline. With a regularizer whose form prices the path
      (``Form.in_reward``) the reward is the drawn path's: TuNAS's ``accuracy -
      weight * |cost / budget - 1|`` (``absolute``) or MnasNet's ``accuracy *
      (cost / budget) ** -weight`` (``multiplicative``).
    """

    learns_arch = True
    arch_betas = (0.0, 0.999)
    # The weights train on paths drawn from softmax(alpha), so the subnets the architecture
    # turned away from are undertrained. Uniform single-path fine-tuning for twice the
    # search's epochs raised Kendall tau on digits-hard from 0.27 to 0.49 against the full
    # stand-alone recipe and from 0.49 to 0.72 against 6 epochs; a quarter of the epochs
    # lowered it (bench/bench_ranking.py; README, "Does the supernet rank?").
    finetune_factor = 2

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.baseline: float | None = None

    def before_batch(self, rng: np.random.Generator) -> None:
        self._sample_path(rng)

    def _sample_path(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Activates one candidate per mixed operation, drawn by softmax(alpha); returns counts."""
        self.supernet.set_mode("single")
        counts = {}
        for name, ops in self.supernet.mixed_ops().items():
            counts[name] = np.zeros(len(ops[0].options))
            for op in ops:
                k = int(rng.choice(len(op.options), p=op.probabilities()))
                op.active = op.options[k]
                counts[name][k] += 1
        return counts

    def arch_step(self, xa: np.ndarray, ya: np.ndarray, x: np.ndarray, y: np.ndarray,
                  rng: np.random.Generator, lr: float) -> dict[str, float]:
        if self.config.estimator == "reinforce":
            return self._reinforce(xa, ya, rng)
        self.supernet.set_mode("proxyless")
        sampled: dict[str, set[int]] = {}
        for name, ops in self.supernet.mixed_ops().items():
            for op in ops:
                op.sample_gates(rng)
            sampled[name] = {i for op in ops for i in op.sampled}
        loss = self._forward_backward(xa, ya)
        loss, grads = self.regularized(loss, self.arch_grads())
        before = {n: a.d.copy() for n, a in self.alphas.items()}
        self.update_arch(grads)
        for name, alpha in self.alphas.items():
            idx = sorted(sampled[name])
            new = alpha.d.astype(np.float64)
            shift = _logsumexp(new[idx]) - _logsumexp(before[name][idx].astype(np.float64))
            new[idx] -= shift
            alpha.d = new
        return self.arch_stats(loss)

    def _forward_backward(self, xa: np.ndarray, ya: np.ndarray) -> float:
        statistics = self.save_statistics()
        loss, _ = self.graph(self._xa, self._ya, frozen=True)
        self._xa.d, self._ya.d = xa, ya
        self.zero_arch_grads()
        loss.forward(clear_no_need_grad=True)
        loss.backward(clear_buffer=True)
        self.restore_statistics(statistics)
        return float(loss.d)

    def _reinforce(self, xa: np.ndarray, ya: np.ndarray, rng: np.random.Generator
                   ) -> dict[str, float]:
        counts = self._sample_path(rng)
        statistics = self.save_statistics()
        _, logits = self.graph(self._xa, self._ya)
        self._xa.d, self._ya.d = xa, ya
        logits.forward(clear_buffer=True)
        self.restore_statistics(statistics)
        accuracy = float(np.mean(np.argmax(logits.d, axis=1) == ya[:, 0]))
        reward = accuracy
        if self.regularizer is not None and self.regularizer.in_reward:
            reward = self.regularizer.reward(accuracy, self.regularizer.path_cost(counts))
        baseline = reward if self.baseline is None else self.baseline
        advantage = reward - baseline
        self.baseline = BASELINE_DECAY * baseline + (1 - BASELINE_DECAY) * reward
        probs = self.supernet.probabilities()
        # Minimise -(R - b) log p(path): d/dalpha = -(R - b) sum_ops (onehot(k) - p).
        grads = {n: (-advantage * (counts[n] - counts[n].sum() * probs[n])).astype(np.float32)
                 for n in self.alphas}
        surrogate = -advantage * sum(float(counts[n] @ np.log(probs[n])) for n in self.alphas)
        if self.regularizer is not None and not self.regularizer.in_reward:
            surrogate, grads = self.regularized(surrogate, grads)
        self.update_arch(grads)
        return {**self.arch_stats(surrogate), "reward": reward}

    def extra_state(self) -> dict[str, float]:
        return {} if self.baseline is None else {"baseline": self.baseline}

    def set_extra_state(self, state: dict[str, float]) -> None:
        self.baseline = state.get("baseline")


def _logsumexp(v: np.ndarray) -> float:
    m = float(v.max())
    return m + float(np.log(np.sum(np.exp(v - m))))



