#!/usr/bin/env bash
# Sets up what is missing, then runs the main job (train, then sample) on this machine.
#   launch/local.sh [CONFIG] [NP]
# CONFIG defaults to configs/mnist_cpu.yaml; NP (ranks) to the number of cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/launch/setup.sh"

CONFIG="${1:-configs/mnist_cpu.yaml}"
CORES="$(nproc)"
NP="${2:-$CORES}"
THREADS=$(( CORES / NP > 0 ? CORES / NP : 1 ))

MPI_FLAGS=(-n "$NP" -x OMP_NUM_THREADS="$THREADS")
# More ranks than cores needs --oversubscribe; otherwise pin each rank to its own cores.
if [ "$NP" -gt "$CORES" ]; then
  MPI_FLAGS+=(--oversubscribe --bind-to none)
else
  MPI_FLAGS+=(--map-by "slot:PE=$THREADS" --bind-to core)
fi
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

echo "[local] $NP rank(s) x $THREADS thread(s): $CONFIG"
mpirun "${MPI_FLAGS[@]}" build/ddpm_dist "$CONFIG" --set run.threads="$THREADS"
OUT="$(grep -A3 '^run:' "$CONFIG" | sed -n 's/^ *name: *//p' | head -1)"
echo "[local] results: results/${OUT:-run}/"
