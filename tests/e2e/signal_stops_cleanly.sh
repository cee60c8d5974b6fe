#!/usr/bin/env bash
# Signals stop training cleanly under mpirun -np 2:
#  1. SIGTERM to one rank only (as from `kill`): both ranks agree, finish the step, write its
#     checkpoint and exit 75 (EX_TEMPFAIL: stopped before the end) with a line saying how to
#     continue; `--resume auto` continues from that step to the planned last one, with a history
#     free of gaps and duplicates.
#  2. SIGUSR1 to mpirun (SLURM's warning; mpirun forwards it to every rank): the same clean stop.
#  3. Two SIGINTs (Ctrl-C twice): the second ends the job at once, without waiting for the step.
#   signal_stops_cleanly.sh MPIEXEC BINARY CONFIG
set -uo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
out_dir="$(mktemp -d)"
mpirun_pid=""
trap '[ -n "$mpirun_pid" ] && kill -9 "$mpirun_pid" 2>/dev/null; rm -rf "$out_dir"' EXIT
common=(--set run.out_dir="$out_dir" --set train.steps=400 --set train.log_every=10 --set train.checkpoint_every=1000
        --set run.threads=1)
fail() { echo "FAIL: $*"; for f in "$out_dir"/*.log; do echo "--- $f"; cat "$f"; done; exit 1; }

# Starts training in the background; returns once the log shows step $1.
start_training() {
  local log="$1" until_step="$2"; shift 2
  "$MPIEXEC" -n 2 --oversubscribe "$BIN" train "$CONFIG" "${common[@]}" "$@" > "$log" 2>&1 &
  mpirun_pid=$!
  for _ in $(seq 600); do
    grep -q "step $until_step/" "$log" && return 0
    kill -0 "$mpirun_pid" 2>/dev/null || fail "training ended before step $until_step"
    sleep 0.2
  done
  fail "training did not reach step $until_step in 120 s"
}
# Waits for the job; sets rc (its exit code) and secs (how long it took after the signal).
finish() {
  local t0=$SECONDS
  wait "$mpirun_pid"
  rc=$?
  mpirun_pid=""
  secs=$((SECONDS - t0))
}
rank_pids() { pgrep -P "$mpirun_pid" -f "$BIN"; }
checkpoint_steps() { ls "$out_dir/checkpoints" | sed -n 's/^step_0*\([0-9]*\)\.h5$/\1/p' | sort -n | xargs; }
history_steps() {
  h5dump -d /train/step -y -w 0 "$out_dir/run.h5" | sed -n '/DATA {/,/}/p' | tr -cd '0-9,\n' | tr ',' ' ' | xargs
}

# 1. SIGTERM to one rank.
start_training "$out_dir/term.log" 20
kill -TERM "$(rank_pids | tail -1)"
finish
echo "SIGTERM to one rank: exit $rc after $secs s"
[ "$rc" -eq 75 ] || fail "expected exit 75 after SIGTERM, got $rc"
grep -q "stopped at step" "$out_dir/term.log" || fail "no 'stopped at step' line"
grep -q "to continue: mpirun -np 2 ddpm_dist train .* --resume auto" "$out_dir/term.log" || fail "no resume hint"
stopped="$(sed -n 's/.*stopped at step \([0-9]*\)\/.*/\1/p' "$out_dir/term.log")"
[ "$(checkpoint_steps)" = "$stopped" ] || fail "checkpoints '$(checkpoint_steps)', expected the stop step $stopped"
[ "$stopped" -lt 400 ] || fail "the run finished before the signal took effect"

# 2. SIGUSR1 to mpirun, while the resumed run continues.
start_training "$out_dir/usr1.log" $(( (stopped / 10 + 2) * 10 )) --resume auto
grep -q "resumed from .*step_0*${stopped}.h5 at step $stopped" "$out_dir/usr1.log" || fail "did not resume from $stopped"
kill -USR1 "$mpirun_pid"
finish
echo "SIGUSR1 to mpirun: exit $rc after $secs s"
[ "$rc" -eq 75 ] || fail "expected exit 75 after SIGUSR1, got $rc"
grep -q "stopped at step .* on SIGUSR1" "$out_dir/usr1.log" || fail "no stop on SIGUSR1"
stopped2="$(sed -n 's/.*stopped at step \([0-9]*\)\/.*/\1/p' "$out_dir/usr1.log")"

# The run continues to its planned end; the history has no gap and no duplicate.
"$MPIEXEC" -n 2 --oversubscribe "$BIN" train "$CONFIG" "${common[@]}" --set train.steps=$((stopped2 + 20)) \
  --resume auto > "$out_dir/rest.log" 2>&1 || fail "the resumed run failed"
grep -q "resumed from .* at step $stopped2" "$out_dir/rest.log" || fail "did not resume from $stopped2"
expected="$( (seq 10 10 $((stopped2 + 20)); echo "$stopped"; echo "$stopped2"; echo $((stopped2 + 20))) | sort -n | uniq | xargs)"
echo "history steps: $(history_steps)"
[ "$(history_steps)" = "$expected" ] || fail "history '$(history_steps)', expected '$expected'"

# 3. Two SIGINTs to every rank, in a fresh run with longer steps: the job ends at once.
common=(--set run.out_dir="$out_dir/int" --set train.steps=400 --set train.log_every=10 --set run.threads=1
        --set train.batch_size=256)
start_training "$out_dir/int.log" 10
for pid in $(rank_pids); do kill -INT "$pid"; done
sleep 0.05
for pid in $(rank_pids); do kill -INT "$pid"; done
finish
echo "two SIGINTs: exit $rc after $secs s"
[ "$rc" -ne 0 ] || fail "two SIGINTs should end the job at once with a non-zero exit"
grep -q "second SIGINT, exiting now" "$out_dir/int.log" || fail "no message for the second SIGINT"
"$BIN" inspect "$out_dir/int/run.h5" > /dev/null || fail "run.h5 does not open after the hard stop"
echo "PASS"
