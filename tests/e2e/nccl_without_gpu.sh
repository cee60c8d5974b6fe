#!/usr/bin/env bash
# Asking for the NCCL backend on a machine without a GPU fails with a message that names the fix.
#   nccl_without_gpu.sh BINARY CONFIG
set -uo pipefail
BIN="$1" CONFIG="$2"
out="$(timeout 60 "$BIN" train "$CONFIG" --set run.backend=nccl --set run.out_dir="$(mktemp -d)" 2>&1)"
rc=$?
echo "$out" | tail -3
[ "$rc" -ne 0 ] || { echo "FAIL: exit 0"; exit 1; }
echo "$out" | grep -q "run.backend: mpi" || { echo "FAIL: the message does not name run.backend: mpi"; exit 1; }
echo "PASS"
