#!/usr/bin/env bash
# An exception on rank 1 only must end the whole 2-rank job quickly, with a non-zero exit.
#   fault_ends_job.sh MPIEXEC BINARY CONFIG
set -uo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
start=$(date +%s)
out="$(DDPM_FAULT=throw@3:1 timeout 120 "$MPIEXEC" -n 2 --oversubscribe "$BIN" train "$CONFIG" \
         --set run.threads=1 --set run.out_dir="$(mktemp -d)" 2>&1)"
rc=$?
elapsed=$(( $(date +%s) - start ))
echo "$out" | tail -5
echo "exit code $rc after ${elapsed}s"
[ "$rc" -ne 0 ] || { echo "FAIL: the job exited 0 despite the fault"; exit 1; }
[ "$rc" -ne 124 ] || { echo "FAIL: the job hung until the timeout"; exit 1; }
[ "$elapsed" -lt 60 ] || { echo "FAIL: the job took ${elapsed}s to end"; exit 1; }
echo "$out" | grep -q "rank 1.*injected fault" || { echo "FAIL: no log line names rank 1 and the fault"; exit 1; }
echo "PASS"
