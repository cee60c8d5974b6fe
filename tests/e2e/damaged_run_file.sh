#!/usr/bin/env bash
# A damaged run.h5 does not end a run: a smoke run ended by a fault at step 45 (checkpoints up to
# 40), then, in each trial, 64 bytes of its run.h5 overwritten at a random place in the second half
# and `--resume auto`: the run must finish (step 60), with a history 10 20 ... 60 (no gap, no
# duplicate) in a run.h5 that verifies; where HDF5 saw the damage the file was set aside
# (run.h5.damaged-*) with a warning. Trials: DDPM_DAMAGE_TRIALS (4).
#   damaged_run_file.sh MPIEXEC BINARY CONFIG
set -uo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
run=(--set train.steps=60 --set train.log_every=10 --set train.checkpoint_every=10 --set run.threads=1)
fail() { echo "FAIL: $*"; exit 1; }

DDPM_FAULT=throw@45:1 "$MPIEXEC" -n 2 --oversubscribe -x DDPM_FAULT "$BIN" train "$CONFIG" "${run[@]}" \
  --set run.out_dir="$tmp/base" >"$tmp/base.log" 2>&1
[ -f "$tmp/base/checkpoints/step_00000040.h5" ] || { tail "$tmp/base.log"; fail "the base run left no checkpoint of step 40"; }

seen=0
trials="${DDPM_DAMAGE_TRIALS:-4}"
for t in $(seq "$trials"); do
  dir="$tmp/trial$t"
  cp -r "$tmp/base" "$dir"
  size=$(stat -c %s "$dir/run.h5")
  offset=$(( size / 2 + (RANDOM * 32768 + RANDOM) % (size / 2 - 64) ))
  head -c 64 /dev/urandom | dd of="$dir/run.h5" bs=1 seek="$offset" conv=notrunc status=none
  "$MPIEXEC" -n 2 --oversubscribe "$BIN" train "$CONFIG" "${run[@]}" --set run.out_dir="$dir" --resume auto \
    >"$tmp/trial$t.log" 2>&1 || { tail -5 "$tmp/trial$t.log"; fail "trial $t (64 bytes at $offset of $size): the resume exited $?"; }
  grep -q "step 60/60" "$tmp/trial$t.log" || fail "trial $t: the run did not finish"
  steps="$(h5dump -d /train/step -y -w 0 "$dir/run.h5" | sed -n '/DATA {/,/}/p' | grep -o '[0-9]\+' | xargs)"
  [ "$steps" = "10 20 30 40 50 60" ] || fail "trial $t (64 bytes at $offset): /train/step reads '$steps'"
  "$BIN" inspect --verify "$dir/run.h5" >/dev/null || fail "trial $t: the run.h5 it ended with does not verify"
  if grep -q "does not verify" "$tmp/trial$t.log"; then
    ls "$dir"/run.h5.damaged-* >/dev/null 2>&1 || fail "trial $t: nothing set aside after the warning"
    seen=$((seen + 1))
  fi
  echo "trial $t: 64 bytes at $offset of $size: $(grep -q 'does not verify' "$tmp/trial$t.log" && echo 'seen, rebuilt' || echo 'not seen by HDF5 (unused bytes)'), finished with 10..60"
done
echo "damage seen and rebuilt in $seen of $trials trials"
echo "PASS"
