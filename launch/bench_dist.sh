#!/usr/bin/env bash
# Training throughput of one config on 1 rank x 1 thread, 1 rank x all cores and N ranks x 1
# thread, the communication-wait fraction, and the ratio of N x 1 to 1 x 1.
#   launch/bench_dist.sh [CONFIG] [PARTS] [ddpm_dist arguments]
# PARTS: parts of `ddpm_dist bench --only` (default allreduce,train,no_overlap; e.g. allreduce,bf16).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONFIG="${1:-configs/mnist.yaml}"
PARTS="${2:-allreduce,train,no_overlap}"
shift $(( $# > 2 ? 2 : $# ))
CORES="$(nproc)"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
# The allocator launch/local.sh gives the ranks, so that the figures are the ones a run gets.
source "$ROOT/launch/allocator.sh"
echo "== malloc: ${DDPM_TCMALLOC:-glibc} (DDPM_MALLOC=glibc for glibc's)"

# bench NP THREADS BINDING: prints the bench lines of that layout.
bench() {
  local np="$1" threads="$2" binding="$3"
  shift 3
  mpirun -n "$np" --bind-to "$binding" -x OMP_NUM_THREADS="$threads" "${DDPM_ALLOCATOR_MPI_FLAGS[@]}" build/ddpm_dist bench "$CONFIG" \
    --only "$PARTS" --set run.threads="$threads" "$@" 2>&1 | grep "bench " | sed 's/.*bench /bench /'
}
# The first training variant's img/s.
img_s() { sed -n 's/^bench train_img_per_s_[a-z0-9_]*=\([0-9.e+]*\).*/\1/p' | head -1; }
echo "== 1 rank x 1 thread"
one="$(bench 1 1 core "$@")"; echo "$one"
echo "== 1 rank x $CORES threads"
bench 1 "$CORES" none "$@"
echo "== $CORES ranks x 1 thread"
dist="$(bench "$CORES" 1 core "$@")"; echo "$dist"
awk -v a="$(echo "$dist" | img_s)" -v b="$(echo "$one" | img_s)" -v n="$CORES" \
  'BEGIN { printf "bench dist_speedup=%.3f (%d ranks x 1 thread over 1 rank x 1 thread)\n", a / b, n }'
