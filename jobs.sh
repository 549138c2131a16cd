#!/usr/bin/env bash
# The experiments: one 'hwnas run' per experiments/*.yaml, each in runs/NAME.
#
#   ./jobs.sh                    every experiment below, one after another
#   ./jobs.sh digits_darts ...   only these
#   ./jobs.sh strategies         every search strategy on one trained digits supernet,
#                                then 'hwnas compare' of them (runs/compare-strategies)
#   ./jobs.sh --list             the experiment names
#
# Each run resumes where it stopped (rerun the same line after an interruption).
# Approximate times on a 2-core CPU: digits 5 min, digits_darts 10 min,
# digits_darts2 15 min, digits_proxyless 8 min, digits_reinforce 6 min, digits_cells 20 min,
# strategies 25 min.
set -euo pipefail
cd "$(dirname "$0")"
make --no-print-directory install >/dev/null
HWNAS=.venv/bin/hwnas

EXPERIMENTS=(
  digits            # uniform path sampling + Optuna TPE (the default, 'make demo')
  digits_darts      # DARTS first order, params regularizer
  digits_darts2     # DARTS second order (unrolled step)
  digits_proxyless  # ProxylessNAS binary gates, latency regularizer (MnasNet form)
  digits_reinforce  # ProxylessNAS REINFORCE, MACs regularizer
  digits_cells      # DARTS on the DARTS cell space
)

STRATEGIES=(tpe-ls tpe nsga2 nsga3 optuna-random qmc deap-nsga2 deap-nsga3 deap-spea2 random)

run() {
  local name=$1
  [[ -f experiments/$name.yaml ]] || { echo "jobs.sh: no experiments/$name.yaml (see ./jobs.sh --list)" >&2; exit 2; }
  echo "== $name"
  "$HWNAS" run "experiments/$name.yaml" --out "runs/$name"
}

# One trained supernet (runs/digits), searched again by every strategy, each in
# its own run directory holding a copy of the trained supernet and its table.
strategies() {
  [[ -f runs/digits/train_state.npz ]] || run digits
  local dirs=()
  for strategy in "${STRATEGIES[@]}"; do
    local dir=runs/digits-$strategy
    echo "== search with $strategy -> $dir"
    if [[ ! -d $dir ]]; then
      mkdir -p "$dir.tmp"
      for f in config.yaml supernet.h5 train_state.npz train_log.csv lut.json; do
        [[ -f runs/digits/$f ]] && cp "runs/digits/$f" "$dir.tmp/"
      done
      mv "$dir.tmp" "$dir"
    fi
    "$HWNAS" search "$dir" --strategy "$strategy" --quiet
    "$HWNAS" front "$dir" >/dev/null
    dirs+=("$dir")
  done
  "$HWNAS" compare "${dirs[@]}" --out runs/compare-strategies
}

if [[ ${1:-} == --list ]]; then
  printf '%s\n' "${EXPERIMENTS[@]}" strategies
  exit 0
fi
if (($#)); then
  for name in "$@"; do
    if [[ $name == strategies ]]; then strategies; else run "$name"; fi
  done
else
  for name in "${EXPERIMENTS[@]}"; do run "$name"; done
  strategies
fi
