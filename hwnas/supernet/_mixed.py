"""The mixed operation: the candidates of one searchable block or edge, in three modes."""
from __future__ import annotations

from collections.abc import Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from hwnas.supernet._ops import Op
from hwnas.supernet._weighted import weighted_sum

#: How a mixed operation combines its candidates.
#: ``single``: one active candidate (uniform path sampling, evaluation, extraction);
#: ``darts``: the softmax(alpha)-weighted sum of every candidate;
#: ``proxyless``: binary gates over sampled candidates (ProxylessNAS).
MODES = ("single", "darts", "proxyless")


def constant(values: np.ndarray) -> nn.Variable:
    """A float32 leaf variable holding ``values``, with no gradient."""
    return nn.Variable.from_numpy_array(np.asarray(values, dtype=np.float32))


def stop_gradient(x: nn.Variable) -> nn.Variable:
    """``x`` in the forward pass, no gradient in the backward pass."""
    zeros = constant(np.zeros(x.shape))
    return F.clip_grad_by_value(x, zeros, zeros)


class MixedOp(Op):
    """The candidates of one searchable block or edge; ``mode`` says how they combine.

    Args:
        options: candidate name -> module, in the order of the architecture parameters.
        alpha: the architecture parameters (one logit per candidate), shared by
            every mixed operation of the same block or edge type; None where
            there is nothing to learn (a subnet).
        zero: candidates whose output is known to be all zeros; they are not
            computed in the weighted modes.
        shared: weights that some candidates read besides their own (nested weight
            sharing), held here once as the submodule ``shared``; None where there are none.
        sharing: the candidates that read ``shared``.
    """

    def __init__(self, options: dict[str, Op], alpha: nn.Variable | None = None,
                 zero: Sequence[str] = (), shared: Op | None = None,
                 sharing: Sequence[str] = ()) -> None:
        if not options:
            raise ValueError("a mixed operation needs at least one candidate")
        self.options = tuple(options)
        for name, module in options.items():
            setattr(self, name, module)
        if alpha is not None and alpha.shape != (len(options),):
            raise ValueError(f"alpha has shape {alpha.shape}, expected ({len(options)},)")
        self.alpha = alpha
        self.zero = frozenset(zero)
        if shared is not None:
            if "shared" in options:
                raise ValueError("'shared' names the shared weights, not a candidate")
            self.shared = shared
        self.sharing = frozenset(sharing) if shared is not None else frozenset()
        #: The candidate of ``single`` mode; None switches the operation off (output zero).
        self.active: str | None = self.options[0]
        self.mode = "single"
        #: ProxylessNAS gates: the sampled candidate indices and which of them is on.
        self.sampled: tuple[int, ...] = (0,)
        self.chosen = 0

    def used(self) -> list[str]:
        """The candidates the next forward pass computes (their weights get gradients)."""
        if self.mode == "single":
            return [] if self.active is None or self.active in self.zero else [self.active]
        names = self.options if self.mode == "darts" else [self.options[i] for i in self.sampled]
        return [n for n in names if n not in self.zero]

    def probabilities(self) -> np.ndarray:
        """softmax(alpha) as numbers."""
        if self.alpha is None:
            raise ValueError("this mixed operation has no architecture parameters")
        a = self.alpha.d.astype(np.float64)
        e = np.exp(a - a.max())
        return e / e.sum()

    def sample_gates(self, rng: np.random.Generator, paths: int = 2) -> None:
        """Draws ``paths`` distinct candidates by softmax(alpha), and the one whose gate opens.

        ProxylessNAS's memory-saving estimator: only the drawn candidates are
        computed, and their probabilities are renormalised among themselves.
        """
        p = self.probabilities()
        paths = min(paths, len(p))
        sampled = rng.choice(len(p), size=paths, replace=False, p=p)
        self.sampled = tuple(int(i) for i in sampled)
        q = p[list(self.sampled)] / p[list(self.sampled)].sum()
        self.chosen = int(rng.choice(paths, p=q))

    def call(self, x: nn.Variable) -> nn.Variable | None:
        """The combined output; None when it is known to be all zeros (nothing computed)."""
        if self.mode == "single":
            if self.active is None or self.active in self.zero:
                return None
            return self.submodules[self.active](x)
        if self.alpha is None:
            raise ValueError(f"mode {self.mode!r} needs architecture parameters")
        if self.mode == "darts":
            outputs = [None if name in self.zero else self.submodules[name](x)
                       for name in self.options]
            if all(o is None for o in outputs):
                return None
            return weighted_sum(outputs, F.softmax(self.alpha, axis=0))
        if self.mode == "proxyless":
            return self._gated(x, weighted_sum)
        raise ValueError(f"unknown mode {self.mode!r}; known: {', '.join(MODES)}")

    def _gated(self, x: nn.Variable, weighted_sum) -> nn.Variable:
        # Binary gates g with the straight-through gradient of ProxylessNAS:
        # forward g = one-hot(chosen); backward dL/dalpha_i = sum_j dL/dg_j p_j (d_ij - p_i),
        # with p renormalised over the sampled candidates.
        k = len(self.options)
        select = np.zeros((len(self.sampled), k), np.float32)
        select[np.arange(len(self.sampled)), list(self.sampled)] = 1.0
        logits = F.sum(F.mul2(constant(select), F.reshape(self.alpha, (1, k))), axis=1)
        p = F.softmax(logits, axis=0)
        onehot = np.zeros(len(self.sampled), np.float32)
        onehot[self.chosen] = 1.0
        gates = F.add2(p, F.sub2(constant(onehot), stop_gradient(p)))
        outputs = [None if self.options[i] in self.zero else self.submodules[self.options[i]](x)
                   for i in self.sampled]
        if all(o is None for o in outputs):
            return None
        return weighted_sum(outputs, gates)
