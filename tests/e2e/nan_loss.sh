#!/usr/bin/env bash
# A NaN loss on one rank (DDPM_FAULT=nan@STEP:1) under mpirun -np 2:
#  1. every rank skips that update, training goes on to its last step and exits 0;
#  2. with train.max_bad_steps=0 the run stops with a message naming the key, after writing the
#     checkpoint of the step that passed the limit (16), whose weights, EMA and Adam state are those
#     of the last good step: the skip is applied on the device, and the host reads it at the next
#     step that logs or checkpoints (here 20), but names the checkpoint for what it holds.
#   nan_loss.sh MPIEXEC BINARY CONFIG
set -uo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT
fail() { echo "FAIL: $*"; cat "$out_dir"/*.log; exit 1; }
common=(--set train.steps=30 --set train.log_every=10 --set train.checkpoint_every=15 --set run.threads=1)

DDPM_FAULT=nan@15:1 "$MPIEXEC" -n 2 --oversubscribe "$BIN" train "$CONFIG" "${common[@]}" \
  --set run.out_dir="$out_dir/skip" > "$out_dir/skip.log" 2>&1 || fail "a skipped step should not fail the run"
grep -q "step 16: non-finite loss or gradient norm .* update skipped on every rank (1 in a row" "$out_dir/skip.log" ||
  fail "no line about the skipped step"
[ -f "$out_dir/skip/checkpoints/step_00000030.h5" ] || fail "training did not reach step 30"
grep -q "step 30/30 .* loss 0\.[0-9]" "$out_dir/skip.log" || fail "the loss after the skipped step is not finite"

DDPM_FAULT=nan@15:1 "$MPIEXEC" -n 2 --oversubscribe "$BIN" train "$CONFIG" "${common[@]}" --set train.max_bad_steps=0 \
  --set run.out_dir="$out_dir/stop" > "$out_dir/stop.log" 2>&1 && fail "the run should stop with an error"
grep -q "train.max_bad_steps = 0: 1 steps in a row (up to step 16) had a non-finite loss" "$out_dir/stop.log" ||
  fail "no message naming train.max_bad_steps"
grep -q "The checkpoint of step 16 holds the weights of step 15, the last good one" \
  "$out_dir/stop.log" || fail "no message naming the stop checkpoint and the last good step"
ckpt="$out_dir/stop/checkpoints"
[ -f "$ckpt/step_00000016.h5" ] || fail "no checkpoint of the step that passed train.max_bad_steps"
[ ! -e "$ckpt/step_00000020.h5" ] || fail "a checkpoint named for step 20, which the run never reached in its state"
"$BIN" inspect "$ckpt/step_00000016.h5" | grep -q "complete" || fail "the stop checkpoint is not complete"
"$BIN" inspect "$ckpt/step_00000016.h5" | grep -q "step 16" || fail "the stop checkpoint does not say step 16"
for group in /model /ema /optim; do
  h5diff "$ckpt/step_00000015.h5" "$ckpt/step_00000016.h5" $group $group > /dev/null ||
    fail "the stop checkpoint's $group differs from that of the last good step"
done
echo "PASS"
