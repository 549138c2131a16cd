#!/usr/bin/env bash
# The experiments: one 'hwnas run' per experiments/*.yaml, each in runs/NAME.
#
#   ./jobs.sh                    every experiment below, one after another
#   ./jobs.sh digits_darts ...   only these
#
# Each run resumes where it stopped (rerun the same line after an interruption).
# Approximate times on a 2-core CPU: digits 5 min, digits_darts 10 min,
# digits_darts2 15 min, digits_proxyless 8 min, digits_reinforce 6 min, digits_cells 20 min.
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

run() {
  local name=$1
  [[ -f experiments/$name.yaml ]] || { echo "jobs.sh: no experiments/$name.yaml" >&2; exit 2; }
  echo "== $name"
  "$HWNAS" run "experiments/$name.yaml" --out "runs/$name"
}

if (($#)); then
  for name in "$@"; do run "$name"; done
else
  for name in "${EXPERIMENTS[@]}"; do run "$name"; done
fi
