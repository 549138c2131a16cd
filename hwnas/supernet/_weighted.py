"""The K-way weighted sum of candidate outputs, sum_k w_k * o_k, of a DARTS mixed operation.

Two ways to build it from nnabla functions:

- ``weighted_sum_broadcast``: one broadcasting ``F.mul2`` per candidate
  (``o_k * w_k``, ``w_k`` reshaped to ``(1, 1, 1, 1)``), summed by ``F.add_n``;
- ``weighted_sum_stacked``: the candidates stacked into a ``(K, M)`` matrix and
  one ``F.affine`` with the weights as a ``(1, K)`` row.

``weighted_sum`` is the stacked form. On nnabla 1.39's CPU context a forward
plus backward pass (to the weights and to every output) of the stacked form
takes 0.049 of the broadcasting form's time, about 20 times faster (geometric
mean of the ratios over K in (5, 8, 13) and outputs of (32, 16, 32, 32),
(32, 64, 8, 8) and (64, 32, 16, 16); 0.041 to 0.060 per shape). The cost of
the broadcasting form is nnabla's CPU ``mul2`` itself, slow per element in
both passes whether it broadcasts or not; the stack is a memory copy and the
product one BLAS call. Measured by::

    .venv/bin/python bench/bench_mixed_sum.py

(results in ``bench/results/mixed_sum.json``).
"""
from __future__ import annotations

from collections.abc import Sequence

import nnabla as nn
import nnabla.functions as F

__all__ = ["weighted_sum", "weighted_sum_broadcast", "weighted_sum_stacked"]


def _present(outputs: Sequence[nn.Variable | None], weights: nn.Variable) -> list[int]:
    """Indices of the non-None outputs, after checking the arguments agree."""
    if weights.shape != (len(outputs),):
        raise ValueError(f"weights has shape {weights.shape}, expected ({len(outputs)},) "
                         f"for {len(outputs)} outputs")
    present = [k for k, o in enumerate(outputs) if o is not None]
    if not present:
        raise ValueError("every output is None: the sum is zeros of an unknown shape")
    shapes = {outputs[k].shape for k in present}
    if len(shapes) > 1:
        raise ValueError(f"outputs differ in shape: {sorted(shapes)}")
    return present


def _weight(weights: nn.Variable, k: int) -> nn.Variable:
    return F.slice(weights, (k,), (k + 1,))


def weighted_sum_broadcast(outputs: Sequence[nn.Variable | None],
                           weights: nn.Variable) -> nn.Variable:
    """``sum_k weights[k] * outputs[k]`` as K broadcasting multiplications and one ``add_n``.

    Args:
        outputs: the K candidate outputs, all of one shape; None stands for a
            candidate whose output is zeros, which is skipped.
        weights: shape ``(K,)``; ``weights[k]`` scales ``outputs[k]``.

    Returns:
        The weighted sum, of the outputs' shape.
    """
    present = _present(outputs, weights)
    ndim = outputs[present[0]].ndim
    terms = [F.mul2(outputs[k], F.reshape(_weight(weights, k), (1,) * ndim)) for k in present]
    return terms[0] if len(terms) == 1 else F.add_n(*terms)


def weighted_sum_stacked(outputs: Sequence[nn.Variable | None],
                         weights: nn.Variable) -> nn.Variable:
    """``sum_k weights[k] * outputs[k]`` as one ``(1, K) x (K, M)`` matrix product.

    Args:
        outputs: the K candidate outputs, all of one shape; None stands for a
            candidate whose output is zeros, which is left out of the stack
            (and its weight out of the row, so it gets no gradient).
        weights: shape ``(K,)``; ``weights[k]`` scales ``outputs[k]``.

    Returns:
        The weighted sum, of the outputs' shape.
    """
    present = _present(outputs, weights)
    shape = outputs[present[0]].shape
    if len(present) == len(outputs):
        row = weights
    elif len(present) == 1:
        row = _weight(weights, present[0])
    else:
        row = F.concatenate(*[_weight(weights, k) for k in present], axis=0)
    stacked = F.reshape(F.stack(*[outputs[k] for k in present], axis=0), (len(present), -1))
    return F.reshape(F.affine(F.reshape(row, (1, len(present))), stacked), shape)


def weighted_sum(outputs: Sequence[nn.Variable | None], weights: nn.Variable) -> nn.Variable:
    """``sum_k weights[k] * outputs[k]`` by the faster method on nnabla's CPU context.

    That is ``weighted_sum_stacked`` (see the module docstring for the measurement).

    Args:
        outputs: the K candidate outputs, all of one shape; None stands for a
            candidate whose output is zeros, which is skipped.
        weights: shape ``(K,)``, e.g. ``F.softmax(alpha, axis=0)``.

    Returns:
        The weighted sum, of the outputs' shape.

    Raises:
        ValueError: ``weights`` is not of shape ``(len(outputs),)``, every
            output is None, or the outputs differ in shape.
    """
    return weighted_sum_stacked(outputs, weights)
