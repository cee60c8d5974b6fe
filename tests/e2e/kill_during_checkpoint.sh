#!/usr/bin/env bash
# A process killed (SIGKILL) in the middle of writing a checkpoint leaves the previous checkpoint
# loadable; --resume auto continues from it to the last step; the metric history has no gap or
# duplicate; run.h5 reads with h5dump -H; inspect describes both files.
#   kill_during_checkpoint.sh BINARY CONFIG
set -uo pipefail
BIN="$1" CONFIG="$2"
out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT
common=(--set run.out_dir="$out_dir" --set train.steps=60 --set train.log_every=10 --set train.checkpoint_every=20
        --set run.threads=1)

DDPM_FAULT=kill_in_checkpoint@40 "$BIN" train "$CONFIG" "${common[@]}" > "$out_dir/first.log" 2>&1
rc=$?
echo "first run: exit $rc"
[ "$rc" -eq 137 ] || { cat "$out_dir/first.log"; echo "FAIL: expected death by SIGKILL (137)"; exit 1; }
ls -la "$out_dir/checkpoints"
[ -f "$out_dir/checkpoints/step_00000020.h5" ] || { echo "FAIL: the checkpoint of step 20 is gone"; exit 1; }
[ ! -f "$out_dir/checkpoints/step_00000040.h5" ] || { echo "FAIL: a half-written checkpoint took the final name"; exit 1; }
"$BIN" inspect "$out_dir/checkpoints/step_00000020.h5" | tee "$out_dir/inspect_ckpt.txt"
grep -q "step 20, .* complete" "$out_dir/inspect_ckpt.txt" || { echo "FAIL: step 20 not complete"; exit 1; }

"$BIN" train "$CONFIG" "${common[@]}" --resume auto > "$out_dir/second.log" 2>&1 || {
  cat "$out_dir/second.log"; echo "FAIL: the resumed run failed"; exit 1; }
grep -q "resumed from .*step_00000020.h5 at step 20" "$out_dir/second.log" || {
  cat "$out_dir/second.log"; echo "FAIL: did not resume from step 20"; exit 1; }
[ -f "$out_dir/checkpoints/step_00000060.h5" ] || { echo "FAIL: no final checkpoint"; exit 1; }
! ls "$out_dir"/checkpoints/*.tmp.* 2>/dev/null || { echo "FAIL: the killed writer's temporary file is still there"; exit 1; }

h5dump -H "$out_dir/run.h5" > "$out_dir/dump.txt" || { echo "FAIL: h5dump -H cannot read run.h5"; exit 1; }
steps="$(h5dump -d /train/step -y -w 0 "$out_dir/run.h5" | sed -n '/DATA {/,/}/p' | tr -cd '0-9,\n' | tr ',' ' ' | xargs)"
echo "history steps: $steps"
[ "$steps" = "10 20 30 40 50 60" ] || { echo "FAIL: history has a gap or a duplicate"; exit 1; }
"$BIN" inspect "$out_dir/run.h5"
echo "PASS"
