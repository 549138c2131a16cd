"""Crash and resume: a search killed with SIGKILL 20 times at random moments.

Issue 6's target: after every kill the same command resumes; the search ends
with exactly the requested number of distinct evaluated subnets, none lost,
none evaluated twice, no trial left running, and (for a strategy that is
deterministic given its seed, DEAP NSGA-II here) the same front as an
uninterrupted run.

    .venv/bin/python bench/bench_resume.py [--kills 20] [--trials 70]

Uses the digits experiment trained for 1 epoch (evaluation does not depend on
how well it is trained); every other kill lands 1 to 8 s after the start
(often during start-up or the first batch), the others 0 to 6 s after the
search has evaluated another subnet (during or between batches). Writes bench/results/resume.json.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NNABLA_CONFIG_FILE_PATH",
                      str(Path(__file__).resolve().parent.parent / "hwnas/cli/nnabla.conf"))

from _common import code_version, trained_digits  # noqa: E402
from hwnas import run as steps  # noqa: E402
from hwnas.io import atomic_write_json  # noqa: E402
from hwnas.pareto import ParetoFront  # noqa: E402
from hwnas.studies import evaluations, open_study  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
HWNAS = Path(sys.executable).parent / "hwnas"
STRATEGY = "deap-nsga2"


def command(run: Path) -> list[str]:
    return [str(HWNAS), "search", str(run), "--strategy", STRATEGY, "--quiet"]


def summary(run: Path) -> dict:
    cfg = steps.RunDir.open(run).config
    if not (run / "study.journal").exists():
        return {"fresh": [], "running": 0, "failed": 0, "front": []}
    study = open_study(run, cfg.search.objectives, create=False)
    trials = study.get_trials(deepcopy=False)
    fresh = [t.user_attrs["key"] for t in trials
             if t.state == TrialState.COMPLETE and not t.user_attrs["cached"]]
    front = ParetoFront(evaluations(study), cfg.search.objectives, cfg.budgets)
    return {"fresh": fresh, "running": sum(t.state == TrialState.RUNNING for t in trials),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
            "front": sorted(e.arch.key for e in front)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--trials", type=int, default=70)
    parser.add_argument("--seed", type=int, default=0, help="of the kill times")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        trained_digits(base, args.trials)
        straight, killed = Path(tmp) / "straight", Path(tmp) / "killed"
        shutil.copytree(base, straight)
        shutil.copytree(base, killed)
        subprocess.run(command(straight), check=True)
        kills, finished_early = [], 0
        while len(kills) < args.kills:
            before = len(set(summary(killed)["fresh"]))
            proc = subprocess.Popen(command(killed), start_new_session=True,
                                    stderr=subprocess.DEVNULL)
            began_at = time.perf_counter()
            if len(kills) % 2:  # at any moment, start-up included
                time.sleep(rng.uniform(1.0, 8.0))
            else:  # once it made progress, somewhere within the next batch
                while proc.poll() is None and len(set(summary(killed)["fresh"])) <= before:
                    time.sleep(0.2)
                time.sleep(rng.uniform(0.0, 6.0))
            delay = time.perf_counter() - began_at
            if proc.poll() is not None:
                finished_early += 1
                break
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills.append({"after_s": round(delay, 2), "evaluated": len(set(summary(killed)["fresh"]))})
            print(f"kill {len(kills)} after {delay:.1f} s: "
                  f"{kills[-1]['evaluated']} subnets evaluated", flush=True)
        done = subprocess.run(command(killed))
        a, b = summary(killed), summary(straight)
    result = {
        "kills": len(kills), "finished_before_all_kills": bool(finished_early),
        "final_status": done.returncode, "distinct": len(set(a["fresh"])),
        "evaluated_twice": len(a["fresh"]) - len(set(a["fresh"])),
        "running_left": a["running"], "failed_trials": a["failed"],
        "same_subnets_as_uninterrupted": set(a["fresh"]) == set(b["fresh"]),
        "same_front_as_uninterrupted": a["front"] == b["front"],
    }
    ok = (result["kills"] == args.kills and done.returncode == 0
          and result["distinct"] == args.trials and result["evaluated_twice"] == 0
          and result["running_left"] == 0 and result["same_front_as_uninterrupted"])
    print({k: v for k, v in result.items()})
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "resume.json", {
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "code": code_version(),
        "strategy": STRATEGY, "trials": args.trials, "seconds": time.perf_counter() - began,
        "result": result, "ok": ok, "kill_log": kills})
    if not ok:
        print("missed a target")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
