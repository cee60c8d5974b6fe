#!/usr/bin/env bash
# Sets up what is missing, then runs the main job (train, sample, evaluate) on this machine.
#   launch/local.sh [CONFIG] [NP]
# Without arguments: with GPUs, configs/mnist.yaml on one rank per GPU; without, configs/mnist_cpu.yaml
# on one rank per core. Extra arguments after NP go to ddpm_dist (e.g. --resume auto).
# A run that fails restarts from its newest checkpoint up to DDPM_MAX_RESTARTS times (3), after
# DDPM_RESTART_DELAY seconds (10); not a deterministic failure (launch/restart.sh).
# DDPM_SWEEP=1: after the run, `ddpm_dist sweep` measures the config's sweep.* grid (EMA length x
# guide x guidance weight) on the same ranks (docs/posthoc_ema.md; about 4 minutes for
# configs/mnist_cpu.yaml's grid on 2 cores).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/launch/setup.sh" "$@"

GPUS="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
CORES="$(nproc)"
if [ "${GPUS:-0}" -gt 0 ]; then DEFAULT_CONFIG=configs/mnist.yaml DEFAULT_NP="$GPUS"
else DEFAULT_CONFIG=configs/mnist_cpu.yaml DEFAULT_NP="$CORES"; fi
CONFIG="${1:-$DEFAULT_CONFIG}"
NP="${2:-$DEFAULT_NP}"
shift $(( $# < 2 ? $# : 2 ))
THREADS=$(( CORES / NP > 0 ? CORES / NP : 1 ))

# On SIGTERM or Ctrl-C mpirun sends the ranks SIGTERM and SIGKILL 1 s later; 60 s lets them finish
# the step and write the checkpoint. It is also how long a failed job takes to end (a rank left
# waiting for a dead one gets SIGTERM, then SIGKILL): DDPM_SIGKILL_TIMEOUT sets it.
source "$ROOT/launch/allocator.sh"
MPI_FLAGS=(-n "$NP" -x OMP_NUM_THREADS="$THREADS" "${DDPM_ALLOCATOR_MPI_FLAGS[@]}" --mca odls_base_sigkill_timeout "${DDPM_SIGKILL_TIMEOUT:-60}")
# More ranks than cores needs --oversubscribe (Open MPI refuses otherwise: "not enough slots");
# otherwise each rank is pinned to its own cores.
if [ "$NP" -gt "$CORES" ]; then
  MPI_FLAGS+=(--oversubscribe --bind-to none)
else
  MPI_FLAGS+=(--map-by "slot:PE=$THREADS" --bind-to core)
fi
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

RUN_NAME="$(sed -n '/^run:/,/^[^ #]/s/^ *name: *\([^ #]*\).*/\1/p' "$CONFIG" | head -1)"
for arg in "$@"; do case "$arg" in run.name=*) RUN_NAME="${arg#run.name=}" ;; esac; done
OUT="results/${RUN_NAME:-run}"
echo "[local] $NP rank(s) x $THREADS thread(s), ${GPUS:-0} GPU(s), malloc: ${DDPM_TCMALLOC:-glibc}: $CONFIG"
start=$SECONDS
# A failed run restarts from its newest checkpoint (launch/restart.sh: DDPM_MAX_RESTARTS,
# DDPM_RESTART_DELAY); each attempt's output also goes to a file, for the failure's cause.
source "$ROOT/launch/restart.sh"
ddpm_restarts_init
DDPM_RESTART_TAG=local
attempt_log="$(mktemp /tmp/ddpm_local_attempt.XXXXXX)"
trap 'rm -f "$attempt_log"' EXIT
args=("$@")
# A person's Ctrl-C (which the terminal sends to mpirun too) or a SIGTERM here is a stop, not a failure.
trap 'DDPM_STOP_REQUESTED=1' INT
trap 'DDPM_STOP_REQUESTED=1; pkill -TERM -P $$ -x mpirun 2>/dev/null || true' TERM
while :; do
  set +e
  mpirun "${MPI_FLAGS[@]}" build/ddpm_dist "$CONFIG" --set run.threads="$THREADS" "${args[@]}" 2>&1 | tee "$attempt_log"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] && break
  [ "$DDPM_STOP_REQUESTED" = 1 ] && { echo "[local] stopped (exit $rc): not restarted"; exit "$rc"; }
  ddpm_restart_decision "$rc" "$attempt_log" || exit "$rc"
  ddpm_resume_args "$@"
  args=("${DDPM_RESUME_ARGS[@]}")
done
echo "[local] finished in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s$([ "$DDPM_RESTARTS_DONE" -gt 0 ] && echo ", after $DDPM_RESTARTS_DONE restart(s)")"
if [ "${DDPM_SWEEP:-0}" = 1 ]; then
  sweep_start=$SECONDS
  # --resume belongs to training; the sweep takes the rest (--set ...).
  sweep_args=()
  skip=0
  for arg in "$@"; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case "$arg" in --resume) skip=1 ;; --resume=*) ;; *) sweep_args+=("$arg") ;; esac
  done
  mpirun "${MPI_FLAGS[@]}" build/ddpm_dist sweep "$CONFIG" --set run.threads="$THREADS" "${sweep_args[@]}"
  echo "[local] sweep finished in $(( (SECONDS - sweep_start) / 60 )) min $(( (SECONDS - sweep_start) % 60 )) s: $OUT/sweep.txt"
fi
echo "[local] results in $OUT/: run.h5 (history, samples, metrics), checkpoints/, samples.png, forward.png, reverse.png"
if [ -f "$OUT/run.h5" ]; then build/ddpm_dist inspect "$OUT/run.h5"; fi
if [ -f "$OUT/report.html" ]; then echo "[local] report (open it in a browser): $ROOT/$OUT/report.html"; fi
