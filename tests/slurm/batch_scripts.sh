#!/usr/bin/env bash
# launch/slurm/*.sbatch submitted with sbatch, unchanged, to a throwaway SLURM cluster on this
# machine (tests/slurm/cluster.sh: one slurmctld, two slurmd as nodes n1 and n2), with command-line
# overrides for CPU-only nodes, as a user would:
#   1. single_node.sbatch: 2 ranks through srun --mpi=pmix run the smoke config to the end.
#   2. The time limit: --time=1 with the warning signal 15 s before it; the job stops with a
#      checkpoint, requeues itself, resumes and finishes; the history has no gap or duplicate.
#      The same when the warning comes before srun has started the ranks. When it comes after the
#      ranks have finished, the job completes without a requeue.
#   3. scancel of a running job: a complete newest checkpoint that verifies, no temporary file.
#      Before the ranks train: the job ends, and the run is not restarted.
#   4. multi_node.sbatch on two nodes, one rank each, with srun and with DDPM_LAUNCHER=mpirun: the
#      same history as case 1.
#   5. A rank SIGKILLed in the first start: the job restarts the run inside its allocation
#      (launch/restart.sh), with the cause logged, and finishes with the history of case 1.
#   6. A failure at the same step in every start: one restart, then the job fails saying why.
# All jobs are submitted at once and run side by side. Prints the key lines of each job's output. Exit 77 (CTest: skipped) where the cluster cannot start.
#   tests/slurm/batch_scripts.sh BINARY
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
source "$ROOT/tests/slurm/common.sh"
start_cluster

# Every job is submitted at once and the cluster runs them side by side (its partition shares each
# CPU among up to 4 jobs), so the test lasts about as long as its longest job, the time-limited one.
#
# 2. The time limit: one minute, the warning 15 s before. slurmctld checks time limits every 30 s
#    and sends the warning at the first check that finds less than warning + 30 s left, so between
#    15 and 45 s into each start. The run has 300 steps, ~30 s of work on 2 cores; a stand-in for
#    srun, first on the job's PATH, makes the first start a slow machine (DDPM_FAULT=slow@0: each
#    step sleeps as long again, leaving the cores to the other jobs), so that it cannot finish
#    before its warning; the starts after it run at full speed. On a much faster machine the
#    warning may come after training, in the evaluation, where the ranks end at once: the job must
#    requeue and finish either way.
sed -e '/^train:/,/^[a-z]/s/^  steps: 60$/  steps: 300/' -e 's/^  log_every: 20$/  log_every: 10/' \
  -e 's/^  checkpoint_every: 60$/  checkpoint_every: 50/' configs/smoke.yaml >"$work/limited.yaml"
grep -q "^  steps: 300$" "$work/limited.yaml" || fail "could not derive $work/limited.yaml from configs/smoke.yaml"
mkdir -p "$work/slow_first_start"
cat >"$work/slow_first_start/srun" <<SLOW
#!/usr/bin/env bash
[ "\${SLURM_RESTART_COUNT:-0}" = 0 ] && export DDPM_FAULT=slow@0
exec $(command -v srun) "\$@"
SLOW
chmod +x "$work/slow_first_start/srun"
limited="$(PATH="$work/slow_first_start:$PATH" submit --time=1 --signal=B:USR1@15 --ntasks-per-node=2 "${CPU_NODE[@]}" \
  launch/slurm/single_node.sbatch "$work/limited.yaml")"

# 2b. The warning before the launcher has started the ranks (a start that gets it at once, as
#     slurmctld does when the warning and its 30 s check interval add up to more than the limit):
#     srun drops a signal that comes before it has launched the step, so the ranks never hear of
#     it. A stand-in for srun, first on the job's PATH, makes that moment last: it swallows the
#     batch shell's SIGUSR1, then hands over to the real srun. The script must pass the warning on
#     again, so that the first start ends early (stopped in training, or at once outside it), then
#     requeue and finish.
mkdir -p "$work/held_launch"
cat >"$work/held_launch/srun" <<HELD
#!/usr/bin/env bash
if [ ! -e "$work/held_launch/done" ]; then
  touch "$work/held_launch/done"
  lost=0
  trap 'lost=1' USR1
  echo "[held srun] holding the launch until SIGUSR1"
  for _ in \$(seq 3000); do [ "\$lost" = 1 ] && break; sleep 0.1; done
  echo "[held srun] SIGUSR1 swallowed (\$lost); starting the ranks"
fi
exec $(command -v srun) "\$@"
HELD
chmod +x "$work/held_launch/srun"
early="$(PATH="$work/held_launch:$PATH" submit --ntasks-per-node=2 "${CPU_NODE[@]}" \
  launch/slurm/single_node.sbatch "$work/limited.yaml")"

# 3. scancel of a running job (SIGTERM to the batch shell and the ranks).
sed -e '/^train:/,/^[a-z]/s/^  steps: 60$/  steps: 100000/' -e 's/^  log_every: 20$/  log_every: 10/' \
  configs/smoke.yaml >"$work/cancelled.yaml"
cancelled="$(submit --ntasks-per-node=2 "${CPU_NODE[@]}" launch/slurm/single_node.sbatch "$work/cancelled.yaml")"

# 3b. scancel before the ranks train (in their start-up, or after they failed, as when SLURM ends
#     a job whose node is lost): the launcher ends with another exit than the 75 of a checkpoint
#     written on the signal; the script must not take that for a failure to restart. A stand-in
#     for srun holds the launch and ends on SIGTERM.
mkdir -p "$work/cancel_at_launch"
cat >"$work/cancel_at_launch/srun" <<CANCEL
#!/usr/bin/env bash
trap 'exit 143' TERM
echo "[starting srun] holding the launch"
for _ in \$(seq 3000); do sleep 0.1; done
exec $(command -v srun) "\$@"
CANCEL
chmod +x "$work/cancel_at_launch/srun"
cancelled_early="$(PATH="$work/cancel_at_launch:$PATH" DDPM_RESTART_DELAY=1 submit --ntasks-per-node=2 "${CPU_NODE[@]}" \
  launch/slurm/single_node.sbatch "$work/cancelled.yaml")"

# 1. One node, two ranks, the smoke config to the end.
single="$(submit --ntasks-per-node=2 "${CPU_NODE[@]}" launch/slurm/single_node.sbatch configs/smoke.yaml)"

# 2c. The warning after the ranks have finished the run (slurmctld sends it up to 30 s early, so
#     a start that ends close to the limit gets it as srun returns): a stand-in for srun runs the
#     real one, then holds until SIGUSR1. The run is complete: the job must not requeue it.
mkdir -p "$work/late_launch"
cat >"$work/late_launch/srun" <<LATE
#!/usr/bin/env bash
$(command -v srun) "\$@"
rc=\$?
late=0
trap 'late=1' USR1
echo "[late srun] the ranks ended with exit \$rc; holding until SIGUSR1"
for _ in \$(seq 3000); do [ "\$late" = 1 ] && break; sleep 0.1; done
echo "[late srun] SIGUSR1 came after the ranks had ended (\$late)"
exit \$rc
LATE
chmod +x "$work/late_launch/srun"
late="$(PATH="$work/late_launch:$PATH" submit --ntasks-per-node=2 "${CPU_NODE[@]}" \
  launch/slurm/single_node.sbatch configs/smoke.yaml)"

# 4. Two nodes, one rank each, with srun and with mpirun: the history of case 1.
multi_srun="$(DDPM_LAUNCHER=srun submit --nodes=2 --ntasks-per-node=1 "${CPU_NODE[@]}" \
  launch/slurm/multi_node.sbatch configs/smoke.yaml)"
multi_mpirun="$(DDPM_LAUNCHER=mpirun submit --nodes=2 --ntasks-per-node=1 "${CPU_NODE[@]}" \
  launch/slurm/multi_node.sbatch configs/smoke.yaml)"

# 5. The first start loses a rank at step 30 (a stand-in srun sets DDPM_FAULT for it alone); the
#    config checkpoints every 20 steps.
sed -e 's/^  checkpoint_every: 60$/  checkpoint_every: 20/' configs/smoke.yaml >"$work/restarted.yaml"
grep -q "^  checkpoint_every: 20$" "$work/restarted.yaml" || fail "could not derive $work/restarted.yaml from configs/smoke.yaml"
mkdir -p "$work/lost_rank"
cat >"$work/lost_rank/srun" <<LOST
#!/usr/bin/env bash
if [ ! -e "$work/lost_rank/done" ]; then
  touch "$work/lost_rank/done"
  export DDPM_FAULT=kill@30:1
fi
exec $(command -v srun) "\$@"
LOST
chmod +x "$work/lost_rank/srun"
lost="$(PATH="$work/lost_rank:$PATH" DDPM_RESTART_DELAY=1 submit --ntasks-per-node=2 "${CPU_NODE[@]}" \
  launch/slurm/single_node.sbatch "$work/restarted.yaml")"
# 6. Every start throws at step 30.
same="$(DDPM_FAULT=throw@30:1 DDPM_RESTART_DELAY=1 submit --ntasks-per-node=2 "${CPU_NODE[@]}" \
  launch/slurm/single_node.sbatch "$work/restarted.yaml")"

# The signals, each when its job is ready for it: SIGUSR1 to 2b's batch shell while its stand-in
# holds the launch and to 2c's once its ranks have ended, scancel of 3 once it is at step 50.
pending="early late cancelled cancelled_early"
for _ in $(seq 1500); do
  for j in $pending; do
    case "$j" in
      early) has "$early" "^\[held srun\] holding" || continue
        scancel --signal=USR1 --batch "$early" || fail "could not signal job $early" ;;
      late) has "$late" "^\[late srun\] the ranks ended" || continue
        scancel --signal=USR1 --batch "$late" || fail "could not signal job $late" ;;
      cancelled) has "$cancelled" "step 50/" || continue
        scancel "$cancelled" || fail "could not cancel job $cancelled" ;;
      cancelled_early) has "$cancelled_early" "^\[starting srun\] holding" || continue
        scancel "$cancelled_early" || fail "could not cancel job $cancelled_early" ;;
    esac
    pending="${pending/$j/}"
  done
  [ -z "${pending// /}" ] && break
  sleep 0.2
done
[ -z "${pending// /}" ] || fail "after 300 s, still waiting to signal:$pending"

# 1.
completed "1. single_node.sbatch" '^\[slurm\]|ranks by host|^weights|^ema ' "$single"
expect "$single" "^\[slurm\] job $single \(restart 0\) on 1 node\(s\): srun --mpi=pmix"
expect "$single" "ranks by host: [^;]*: 0 \(local 0, cpu\), 1 \(local 1, cpu\)$"
expect "$single" "^ema +[0-9.]+ ± [0-9.]+ "
[ -f "results/smoke_$single/run.h5" ] || fail "no run folder results/smoke_$single"
[ "$(steps_of "smoke_$single")" = "20,40,60" ] || fail "history steps '$(steps_of "smoke_$single")'"

# 2.
completed "2. --time=1 --signal=B:USR1@15" '^\[slurm\]|stopped at step|resumed from|exiting now|^ema ' "$limited"
restarts="$(restarts_of "$limited")"
echo "    restarts: $restarts"
[ "${restarts:-0}" -ge 1 ] || fail "job $limited was not requeued (Restarts=$restarts)"
expect "$limited" "^\[slurm\] (stopped before the time limit with a checkpoint|the ranks ended with exit [0-9]+ on the warning signal .*); requeueing job $limited"
# Each stop in training is followed by the script's requeue with a checkpoint.
[ "$(grep -c "stopped at step" "$work/slurm-$limited.out")" = \
  "$(grep -c "^\[slurm\] stopped before the time limit with a checkpoint" "$work/slurm-$limited.out")" ] ||
  fail "job $limited: a stop in training without the script's requeue"
expect "$limited" "^\[slurm\] job $limited \(restart 1\)"
expect "$limited" "resumed from .*step_[0-9]{8}\.h5 at step [0-9]+"
# No gap, no duplicate: every 10th step once, and once each step where a start stopped.
stops="$(sed -n 's/.*stopped at step \([0-9]*\)\/.*/\1/p' "$work/slurm-$limited.out")"
want="$({ seq 10 10 300; echo "$stops"; } | grep . | sort -n -u | paste -sd,)"
[ "$(steps_of "limited_$limited")" = "$want" ] ||
  fail "history steps of job $limited: '$(steps_of "limited_$limited")', expected '$want'"

# 2b.
completed "2b. SIGUSR1 to the batch shell before srun has started the ranks" \
  '^\[slurm\]|^\[held srun\]|exiting now|stopped at step|resumed from|^ema ' "$early"
expect "$early" "^\[held srun\] SIGUSR1 swallowed \(1\)"
expect "$early" "^\[slurm\] (stopped before the time limit with a checkpoint|the ranks ended with exit [0-9]+ on the warning signal .*); requeueing job $early"
expect "$early" "^\[slurm\] job $early \(restart 1\)"
# The first start ended early: its ranks neither trained to the end nor evaluated.
first_report="$(grep -nE '^ema ' "$work/slurm-$early.out" | head -1 | cut -d: -f1)"
restart="$(grep -n "^\[slurm\] job $early (restart 1)" "$work/slurm-$early.out" | head -1 | cut -d: -f1)"
[ -n "$first_report" ] && [ "$first_report" -gt "$restart" ] ||
  fail "job $early: the first start ran to its report (line ${first_report:-none}, the restart on line $restart): the warning never reached the ranks"

# 2c.
completed "2c. SIGUSR1 to the batch shell after the ranks have finished" '^\[slurm\]|^\[late srun\]|^ema ' "$late"
expect "$late" "^\[late srun\] the ranks ended with exit 0"
expect "$late" "^\[late srun\] SIGUSR1 came after the ranks had ended \(1\)"
restarts="$(restarts_of "$late")"
[ "${restarts:-0}" = 0 ] && ! grep -q "requeueing" "$work/slurm-$late.out" ||
  fail "job $late finished its run but was requeued (Restarts=$restarts)"

# 3.: a complete newest checkpoint that verifies, no temporary file.
s="$(wait_end "$cancelled" 120)"
echo "3. scancel, job $cancelled: $s"
show "$cancelled" '^\[slurm\]|stopped at step|checkpoint written'
[ "$s" = CANCELLED ] || fail "job $cancelled ended $s"
dir="results/cancelled_$cancelled"
newest="$(ls "$dir"/checkpoints/step_*.h5 2>/dev/null | tail -1)"
[ -n "$newest" ] || fail "no checkpoint in $dir"
"$BIN" inspect --verify "$newest" | sed 's/^/    /'
"$BIN" inspect --verify "$newest" >/dev/null || fail "$newest does not verify"
"$BIN" inspect "$newest" | grep -q "complete on" || fail "$newest is not complete"
leftover="$(find "$dir" -name '*.tmp.*')"
[ -z "$leftover" ] || fail "temporary files left: $leftover"

# 3b.: a cancelled job is not a failed run: the script does not start it again.
s="$(wait_end "$cancelled_early" 120)"
echo "3b. scancel before the ranks train, job $cancelled_early: $s"
show "$cancelled_early" '^\[slurm\]|^\[starting srun\]'
[ "$s" = CANCELLED ] || fail "job $cancelled_early ended $s"
expect "$cancelled_early" "^\[slurm\] the job was ended by SIGTERM \(scancel, .*: not restarted"
has "$cancelled_early" "^\[slurm\] restart " && fail "job $cancelled_early: the run was restarted after scancel"

# 4.
for launcher in srun mpirun; do
  multi="$multi_srun"
  [ "$launcher" = mpirun ] && multi="$multi_mpirun"
  completed "4. multi_node.sbatch with $launcher" "^\[slurm\]|ranks by host|^ema " "$multi"
  expect "$multi" "^\[slurm\] job $multi \(restart 0\) on 2 node\(s\): $launcher "
  # Each node is its own shared-memory domain for MPI, so both ranks are local rank 0.
  expect "$multi" "ranks by host: [^;]*: 0 \(local 0, cpu\), 1 \(local 0, cpu\)$"
  nodes="$(scontrol show job "$multi" | sed -n 's/^ *NodeList=\(.*\)/\1/p')"
  [ "$nodes" = "n[1-2]" ] || fail "job $multi ran on '$nodes', not on n1 and n2"
  # The same two ranks and global batch as job 1 (same_losses: the tolerance's reasoning).
  same_losses "$(losses_of "smoke_$multi")" "$(losses_of "smoke_$single")" ||
    fail "losses of job $multi ($(losses_of "smoke_$multi")) differ from job $single's ($(losses_of "smoke_$single"))"
  echo "    losses: $(losses_of "smoke_$multi") (job $single: $(losses_of "smoke_$single"))"
done

# 5.
completed "5. a rank SIGKILLed in the first start" '^\[slurm\]|resumed from|^ema ' "$lost"
expect "$lost" "^\[slurm\] exit [0-9]+ after step 20: "
expect "$lost" "^\[slurm\] restart 1 of 3 in 1 s"
expect "$lost" "resumed from .*step_00000020\.h5 at step 20"
[ "$(steps_of "restarted_$lost")" = "20,40,60" ] || fail "history steps of job $lost: '$(steps_of "restarted_$lost")'"

# 6.
s="$(wait_end "$same" 420)"
echo "6. the same failure in every start, job $same: $s"
show "$same" '^\[slurm\]'
[ "$s" = FAILED ] || fail "job $same ended $s, not FAILED"
[ "$(grep -c '^\[slurm\] restart ' "$work/slurm-$same.out")" = 1 ] || fail "job $same: not exactly one restart"
expect "$same" "^\[slurm\] failed the same way at the same step twice \(exit [0-9]+ after step 20: \[rank 1\] internal error: injected fault \(DDPM_FAULT\): throw at step 30\): a deterministic failure is not fixed by retrying; not restarted"
echo "PASS"
