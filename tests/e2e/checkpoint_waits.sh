#!/usr/bin/env bash
# Waits around checkpoints under mpirun -np 2:
#  1. A checkpoint that takes longer than run.collective_timeout_s (a slow disk, DDPM_FAULT
#     slow_checkpoint: rank 0 writes for 3 s more, the limit is 1 s) is not a hung rank: the other
#     rank waits in an untimed barrier, and the job finishes.
#  2. SIGTERM to the rank that does not write, during the last checkpoint: the ranks agree after
#     it, the job exits 75 (the run is not finished) with training complete, and no rank starts
#     the evaluation.
#   checkpoint_waits.sh MPIEXEC BINARY CONFIG
set -uo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
out_dir="$(mktemp -d)"
mpirun_pid=""
trap '[ -n "$mpirun_pid" ] && kill -9 "$mpirun_pid" 2>/dev/null; rm -rf "$out_dir"' EXIT
fail() { echo "FAIL: $*"; for f in "$out_dir"/*.log; do echo "--- $f"; cat "$f"; done; exit 1; }
common=(--set run.threads=1 --set train.steps=6 --set train.log_every=2 --set train.checkpoint_every=4)

# 1.
"$MPIEXEC" -n 2 --oversubscribe -x DDPM_FAULT=slow_checkpoint@4:0 "$BIN" train "$CONFIG" "${common[@]}" \
  --set run.collective_timeout_s=1 --set run.out_dir="$out_dir/slow" > "$out_dir/slow.log" 2>&1
rc=$?
echo "slow checkpoint with a 1 s watchdog: exit $rc"
[ "$rc" -eq 0 ] || fail "a slow checkpoint ended the job (exit $rc)"
ls "$out_dir/slow/checkpoints/step_00000004.h5" "$out_dir/slow/checkpoints/step_00000006.h5" > /dev/null ||
  fail "checkpoints of steps 4 and 6 missing"

# 2.
"$MPIEXEC" -n 2 --oversubscribe -x DDPM_FAULT=slow_checkpoint@6:0 "$BIN" "$CONFIG" "${common[@]}" \
  --set run.out_dir="$out_dir/last" > "$out_dir/last.log" 2>&1 &
mpirun_pid=$!
for _ in $(seq 600); do
  grep -q "step 6/6" "$out_dir/last.log" && break
  kill -0 "$mpirun_pid" 2>/dev/null || fail "the run ended before its last step"
  sleep 0.1
done
sleep 0.5
kill -TERM "$(pgrep -P "$mpirun_pid" -f "$BIN" | tail -1)"
wait "$mpirun_pid"
rc=$?
mpirun_pid=""
echo "SIGTERM during the last checkpoint: exit $rc"
[ "$rc" -eq 75 ] || fail "expected exit 75 (stopped before the end: no evaluation), got $rc"
grep -q "evaluation is skipped" "$out_dir/last.log" || fail "no line saying the evaluation is skipped"
grep -q "report:" "$out_dir/last.log" && fail "the evaluation ran after the stop signal"
ls "$out_dir/last/checkpoints/step_00000006.h5" > /dev/null || fail "no checkpoint of the last step"
echo "PASS"
