#!/usr/bin/env bash
# The experiments. Each job writes its own run directory under runs/ and resumes
# where it stopped: rerun the same line after an interruption.
#
#   ./jobs.sh --list             the jobs, one per line, with what each does
#   ./jobs.sh                    every digits job, digits_hard, custom_space, then cifar10 and mnist where their data is set
#   ./jobs.sh NAME ...           only these jobs
#   ./jobs.sh digits-all         every learner and every search strategy on digits
#   ./jobs.sh --dry-run NAME...  print the commands instead of running them
#
# A learner job is one 'hwnas run experiments/NAME.yaml --out runs/NAME': train the
# supernet, search, front, select, retrain, export (.nnp and ONNX) and report.html.
# 'strategies' searches the trained runs/digits supernet again with every strategy
# (runs/digits-STRATEGY) and compares them (runs/compare-strategies).
# cifar10 and mnist read your local copy, named by an environment variable:
#   HWNAS_CIFAR10=/path/to/cifar-10-python.tar.gz   HWNAS_MNIST=/path/to/mnist-idx-files
# digits_hard is the same search on a task where the architecture matters (digits-hard:
# distorted, cluttered 16x16 copies of the digits; bench/bench_task.py measures it): 29 min
# at fa46f98 beside bench_ranking's two processes (nested supernet, 20 epochs: 13.4 min;
# search of 70 subnets 5.3 min; retraining 6.7 min; selected subnet 19,242 parameters,
# test 0.786). With separate weights and 40 epochs it took 27 min (supernet 16 min),
# selecting 19,482 parameters at test 0.793.
# custom_space runs examples/custom_space/config.yaml: a search space of your own, loaded
# from its file (space.name: ./vgg_space.py:VggSpace); 3.5 min.
# Approximate times on a 2-core CPU: digits 5 min, digits_darts 10 min, digits_darts2
# 15 min, digits_proxyless 8 min, digits_reinforce 6 min, digits_cells 20 min,
# strategies 10 min (digits-all about an hour, measured 51-52 min after make demo), mnist 2 h,
# cifar10 10 h (those two extrapolated, not measured). The DARTS jobs were timed before
# DARTS fine-tuned for twice its epochs by default (train.finetune_epochs); digits_darts with
# it took 7.3 min at 84865f7 (its 12 fine-tuning epochs 85 s of that, a fifth): expect
# digits_darts2 and digits_cells to take about a fifth longer than listed. ProxylessNAS
# fine-tunes for twice its epochs by default too; with it, at e950adc, one after the other
# beside one other training process, digits_proxyless took 7.7 min (test 0.9916) and
# digits_reinforce 6.7 min.
set -euo pipefail
cd "$(dirname "$0")"

LEARNER_JOBS=(digits digits_darts digits_darts2 digits_proxyless digits_reinforce digits_cells)
TASK_JOBS=(digits_hard)
EXAMPLE_JOBS=(custom_space)
DATA_JOBS=(cifar10 mnist)
STRATEGIES=(tpe-ls tpe nsga2 nsga3 optuna-random qmc deap-nsga2 deap-nsga3 deap-spea2 random)

describe() {
  case $1 in
    digits) echo "uniform path sampling + tpe-ls search, params budget (make demo)" ;;
    digits_darts) echo "DARTS first order, params regularizer" ;;
    digits_darts2) echo "DARTS second order (the unrolled step)" ;;
    digits_proxyless) echo "ProxylessNAS binary gates, latency regularizer (MnasNet form)" ;;
    digits_reinforce) echo "ProxylessNAS REINFORCE, MACs regularizer" ;;
    digits_cells) echo "DARTS on the DARTS cell space" ;;
    digits_hard) echo "uniform + tpe-ls on digits-hard, a task where the architecture matters" ;;
    custom_space) echo "a search space of your own, loaded from examples/custom_space/vgg_space.py" ;;
    strategies) echo "every search strategy on the trained digits supernet, compared" ;;
    digits-all) echo "every digits job above: each learner, then each strategy" ;;
    cifar10) echo "CIFAR-10, latency budget (needs HWNAS_CIFAR10)" ;;
    mnist) echo "MNIST, params budget (needs HWNAS_MNIST)" ;;
  esac
}

DRY=0
if [[ ${1:-} == --list ]]; then
  for job in "${LEARNER_JOBS[@]}" strategies digits-all "${TASK_JOBS[@]}" "${EXAMPLE_JOBS[@]}" \
             "${DATA_JOBS[@]}"; do
    printf '%-18s %s\n' "$job" "$(describe "$job")"
  done
  exit 0
fi
if [[ ${1:-} == --dry-run ]]; then
  DRY=1
  shift
fi

HWNAS=.venv/bin/hwnas
if ((!DRY)); then
  make --no-print-directory install >/dev/null
fi

# Runs (or, with --dry-run, prints) one command.
x() {
  if ((DRY)); then echo "$*"; else "$@"; fi
}

DONE=" "  # the jobs this call has run
run() {
  local name=$1
  DONE+="$name "
  echo "== $name: $(describe "$name")"
  x "$HWNAS" run "experiments/$name.yaml" --out "runs/$name"
}

# The data variable a data job needs; empty when it is not set.
data_variable() {
  case $1 in cifar10) echo HWNAS_CIFAR10 ;; mnist) echo HWNAS_MNIST ;; esac
}

data_job() {
  local name=$1 var
  var=$(data_variable "$name")
  if [[ -z ${!var:-} ]]; then
    echo "jobs.sh: $name needs your local copy of the data set: export $var=PATH" \
         "(see experiments/$name.yaml); nothing is downloaded" >&2
    return 2
  fi
  if [[ ! -e ${!var} ]]; then
    echo "jobs.sh: $var=${!var}: no such file or directory" >&2
    return 2
  fi
  run "$name"
}

# One trained supernet (runs/digits), searched again by every strategy, each in
# its own run directory holding a copy of the trained supernet and its table.
strategies() {
  [[ -f runs/digits/train_state.npz || $DONE == *" digits "* ]] || run digits
  local dirs=()
  echo "== strategies: $(describe strategies)"
  for strategy in "${STRATEGIES[@]}"; do
    local dir=runs/digits-$strategy
    if [[ ! -d $dir ]] && ((!DRY)); then
      mkdir -p "$dir.tmp"
      for f in config.yaml supernet.h5 train_state.npz train_log.csv lut.json; do
        [[ -f runs/digits/$f ]] && cp "runs/digits/$f" "$dir.tmp/"
      done
      mv "$dir.tmp" "$dir"
    fi
    x "$HWNAS" search "$dir" --strategy "$strategy" --quiet
    x "$HWNAS" front "$dir"
    dirs+=("$dir")
  done
  x "$HWNAS" compare "${dirs[@]}" --out runs/compare-strategies
}

job() {
  case $1 in
    strategies) strategies ;;
    digits-all) for name in "${LEARNER_JOBS[@]}"; do run "$name"; done; strategies ;;
    cifar10 | mnist) data_job "$1" ;;
    custom_space)
      DONE+="custom_space "
      echo "== custom_space: $(describe custom_space)"
      x "$HWNAS" run examples/custom_space/config.yaml --out runs/custom_space ;;
    *)
      if [[ " ${LEARNER_JOBS[*]} ${TASK_JOBS[*]} " != *" $1 "* ]]; then
        echo "jobs.sh: unknown job '$1' (./jobs.sh --list names them)" >&2
        exit 2
      fi
      run "$1" ;;
  esac
}

if (($#)); then
  for name in "$@"; do
    [[ -n $(describe "$name") ]] || { echo "jobs.sh: unknown job '$name' (./jobs.sh --list names them)" >&2; exit 2; }
  done
  for name in "$@"; do job "$name" || exit $?; done
else
  job digits-all
  for name in "${TASK_JOBS[@]}" "${EXAMPLE_JOBS[@]}"; do job "$name"; done
  for name in "${DATA_JOBS[@]}"; do
    var=$(data_variable "$name")
    if [[ -n ${!var:-} ]]; then data_job "$name"; else echo "== $name skipped: $var is not set"; fi
  done
fi
