#!/usr/bin/env bash
# One run per folder: while a run trains, a second run on its folder is refused at start with a
# message naming the holder (process, host, SLURM job, start time, command), and the first goes on
# untouched; once the first is SIGKILLed, its folder resumes at once (the kernel released the lock).
#   run_lock.sh MPIEXEC BINARY CONFIG
set -uo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
out_dir="$(mktemp -d)"
mpirun_pid=""
trap '[ -n "$mpirun_pid" ] && kill -9 "$mpirun_pid" 2>/dev/null; rm -rf "$out_dir"' EXIT
run=(--set run.out_dir="$out_dir/run" --set train.steps=200 --set train.log_every=10 --set train.checkpoint_every=20
     --set run.threads=1)
fail() { echo "FAIL: $*"; for f in "$out_dir"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }

SLURM_JOB_ID=4242 "$MPIEXEC" -n 2 --oversubscribe -x SLURM_JOB_ID "$BIN" train "$CONFIG" "${run[@]}" >"$out_dir/first.log" 2>&1 &
mpirun_pid=$!
for _ in $(seq 600); do
  grep -q "step 40/" "$out_dir/first.log" && break
  kill -0 "$mpirun_pid" 2>/dev/null || fail "the first run ended before step 40"
  sleep 0.2
done
grep -q "step 40/" "$out_dir/first.log" || fail "the first run did not reach step 40 in 120 s"

before="$(ls "$out_dir/run/checkpoints")"
"$MPIEXEC" -n 2 --oversubscribe "$BIN" train "$CONFIG" "${run[@]}" --resume auto >"$out_dir/second.log" 2>&1
rc=$?
[ "$rc" -eq 2 ] || fail "the second run on the folder exited $rc, not 2"
line="$(grep -m1 'is in use by another run' "$out_dir/second.log")"
echo "$line"
for want in "$out_dir/run is in use by another run: process [0-9]* on host $(hostname) (SLURM job 4242), started 20[0-9-]*T[0-9:]*Z: mpirun -np 2 ddpm_dist train" \
            "give this one another run.name or run.out_dir"; do
  echo "$line" | grep -q -- "$want" || fail "the refusal does not say '$want'"
done
kill -0 "$mpirun_pid" 2>/dev/null || fail "the first run died when the second was refused"
after="$(ls "$out_dir/run/checkpoints")"
for f in $before; do echo "$after" | grep -qx "$f" || fail "checkpoint $f of the first run is gone"; done

# SIGKILL: no chance to release anything. The restart must not be blocked.
pkill -9 -P "$mpirun_pid" -f "$BIN"
kill -9 "$mpirun_pid" 2>/dev/null
wait "$mpirun_pid" 2>/dev/null
mpirun_pid=""
"$MPIEXEC" -n 2 --oversubscribe "$BIN" train "$CONFIG" "${run[@]}" --resume auto >"$out_dir/restart.log" 2>&1 ||
  fail "the restart after SIGKILL exited $?"
grep -q "is in use" "$out_dir/restart.log" && fail "the killed run's lock blocked the restart"
grep -q "resumed from .* at step [1-9]" "$out_dir/restart.log" || fail "the restart did not resume"
grep -q "step 200/200" "$out_dir/restart.log" || fail "the restart did not finish"
echo "PASS"
