#!/usr/bin/env bash
# A lost node and a cut link in the middle of 3-node jobs (launch/slurm/multi_node.sbatch, srun,
# one rank per node) on a namespace cluster of 6 nodes (tests/slurm/cluster.sh --netns 6). Each
# round runs two jobs side by side on nodes of their own, with a fault at a random moment after
# step 30 to 70 of 100 (a log line every 10 steps, checkpoints every 20):
#   crash  on n1-n3: every process of n3 SIGKILLed (its slurmd too)
#   cut    on n4-n6: n6's link set down (its ranks hang, they do not die)
# The crashed node stays away until SLURM has marked it down (SlurmdTimeout, 10 s in this cluster),
# then comes back as after a reboot (its slurmd started again); SLURM requeues the job on the node
# failure and starts it again on its nodes. The cut link comes back once the ranks have said why
# they stopped (a partition shorter than SlurmdTimeout: the node is never marked down), and the
# script restarts the run inside its allocation. Each trial: a line naming the rank, the host, the
# operation and the step within run.collective_timeout_s (10 s) plus 10 s; the run resumes from its
# newest checkpoint and completes; its history is 10, 20, ..., 100 once each, and its losses equal
# an uninterrupted run's (2 ranks on n1, run beside the first round) to 1e-4. Prints a row per
# trial (the fault table of docs/launch.md). Exit 77 (CTest: skipped) where the cluster cannot start.
#   tests/slurm/node_faults.sh BINARY [ROUNDS]     (ROUNDS of both faults; 1, what the suite runs)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
ROUNDS="${2:-1}"
# The message's margin past the timeout: the survivors reach the all-reduce within a step (up to
# ~1 s with 8 ranks on 2 cores), the watchdog looks once a second, the line travels through srun.
TIMEOUT_S=10 MARGIN_S=10
source "$ROOT/tests/slurm/common.sh"
start_cluster --netns 6
export DDPM_RESTART_DELAY=5
sed -e 's/^  batch_size: 32$/  batch_size: 48/' -e 's/^  steps: 60$/  steps: 100/' -e 's/^  log_every: 20$/  log_every: 10/' \
  -e 's/^  checkpoint_every: 60$/  checkpoint_every: 20/' -e "s/^  seed: 1$/  seed: 1\n  collective_timeout_s: $TIMEOUT_S/" \
  configs/smoke.yaml >"$work/faults.yaml"
grep -q "collective_timeout_s: $TIMEOUT_S" "$work/faults.yaml" && grep -q "^  steps: 100$" "$work/faults.yaml" ||
  fail "could not derive $work/faults.yaml from configs/smoke.yaml"
ns_of() { awk -v n="$1" '$1 == "ns" && $2 ~ (n "$") {print $2}' "$work/cluster/netns"; }
plain() { sed 's/\x1b\[[0-9;]*m//g' "$work/slurm-$1.out" 2>/dev/null; }

# trial FAULT JOB NODE: waits for JOB to reach a random step, does FAULT to NODE, brings the node
# back (a crashed node once SLURM has marked it down, a cut link once the message is out), waits for
# the job's end; writes what it saw to $work/trial-JOB (seconds from the fault: the message, the
# node down, the node back, the job's end).
trial() {
  local fault="$1" j="$2" node="$3" at t0 msg="" t_msg=- t_down=- t_back s
  # After the log line of step 30, 40, ..., 70, 0 to 3 s later (about 0 to 9 steps under this load).
  at=$((30 + 10 * (RANDOM % 5)))
  for _ in $(seq 3000); do plain "$j" | grep -q "step $at/" && break; sleep 0.1; done
  sleep "$((RANDOM % 30 / 10)).$((RANDOM % 10))"
  t0=$SECONDS
  if [ "$fault" = crash ]; then
    ip netns pids "$(ns_of "$node")" | xargs -r kill -KILL
  else
    ip -n "$(ns_of "$node")" link set eth0 down
  fi
  for _ in $(seq 1200); do
    if [ "$t_msg" = - ]; then
      msg="$(plain "$j" | grep -m1 -oE "\[rank [0-9]+\] waited [0-9]+ s in .* during training step [0-9]+ on host n[1-6] |rank [0-9]+ on host n[1-6], in .* during training step [0-9]+")"
      [ -n "$msg" ] && t_msg=$((SECONDS - t0))
    fi
    [ "$t_down" = - ] && sinfo -h -n "$node" -o %T | grep -q '^down' && t_down=$((SECONDS - t0))
    [ "$t_msg" != - ] && { [ "$fault" = cut ] || [ "$t_down" != - ]; } && break
    sleep 0.1
  done
  if [ "$fault" = crash ]; then
    # A crashed node comes back as after a reboot: its /tmp (SLURM's TmpFS) empty.
    rm -rf "${work:?}/cluster/tmp/$node"/*
    "$ROOT/tests/slurm/cluster.sh" exec "$work/cluster" "$node" slurmd -D -N "$node" -f "$SLURM_CONF" \
      >>"$work/cluster/log/slurmd_$node.out" 2>&1 &
    echo "slurmd_$node $!" >>"$work/cluster/pids"
  else
    ip -n "$(ns_of "$node")" link set eth0 up
  fi
  t_back=$((SECONDS - t0))
  s="$(wait_end "$j" 300)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fault" "$j" "$at" "$t_msg" "$t_down" "$t_back" \
    "$((SECONDS - t0))" "$s" "$(restarts_of "$j")" "$(plain "$j" | grep -c '^\[slurm\] restart ')" \
    "$(plain "$j" | sed -n 's/.*resumed from .* at step \([0-9]*\) .*/\1/p' | tail -1)" "$(echo "${msg:-none}" | sed 's/ $//')" >"$work/trial-$j"
}

submit_faults() {
  DDPM_LAUNCHER=srun submit --nodes=3 --nodelist="$1" --ntasks-per-node=1 "${CPU_NODE[@]}" \
    launch/slurm/multi_node.sbatch "$work/faults.yaml"
}
reference="$(submit --nodes=1 --nodelist=n1 --ntasks-per-node=2 "${CPU_NODE[@]}" launch/slurm/single_node.sbatch "$work/faults.yaml")"
jobs=()
for r in $(seq "$ROUNDS"); do
  crash="$(submit_faults 'n[1-3]')"
  cut="$(submit_faults 'n[4-6]')"
  trial crash "$crash" n3 &
  trial cut "$cut" n6 &
  wait
  jobs+=("$crash" "$cut")
  echo "round $r of $ROUNDS: jobs $crash (crash of n3) and $cut (cut of n6) ended"
  # Now, while SLURM still knows the job (MinJobAge).
  if [ "$r" = 1 ]; then
    [ "$(wait_end "$reference" 600)" = COMPLETED ] || fail "the uninterrupted job $reference did not complete"
    ref_losses="$(losses_of "faults_$reference")"
  fi
done

echo "| fault | job | after step | message after | node down after | back after | completed after | state | requeues (SLURM) | restarts (script) | resumed from | message |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
bad=""
for j in "${jobs[@]}"; do
  IFS=$'\t' read -r fault _ at t_msg t_down t_back t_all s requeues restarts resumed msg <"$work/trial-$j"
  echo "| $fault | $j | $at | ${t_msg} s | ${t_down} s | ${t_back} s | ${t_all} s | $s | $requeues | $restarts | ${resumed:-none} | \`$msg\` |"
  why=""
  [ "$s" = COMPLETED ] || why+=" ended $s;"
  [ "$t_msg" != - ] && [ "$t_msg" -le $((TIMEOUT_S + MARGIN_S)) ] || why+=" no message naming rank, host, operation and step within $((TIMEOUT_S + MARGIN_S)) s;"
  [ "$(steps_of "faults_$j")" = "$(seq -s, 10 10 100)" ] || why+=" history steps $(steps_of "faults_$j");"
  same_losses "$(losses_of "faults_$j")" "$ref_losses" || why+=" losses differ from the uninterrupted run's;"
  [ -z "$why" ] || bad+=$'\n'"job $j ($fault):$why"
done
[ -z "$bad" ] || fail "$bad"
echo "PASS"
