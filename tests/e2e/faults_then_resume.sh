#!/usr/bin/env bash
# Every injected fault on a 2-rank job: the job ends within a bounded time (or, where the policy
# says continue, finishes), the newest complete checkpoint and run.h5 open, no temporary file
# survives the next start, and --resume auto reaches the last step with a metric history free of
# gaps and duplicates. Every case starts from one shared run of 20 steps (checkpoints at 10 and
# 20), resumed with the fault to come; it has 40 steps. Prints one table row per fault
# (docs/reliability.md).
#   faults_then_resume.sh MPIEXEC BINARY CONFIG
set -uo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
name="the shared start"
fail() { echo "FAIL [$name]: $*"; [ -f "$work/log" ] && tail -20 "$work/log"; exit 1; }

common=(--set run.threads=1 --set train.steps=40 --set train.log_every=10 --set train.checkpoint_every=10)
timeout 120 "$MPIEXEC" -n 2 --oversubscribe "$BIN" train "$CONFIG" "${common[@]}" --set train.steps=20 \
  --set run.out_dir="$work/start" >"$work/log" 2>&1 || fail "the run to step 20 failed"

# name | DDPM_FAULT | extra --set | expected end: ends (non-zero) or finishes (0) | a line the log must hold
cases=(
  "exception on rank 1|throw@25:1||ends|rank 1.*injected fault"
  "SIGKILL of rank 1|kill@25:1||ends|SIGKILL at step 25"
  "rank 1 hangs|hang@25:1|run.collective_timeout_s=5|ends|rank 0\] waited [0-9]+ s in .*all-reduce.* during training step 25"
  "SIGKILL while writing a checkpoint|kill_in_checkpoint@30:0||ends|SIGKILL at step 30"
  "SIGKILL while writing run.h5|kill_in_run_file@30:0||ends|SIGKILL at step 30"
  "disk full at a checkpoint, stop|disk_full@30:0||ends|No space left on device"
  "disk full at a checkpoint, continue|disk_full@30:0|train.on_write_error=continue|finishes|continuing \\(train.on_write_error: continue\\)"
  "disk full at run.h5, continue|disk_full_run_file@30:0|train.on_write_error=continue|finishes|metrics of step 30 are kept in memory"
)
echo "| fault | DDPM_FAULT | first run | s | newest checkpoint | after resume | history |"
echo "|---|---|---|---|---|---|---|"
for c in "${cases[@]}"; do
  IFS='|' read -r name fault extra expect pattern <<<"$c"
  dir="$work/run"
  rm -rf "$dir"
  cp -r "$work/start" "$dir"
  run=("$BIN" train "$CONFIG" "${common[@]}" --set run.out_dir="$dir" --resume auto)
  [ -n "$extra" ] && run+=(--set "$extra")
  start=$(date +%s)
  DDPM_FAULT="$fault" timeout 120 "$MPIEXEC" -n 2 --oversubscribe "${run[@]}" >"$work/log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  [ "$rc" -ne 124 ] || fail "the job hung until the 120 s timeout"
  grep -q "resumed from .*step_00000020.h5" "$work/log" || fail "did not start from the shared run's step 20"
  if [ "$expect" = ends ]; then [ "$rc" -ne 0 ] || fail "the job exited 0 despite the fault"
  else [ "$rc" -eq 0 ] || fail "the job should have finished (exit $rc)"; fi
  grep -Eq "$pattern" "$work/log" || fail "no log line matches '$pattern'"

  newest="$(ls "$dir"/checkpoints/step_*.h5 2>/dev/null | sort | tail -1)"
  [ -n "$newest" ] || fail "no checkpoint on disk"
  "$BIN" inspect "$newest" >"$work/inspect" 2>&1 && grep -q "complete" "$work/inspect" || fail "$newest does not open as complete"
  h5dump -H "$dir/run.h5" >/dev/null 2>&1 || fail "run.h5 does not open"
  kept="$(basename "$newest")"

  if [ "$expect" = ends ]; then
    timeout 120 "$MPIEXEC" -n 2 --oversubscribe "${run[@]}" >"$work/log" 2>&1 || fail "the resumed run failed"
    grep -q "resumed from .*$kept" "$work/log" || fail "did not resume from $kept"
    resumed="to step 40"
  else
    resumed="not needed"
  fi
  [ -f "$dir/checkpoints/step_00000040.h5" ] || fail "no checkpoint of step 40"
  ! ls "$dir"/run.h5.tmp.* "$dir"/checkpoints/*.tmp.* >/dev/null 2>&1 || fail "a temporary file survived"
  steps="$(h5dump -d /train/step -y -w 0 "$dir/run.h5" | sed -n '/DATA {/,/}/p' | tr -cd '0-9,\n' | tr ',' ' ' | xargs)"
  [ "$steps" = "10 20 30 40" ] || fail "history steps '$steps': a gap or a duplicate"
  echo "| $name | \`$fault\`${extra:+ + \`$extra\`} | exit $rc | $secs | $kept | $resumed | $steps |"
done
echo "PASS: ${#cases[@]} faults, no hang, no checkpoint lost"
