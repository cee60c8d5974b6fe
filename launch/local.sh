#!/usr/bin/env bash
# Sets up what is missing, then runs the main job (train, then sample) on this machine.
#   launch/local.sh [CONFIG]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/launch/setup.sh"

CONFIG="${1:-configs/mnist_cpu.yaml}"
THREADS="$(nproc)"
export OMP_NUM_THREADS="$THREADS"
# tcmalloc: glibc's malloc returns large tensors to the OS and page-faults them back every step.
TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
[ -f "$TCMALLOC" ] && export LD_PRELOAD="$TCMALLOC${LD_PRELOAD:+:$LD_PRELOAD}"

echo "[local] 1 process x $THREADS thread(s): $CONFIG"
build/ddpm_dist "$CONFIG" --set run.threads="$THREADS"
