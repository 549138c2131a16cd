"""One first-order DARTS search step of nnabla-nas 0.15, timed; run with .venv-nnas/bin/python.

The reference side of bench/bench_learners.py's headline. It builds
nnabla-nas's DARTS ``SearchNet`` as its CIFAR-10 search example configures it
(examples/classification/darts/cifar10_search.json: 16 initial channels,
``shared`` alphas, mode ``full``, 10 classes) and times the step of
``DartsSearcher.run``: ``train_on_batch`` (forward and backward of the train
loss, the error metric, a Momentum update of the weights with gradient
clipping and weight decay) then ``valid_on_batch`` (the same on the valid
graph, an Adam update of the alphas). As ``Runner.update_graph`` does, the
train graph is built in training mode and the valid graph in inference mode,
each once, before the first step. Prints one JSON object on stdout.

    .venv-nnas/bin/python bench/nnas_darts_step.py [--batch 32] [--steps 3] [--cells 8]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NNABLA_CONFIG_FILE_PATH",
                      str(Path(__file__).resolve().parent.parent / "hwnas/cli/nnabla.conf"))

import importlib.util  # noqa: E402
import types  # noqa: E402

import nnabla as nn  # noqa: E402
import nnabla_nas  # noqa: E402
import numpy as np  # noqa: E402


def _bypass_contrib_init() -> None:
    """Registers ``nnabla_nas.contrib`` without running its ``__init__``.

    The nnabla-nas 0.15.0 wheel on PyPI lacks ``contrib/classification/ofa/networks``,
    which ``contrib/__init__`` imports, so ``import nnabla_nas.contrib`` fails;
    the DARTS modules themselves are all there.
    """
    spec = importlib.util.find_spec("nnabla_nas")
    package = types.ModuleType("nnabla_nas.contrib")
    package.__path__ = [str(Path(spec.origin).parent / "contrib")]
    sys.modules.setdefault("nnabla_nas.contrib", package)


_bypass_contrib_init()
from nnabla_nas.contrib.classification.darts import SearchNet  # noqa: E402
from nnabla_nas.optimizer import Optimizer  # noqa: E402

#: The two optimisers of nnabla-nas's DARTS CIFAR-10 search example (the cosine
#: schedule of 'train' only changes the learning rate's value).
TRAIN_OPTIMIZER = dict(name="Momentum", lr=0.025, grad_clip=5.0, weight_decay=3e-4)
VALID_OPTIMIZER = dict(name="Adam", alpha=3e-4, beta1=0.5, beta2=0.999, grad_clip=5.0,
                       weight_decay=1e-3)


class Graph:
    """Input placeholders, loss and error metric of one of the searcher's two graphs."""

    def __init__(self, model: SearchNet, batch: int, input_shape: tuple[int, int, int],
                 training: bool) -> None:
        self.x = nn.Variable((batch,) + input_shape)
        self.y = nn.Variable((batch, 1))
        model.apply(None, training=training)
        outputs = [model(self.x).apply(persistent=True)]
        self.loss = model.loss(outputs, [self.y]).apply(persistent=True)
        unlinked = [v.get_unlinked_variable().apply(need_grad=False) for v in outputs]
        self.metrics = model.metrics(unlinked, [self.y])
        for m in self.metrics.values():
            m.apply(persistent=True)

    def step(self, optimizer: Optimizer, x: np.ndarray, y: np.ndarray) -> float:
        """What DartsSearcher.train_on_batch / valid_on_batch do with one mini-batch."""
        optimizer.zero_grad()
        self.x.d, self.y.d = x, y
        self.loss.forward(clear_no_need_grad=True)
        for m in self.metrics.values():
            m.forward(clear_buffer=True)
        self.loss.backward(clear_buffer=True)
        loss = float(self.loss.d)
        optimizer.update()
        return loss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the warm-up")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--channels", type=int, default=16, help="initial channels")
    parser.add_argument("--size", type=int, default=32, help="input height and width")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        parser.error(f"need --batch, --steps >= 1 and --warmup >= 0, got {vars(args)}")
    rng = np.random.default_rng(args.seed)
    nn.seed(args.seed)
    input_shape = (3, args.size, args.size)

    began = time.perf_counter()
    model = SearchNet(in_channels=3, init_channels=args.channels, num_cells=args.cells,
                      num_classes=10, shared=True, mode="full")
    train, valid = (Graph(model, args.batch, input_shape, training)
                    for training in (True, False))
    optimizers = {"train": Optimizer(**TRAIN_OPTIMIZER), "valid": Optimizer(**VALID_OPTIMIZER)}
    optimizers["train"].set_parameters(model.get_net_parameters(grad_only=True))
    optimizers["valid"].set_parameters(model.get_arch_parameters(grad_only=True))
    build_s = time.perf_counter() - began

    def batch() -> tuple[np.ndarray, np.ndarray]:
        return (rng.standard_normal((args.batch,) + input_shape).astype(np.float32),
                rng.integers(0, 10, (args.batch, 1)).astype(np.int32))

    steps = []
    for i in range(args.warmup + args.steps):
        (x, y), (xa, ya) = batch(), batch()
        wall, cpu = time.perf_counter(), time.process_time()
        train.step(optimizers["train"], x, y)
        mid = time.perf_counter()
        valid.step(optimizers["valid"], xa, ya)
        end = time.perf_counter()
        steps.append({"warmup": i < args.warmup, "seconds": end - wall,
                      "train_seconds": mid - wall, "valid_seconds": end - mid,
                      "cpu_seconds": time.process_time() - cpu})
    timed = [s["seconds"] for s in steps if not s["warmup"]]
    print(json.dumps({
        "library": "nnabla-nas", "version": getattr(nnabla_nas, "__version__", None),
        "nnabla": nn.__version__, "network": "nnabla_nas.contrib.classification.darts.SearchNet",
        "settings": {"num_cells": args.cells, "init_channels": args.channels, "num_classes": 10,
                     "shared": True, "mode": "full"},
        "input_shape": list(input_shape), "batch": args.batch,
        "n_net_parameters": len(model.get_net_parameters(grad_only=True)),
        "n_arch_parameters": len(model.get_arch_parameters(grad_only=True)),
        "optimizers": {"train": TRAIN_OPTIMIZER, "valid": VALID_OPTIMIZER},
        "build_seconds": build_s, "steps": steps,
        "seconds_per_step": float(np.median(timed)),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
