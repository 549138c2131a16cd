"""DARTS: the softmax-weighted supernet, first order or with the unrolled second-order step."""
from __future__ import annotations

import numpy as np

from hwnas.supernet.learners._base import BaseLearner
from hwnas.supernet.learners._registry import register_learner


@register_learner("darts")
class DartsLearner(BaseLearner):
    """Differentiable architecture search (Liu et al., 2019).

    Weights train on the weighted sum of every candidate; the architecture
    step descends the validation loss of the architecture split. With
    ``order: 2`` its gradient is taken through one virtual SGD step of the
    weights, ``w' = w - lr * (dL_train/dw + weight_decay * w)``:
    ``dL_val(w', alpha)/dalpha - lr * H v``, where the Hessian-vector product
    ``H v = d^2 L_train / dalpha dw . dL_val/dw'`` is the central finite
    difference ``(dL_train(w+)/dalpha - dL_train(w-)/dalpha) / (2 eps)`` at
    ``w +- eps dL_val/dw'`` with ``eps = 0.01 / |dL_val/dw'|``.
    """

    learns_arch = True
    weight_graph = "darts"
    # Weights trained on the weighted sum score single paths far below what they reach
    # alone: on digits-hard 0.10-0.18 for subnets that train alone to 0.59-0.77, and
    # 0.48-0.64 after twice the search's epochs on single paths. Kendall tau against 6
    # stand-alone epochs 0.29 -> 0.41 with it, against the full recipe 0.32 -> 0.40
    # (bench/bench_ranking.py; README, "Does the supernet rank?").
    finetune_factor = 2
    weights_train_on = "the softmax(α)-weighted sum of every candidate"

    def before_batch(self, rng: np.random.Generator) -> None:
        self.supernet.set_mode("darts")

    def arch_step(self, xa: np.ndarray, ya: np.ndarray, x: np.ndarray, y: np.ndarray,
                  rng: np.random.Generator, lr: float) -> dict[str, float]:
        loss, grads = self.arch_gradient(xa, ya, x, y, lr)
        loss, grads = self.regularized(loss, grads)
        self.update_arch(grads)
        return self.arch_stats(loss)

    def arch_gradient(self, xa: np.ndarray, ya: np.ndarray, x: np.ndarray, y: np.ndarray,
                      lr: float) -> tuple[float, dict[str, np.ndarray]]:
        """The validation loss on ``(xa, ya)`` and its gradient in the architecture parameters.

        Leaves weights and BN statistics as they were.
        """
        self.supernet.set_mode("darts")
        if self.config.order == 1:
            saved = self.save_statistics()
            loss = self._val_loss(xa, ya)
            self.restore_statistics(saved)
            return loss, self.arch_grads()
        return self._unrolled(xa, ya, x, y, lr)

    def _val_loss(self, xa: np.ndarray, ya: np.ndarray) -> float:
        # First order needs the alphas' gradient only; second order also dL_val/dw'.
        frozen = self.config.order == 1
        loss, _ = self.graph(self._xa, self._ya, f"darts-val{'-frozen' * frozen}", frozen)
        self._xa.d, self._ya.d = xa, ya
        self._zero_all()
        loss.forward(clear_no_need_grad=True)
        loss.backward(clear_buffer=True)
        return float(loss.d)

    def _train_grads(self, x: np.ndarray, y: np.ndarray, frozen: bool = False) -> None:
        loss, _ = (self.graph(self._x, self._y, "darts-frozen", frozen=True) if frozen
                   else self.graph(self._x, self._y, self.weight_graph))
        self._x.d, self._y.d = x, y
        self._zero_all()
        loss.forward(clear_no_need_grad=True)
        loss.backward(clear_buffer=True)

    def _unrolled(self, xa: np.ndarray, ya: np.ndarray, x: np.ndarray, y: np.ndarray,
                  lr: float) -> tuple[float, dict[str, np.ndarray]]:
        weights = self.supernet.get_parameters(grad_only=True)
        saved = {k: v.d.copy() for k, v in self.supernet.net_parameters().items()}
        wd = self.config.weight_decay
        self._train_grads(x, y)
        for key, w in weights.items():
            w.d = saved[key] - lr * (w.g + wd * saved[key])
        loss = self._val_loss(xa, ya)
        dalpha = self.arch_grads()
        v = {k: w.g.copy() for k, w in weights.items()}
        norm = float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in v.values())))
        eps = 0.01 / max(norm, 1e-12)
        sides = []
        for sign in (1.0, -1.0):
            for key, w in weights.items():
                w.d = saved[key] + sign * eps * v[key]
            self._train_grads(x, y, frozen=True)
            sides.append(self.arch_grads())
        for key, p in self.supernet.net_parameters().items():
            p.d = saved[key]
        return loss, {n: dalpha[n] - lr * (sides[0][n] - sides[1][n]) / (2 * eps)
                      for n in dalpha}

    def _zero_all(self) -> None:
        for p in self.supernet.get_parameters(grad_only=True).values():
            p.grad.zero()
        self.zero_arch_grads()
