#!/usr/bin/env bash
# Training throughput of 1 rank x all cores against N ranks x 1 thread, overlap on and off, and the
# communication-wait fraction, for one config.
#   launch/bench_dist.sh [CONFIG]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONFIG="${1:-configs/mnist.yaml}"
CORES="$(nproc)"
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "== 1 rank x $CORES threads"
mpirun -n 1 --bind-to none build/ddpm_dist bench "$CONFIG" --set run.threads="$CORES" 2>&1 | grep "bench "
echo "== $CORES ranks x 1 thread"
mpirun -n "$CORES" --bind-to core -x OMP_NUM_THREADS=1 build/ddpm_dist bench "$CONFIG" --set run.threads=1 2>&1 | grep "bench "
