#!/usr/bin/env bash
# Restarts without a person (launch/restart.sh, through launch/local.sh on 2 ranks):
#  a. a rank SIGKILLed mid-training (a lost process): the run restarts from its newest checkpoint,
#     with the cause logged, and finishes with a history free of gaps and duplicates;
#  b. a failure at the same step every time (DDPM_FAULT=throw@45:1): one restart, then it stops,
#     saying that it failed the same way at the same step twice;
#  c. an error of ours (an unknown key, exit 2): no restart;
#  d. a stop (SIGTERM to local.sh) during the restart delay: it ends the delay, and no attempt follows.
#   restarts.sh   (from the repository root; the build and results/classifier_mnist.h5 exist)
set -uo pipefail
tmp="$(mktemp -d)"
local_pid=""
trap '[ -n "$local_pid" ] && pkill -9 -P "$local_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/*.log; do echo "--- $f"; tail -25 "$f"; done; exit 1; }
# A failed job ends when mpirun SIGKILLs the ranks still waiting for the dead one: 3 s here, not 60.
export DDPM_RESTART_DELAY=1 DDPM_SIGKILL_TIMEOUT=3
steps_of() { h5dump -d /train/step -y -w 0 "$1/run.h5" | sed -n '/DATA {/,/}/p' | grep -o '[0-9]\+' | xargs; }

# a.
launch/local.sh configs/smoke.yaml 2 --set run.out_dir="$tmp/a" --set train.steps=200 --set train.log_every=10 \
  --set train.checkpoint_every=20 >"$tmp/a.log" 2>&1 &
local_pid=$!
for _ in $(seq 900); do grep -q "step 60/200" "$tmp/a.log" && break; sleep 0.2; done
grep -q "step 60/200" "$tmp/a.log" || fail "a: training did not reach step 60"
victim="$(pgrep -n -f "build/ddpm_dist configs/smoke.yaml")"
[ -n "$victim" ] || fail "a: no rank to kill"
kill -9 "$victim"
wait "$local_pid"
rc=$?
local_pid=""
[ "$rc" -eq 0 ] || fail "a: local.sh exited $rc after a rank was killed"
grep -q "^\[local\] exit [0-9]* after step [0-9]*: " "$tmp/a.log" || fail "a: the cause was not logged"
grep -q "^\[local\] restart 1 of 3 in 1 s" "$tmp/a.log" || fail "a: no restart logged"
grep -q "after 1 restart(s)" "$tmp/a.log" || fail "a: the end does not count the restart"
want="$(seq -s ' ' 10 10 200)"
[ "$(steps_of "$tmp/a")" = "$want" ] || fail "a: /train/step reads '$(steps_of "$tmp/a")'"
grep "^\[local\]" "$tmp/a.log" | head -3

# b.
DDPM_FAULT=throw@45:1 launch/local.sh configs/smoke.yaml 2 --set run.out_dir="$tmp/b" --set train.steps=100 \
  --set train.log_every=10 --set train.checkpoint_every=10 >"$tmp/b.log" 2>&1
rc=$?
[ "$rc" -ne 0 ] || fail "b: a deterministic failure ended with exit 0"
[ "$(grep -c '^\[local\] restart ' "$tmp/b.log")" -eq 1 ] || fail "b: not exactly one restart"
grep -q "^\[local\] failed the same way at the same step twice (exit $rc after step 40: \[rank 1\] internal error: injected fault (DDPM_FAULT): throw at step 45): a deterministic failure is not fixed by retrying; not restarted" "$tmp/b.log" ||
  fail "b: no line saying it stopped restarting and why"
grep "^\[local\] failed" "$tmp/b.log"

# c.
launch/local.sh configs/smoke.yaml 2 --set run.out_dir="$tmp/c" --set train.nope=1 >"$tmp/c.log" 2>&1
rc=$?
[ "$rc" -eq 2 ] || fail "c: an unknown key exited $rc, not 2"
grep -q "^\[local\] restart" "$tmp/c.log" && fail "c: an error of ours was restarted"
grep -q "retrying would fail the same way; not restarted" "$tmp/c.log" || fail "c: no line saying why it is not restarted"

# d.
DDPM_RESTART_DELAY=60 DDPM_FAULT=throw@15:1 launch/local.sh configs/smoke.yaml 2 --set run.out_dir="$tmp/d" \
  --set train.steps=100 --set train.log_every=10 --set train.checkpoint_every=10 >"$tmp/d.log" 2>&1 &
local_pid=$!
for _ in $(seq 900); do grep -q "^\[local\] restart 1 of 3 in 60 s" "$tmp/d.log" && break; sleep 0.2; done
grep -q "^\[local\] restart 1 of 3 in 60 s" "$tmp/d.log" || fail "d: no restart announced"
kill -TERM "$local_pid"
wait "$local_pid"
rc=$?
local_pid=""
[ "$rc" -ne 0 ] || fail "d: a stopped run ended with exit 0"
grep -q "^\[local\] stopped during the restart delay: not restarted" "$tmp/d.log" || fail "d: no line saying the stop ended the delay"
[ "$(grep -c "training 100 steps from step" "$tmp/d.log")" -eq 1 ] || fail "d: an attempt started after the stop"
grep "^\[local\] stopped" "$tmp/d.log"
echo "PASS"
