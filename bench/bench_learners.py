"""Search-step throughput: every learner on the chain space and on the DARTS cell space.

One search step is what ``BaseLearner.fit`` does per batch once searching:
``arch_step(xa, ya, x, y, rng, lr)`` then ``train_step(x, y, rng, lr)`` for
the gradient learners (DARTS first and second order, ProxylessNAS with binary
gates or REINFORCE), ``train_step`` alone for uniform sampling. Each number is
the median wall time of the timed steps after one untimed warm-up step (the
first DARTS step builds the cached graphs; second-order DARTS, five forward and
backward passes a step, gets one timed step); images/s counts the weight batch
only (batch_size / seconds), not the architecture batch.

Configurations, on synthetic float32 images and int32 labels:

1. the chain space ``mobilenet`` with its default stages, kernels and
   expansions on 3x32x32 input, batch 32;
2. the DARTS space with cells 8, channels 16, nodes 4 and the eight DARTS
   operations on 3x32x32 input, batch 32 (``--quick``: cells 5, channels 8,
   and batch 8 everywhere).

The headline is the first-order DARTS step at configuration 2: ours must take
at most a third of nnabla-nas 0.15's. When ``.venv-nnas`` holds nnabla-nas,
bench/nnas_darts_step.py times its step in a subprocess between two rounds of
ours (ours, theirs, ours) and the verdict is the ratio. Without it, the
verdict falls back on the issue's figure (nnabla-nas "about 29 s on this
machine", so 9.7 s); measured here nnabla-nas takes 199-237 s, seven to eight
times that. A per-function-type profile of the same step at batch 8 shows where the
time goes.

    .venv/bin/python bench/bench_learners.py [--quick] [--steps 3] [--only darts]

Writes bench/results/learners.json.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("NNABLA_CONFIG_FILE_PATH",
                      str(Path(__file__).resolve().parent.parent / "hwnas/cli/nnabla.conf"))

import nnabla as nn  # noqa: E402
import numpy as np  # noqa: E402

from _common import code_version  # noqa: E402
from hwnas.io import atomic_write_json  # noqa: E402
from hwnas.config import TrainConfig  # noqa: E402
from hwnas.data import Dataset, Split  # noqa: E402
from hwnas.hwcost import describe_device  # noqa: E402
from hwnas.supernet import create_space  # noqa: E402
from hwnas.supernet._candidates import DARTS_OPS  # noqa: E402
from hwnas.supernet.learners import LEARNERS, BaseLearner  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
NNAS_PYTHON = ROOT / ".venv-nnas" / "bin" / "python"
NNAS_SCRIPT = ROOT / "bench" / "nnas_darts_step.py"
INPUT_SHAPE = (3, 32, 32)
SPACES = {
    "mobilenet": dict(input_shape=INPUT_SHAPE, n_classes=10, stages=[(16, 2, 1), (24, 2, 2),
                                                                     (32, 2, 2)],
                      kernels=[3, 5, 7], expansions=[3, 6]),
    "darts": dict(input_shape=INPUT_SHAPE, n_classes=10, cells=8, channels=16, nodes=4,
                  operations=list(DARTS_OPS)),
}
QUICK_DARTS = dict(cells=5, channels=8)
#: variant -> (learner, TrainConfig overrides).
VARIANTS = {
    "uniform": ("uniform", {}),
    "darts1": ("darts", {"order": 1}),
    "darts2": ("darts", {"order": 2}),
    "gate": ("proxyless", {"estimator": "binary_gate"}),
    "reinforce": ("proxyless", {"estimator": "reinforce"}),
}
HEADLINE = ("darts", "darts1")
#: The issue's numbers for the headline step on this machine (seconds).
NNAS_ISSUE_SECONDS = 29.0
#: Ours must take at most this fraction of nnabla-nas's step.
TARGET_RATIO = 1 / 3
LR = 0.025


def synthetic_data(input_shape: tuple[int, ...], n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    split = Split(rng.standard_normal((n,) + tuple(input_shape)).astype(np.float32),
                  rng.integers(0, 10, (n, 1)).astype(np.int32))
    c = input_shape[0]
    return Dataset(name="synthetic", train=split, val=split, test=split, n_classes=10,
                   mean=(0.0,) * c, std=(1.0,) * c)


def make_learner(space_name: str, settings: dict, variant: str, batch: int,
                 seed: int) -> BaseLearner:
    space = create_space(space_name, **settings)
    nn.seed(seed)
    learner, overrides = VARIANTS[variant]
    config = TrainConfig(learner=learner, epochs=1, batch_size=batch, lr=LR, **overrides)
    # Four batches per split: the steps cycle through distinct batches.
    data = synthetic_data(space.input_shape, 8 * batch, seed)
    return LEARNERS[learner](space=space, supernet=space.supernet(), data=data, config=config,
                             seed=seed, progress=False)


def run_steps(learner: BaseLearner, n: int, rng: np.random.Generator, start: int = 0
              ) -> list[dict]:
    """``n`` search steps; returns each one's wall (and process CPU) seconds, split in two."""
    b = learner.config.batch_size
    weight, arch = learner.weight_split, learner.arch_split or learner.weight_split
    out = []
    for i in range(start, start + n):
        j = (i % 4) * b
        x, y = weight.x[j:j + b], weight.y[j:j + b]
        wall, cpu = time.perf_counter(), time.process_time()
        if learner.learns_arch:
            learner.arch_step(arch.x[j:j + b], arch.y[j:j + b], x, y, rng, LR)
        mid = time.perf_counter()
        learner.train_step(x, y, rng, LR)
        end = time.perf_counter()
        out.append({"seconds": end - wall, "arch_seconds": mid - wall,
                    "weight_seconds": end - mid, "cpu_seconds": time.process_time() - cpu})
    return out


def summarize(steps: list[dict], batch: int) -> dict:
    seconds = float(np.median([s["seconds"] for s in steps]))
    return {"seconds_per_step": seconds, "images_per_s": batch / seconds,
            "arch_seconds": float(np.median([s["arch_seconds"] for s in steps])),
            "weight_seconds": float(np.median([s["weight_seconds"] for s in steps])),
            "timed_steps": len(steps)}


def run_nnas(batch: int, cells: int, channels: int, steps: int) -> dict:
    """nnabla-nas's first-order DARTS step, timed in its own venv; or why it was not."""
    if not NNAS_PYTHON.exists():
        return {"skipped": f"{NNAS_PYTHON.relative_to(ROOT)} not found (see {NNAS_SCRIPT.name})"}
    command = [str(NNAS_PYTHON), str(NNAS_SCRIPT), "--batch", str(batch), "--cells", str(cells),
               "--channels", str(channels), "--steps", str(steps), "--warmup", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:], "command": " ".join(command[1:])}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["command"] = " ".join([str(NNAS_PYTHON.relative_to(ROOT)),
                                  str(NNAS_SCRIPT.relative_to(ROOT)), *command[2:]])
    return result


def bench_config(space_name: str, settings: dict, variant: str, batch: int, steps: int,
                 seed: int, nnas_steps: int = 0) -> dict:
    began = time.perf_counter()
    learner = make_learner(space_name, settings, variant, batch, seed)
    build = time.perf_counter() - began
    rng = np.random.default_rng(seed)
    warmup = run_steps(learner, 1, rng)
    timed = run_steps(learner, steps, rng, start=1)
    result = {"space": space_name, "settings": settings, "variant": variant,
              "learner": type(learner).__name__,
              "config": {k: getattr(learner.config, k) for k in ("order", "estimator",
                                                                 "arch_fraction")},
              "input_shape": list(INPUT_SHAPE), "batch": batch, "build_seconds": build,
              "warmup_step": warmup[0], "steps": timed}
    if nnas_steps:
        # Ours, theirs, ours: load that comes and goes on a shared machine hits both.
        result["nnabla_nas"] = run_nnas(batch, settings["cells"], settings["channels"],
                                        nnas_steps)
        more = run_steps(learner, steps, rng, start=1 + steps)
        result["rounds"] = [summarize(timed, batch), summarize(more, batch)]
        result["steps"] = timed + more
    result.update(summarize(result["steps"], batch))
    del learner
    gc.collect()
    return result


def profile_darts_step(settings: dict, batch: int, seed: int) -> dict:
    """Forward and backward seconds per nnabla function type of one first-order DARTS step.

    A step runs the DARTS graph forward and backward twice (the architecture
    batch, then the weight batch); both passes are hooked after one untimed
    pass. Solver updates and zeroing are outside the hooks.
    """
    learner = make_learner("darts", settings, "darts1", batch, seed)
    net = learner.supernet
    net.set_mode("darts")
    x, y = nn.Variable((batch,) + INPUT_SHAPE), nn.Variable((batch, 1))
    loss, _ = learner.graph(x, y)
    times = {"forward": defaultdict(float), "backward": defaultdict(float)}
    calls: dict[str, int] = defaultdict(int)
    clock: list[float] = []

    def hooks(phase: str):
        def pre(f) -> None:
            clock.append(time.perf_counter())

        def post(f) -> None:
            times[phase][f.info.type_name] += time.perf_counter() - clock.pop()
            if phase == "forward":
                calls[f.info.type_name] += 1
        return {"function_pre_hook": pre, "function_post_hook": post}

    params = list(net.get_parameters(grad_only=True).values()) + list(learner.alphas.values())
    split = learner.weight_split
    wall = {}
    for i, hooked in enumerate((False, False, True, True)):  # one untimed, one plain, two hooked
        x.d, y.d = split.x[:batch], split.y[:batch]
        for p in params:
            p.grad.zero()
        began = time.perf_counter()
        loss.forward(clear_no_need_grad=True, **(hooks("forward") if hooked else {}))
        loss.backward(clear_buffer=True, **(hooks("backward") if hooked else {}))
        if i >= 1:
            wall.setdefault("hooked" if hooked else "plain", []).append(
                time.perf_counter() - began)
    total = {k: times["forward"][k] + times["backward"][k] for k in times["forward"]}
    order = sorted(total, key=total.get, reverse=True)
    hooked_s = sum(total.values())
    del learner, loss
    gc.collect()
    return {
        "settings": settings, "batch": batch, "input_shape": list(INPUT_SHAPE),
        "passes": 2, "functions_per_pass": sum(calls.values()) // 2,
        "pass_wall_seconds_plain": wall["plain"][0],
        "pass_wall_seconds_hooked": float(np.mean(wall["hooked"])),
        "seconds_in_functions": hooked_s,
        "top": [{"function": k, "forward_s": times["forward"][k],
                 "backward_s": times["backward"].get(k, 0.0), "total_s": total[k],
                 "share": total[k] / hooked_s, "calls_per_pass": calls[k] // 2}
                for k in order[:15]],
    }


def verdict(headline: dict, quick: bool) -> dict:
    """Target: at most a third of nnabla-nas's step measured in the same run; without that
    measurement, the issue's absolute figure (a third of its 29 s)."""
    ours = headline["seconds_per_step"]
    target = NNAS_ISSUE_SECONDS * TARGET_RATIO
    out = {"ours_seconds": ours, "target_ratio": TARGET_RATIO,
           "issue_nnabla_nas_seconds": NNAS_ISSUE_SECONDS, "issue_target_seconds": target,
           "at_headline_shapes": not quick}
    theirs = headline.get("nnabla_nas", {}).get("seconds_per_step")
    if quick:
        out["meets_target"] = None
        out["text"] = "quick shapes: no verdict"
    elif theirs is not None:
        ratio = ours / theirs
        out.update(nnabla_nas_seconds=theirs, ratio_ours_nnabla_nas=ratio,
                   meets_target=ratio <= TARGET_RATIO)
        out["text"] = (f"DARTS first-order step {ours:.2f} s, {ratio:.3f}x nnabla-nas 0.15's "
                       f"{theirs:.2f} s in the same run: "
                       f"{'meets' if ratio <= TARGET_RATIO else 'MISSES'} the target of 1/3")
    else:
        out["meets_target"] = ours <= target
        out["text"] = (f"DARTS first-order step {ours:.2f} s, nnabla-nas not measured: "
                       f"{'meets' if ours <= target else 'MISSES'} the issue's {target:.1f} s "
                       f"(a third of its {NNAS_ISSUE_SECONDS:.0f} s for nnabla-nas)")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="DARTS space with cells 5, channels 8; batch 8 everywhere")
    parser.add_argument("--steps", type=int, default=3,
                        help="timed steps per configuration (second-order DARTS: 1; the "
                             "headline: twice this, around nnabla-nas's)")
    parser.add_argument("--only", choices=sorted(SPACES), action="append")
    parser.add_argument("--variant", choices=list(VARIANTS), action="append",
                        help="measure only these variants (repeatable)")
    parser.add_argument("--no-nnas", action="store_true", help="skip nnabla-nas")
    parser.add_argument("--profile-batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "learners.json", help="result JSON")
    args = parser.parse_args()
    if args.steps < 1 or args.profile_batch < 1:
        parser.error(f"--steps and --profile-batch must be >= 1, got {args.steps}, "
                     f"{args.profile_batch}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    batch = 8 if args.quick else 32
    spaces = {"mobilenet": SPACES["mobilenet"],
              "darts": {**SPACES["darts"], **(QUICK_DARTS if args.quick else {})}}
    load_before = os.getloadavg()
    code = code_version()
    began = time.perf_counter()

    print(f"{'space':9} {'variant':9} {'batch':>5} {'s/step':>8} {'arch s':>7} {'weight s':>8} "
          f"{'img/s':>7} {'steps':>5}", flush=True)
    results = []
    for space_name in args.only or list(SPACES):
        shown = {k: v for k, v in spaces[space_name].items()
                 if k not in ("input_shape", "n_classes")}
        print(f"-- {space_name} {shown}, input {'x'.join(map(str, INPUT_SHAPE))}", flush=True)
        for variant in args.variant or list(VARIANTS):
            steps = 1 if variant == "darts2" else args.steps
            nnas = (args.steps if (space_name, variant) == HEADLINE and not args.no_nnas else 0)
            try:
                r = bench_config(space_name, spaces[space_name], variant, batch, steps,
                                 args.seed, nnas)
            except Exception as exc:  # one failing configuration must not lose the others
                r = {"space": space_name, "variant": variant, "error": repr(exc)}
                print(f"{space_name:9} {variant:9} failed: {exc!r}", flush=True)
            else:
                print(f"{space_name:9} {variant:9} {batch:5d} {r['seconds_per_step']:8.3f} "
                      f"{r['arch_seconds']:7.3f} {r['weight_seconds']:8.3f} "
                      f"{r['images_per_s']:7.1f} {r['timed_steps']:5d}", flush=True)
                theirs = r.get("nnabla_nas", {})
                if "seconds_per_step" in theirs:
                    print(f"{'  nnabla-nas 0.15':19} {batch:5d} {theirs['seconds_per_step']:8.3f} "
                          f"{'':7} {'':8} {batch / theirs['seconds_per_step']:7.1f} "
                          f"{len(theirs['steps']) - 1:5d}", flush=True)
                elif theirs:
                    print(f"  nnabla-nas: {theirs.get('skipped') or 'failed'}", flush=True)
            results.append(r)

    headline = next((r for r in results if (r["space"], r["variant"]) == HEADLINE
                     and "error" not in r), None)
    summary = verdict(headline, args.quick) if headline else {"text": "headline not measured"}
    profile = None
    if headline:
        profile = profile_darts_step(spaces["darts"], args.profile_batch, args.seed)
        print(f"profile, DARTS step at batch {args.profile_batch} "
              f"({profile['functions_per_pass']} functions a pass):")
        for e in profile["top"][:10]:
            print(f"  {e['function']:28} fwd {e['forward_s']:7.3f} s  bwd {e['backward_s']:7.3f} s"
                  f"  {e['share']:6.1%}")
    out = {
        "bench": "learners", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpu": describe_device("cpu"), "cores": os.cpu_count(),
                    "python": platform.python_version(), "nnabla": nn.__version__,
                    "context": str(nn.get_current_context()),
                    "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "protocol": {"step": "arch_step then train_step (uniform: train_step)",
                     "statistic": "median wall seconds of the timed steps after 1 warm-up step",
                     "images_per_s": "batch_size / seconds_per_step: the weight batch only",
                     "timed_steps": args.steps, "darts2_timed_steps": 1,
                     "headline_timed_steps": 2 * args.steps,
                     "lr": LR, "data": "synthetic N(0, 1) float32 images, random int32 labels",
                     "interleaving": "headline: ours, nnabla-nas, ours"},
        "code": code, "quick": args.quick, "seconds": time.perf_counter() - began,
        "results": results, "headline": summary, "profile": profile,
    }
    atomic_write_json(args.out, out)
    print(summary["text"])
    print(f"wrote {args.out}")
    failed = any("error" in r for r in results)
    return 1 if failed or summary.get("meets_target") is False else 0


if __name__ == "__main__":
    sys.exit(main())
