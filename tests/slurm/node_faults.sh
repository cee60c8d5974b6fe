#!/usr/bin/env bash
# A lost node and a cut link in the middle of a 3-node job (launch/slurm/multi_node.sbatch, srun,
# one rank per node) on the namespace cluster (tests/slurm/cluster.sh --netns 3):
#   crash  every process of node n3 SIGKILLed (its slurmd too), the node started again 20 s later
#   cut    n3's link set down (its ranks hang, they do not die), up again 20 s later
# at a random step between 40 and 120 of 200. Each trial: the first start ends within
# run.collective_timeout_s (10 s) plus a margin with a line naming the rank, the host, the
# operation and the step; the job comes back (the script's restart, or SLURM's requeue on the node
# failure) after the node returns, resumes from its newest checkpoint and completes; the history
# is 10, 20, ..., 200 once each, and its losses equal an uninterrupted run's to 1e-4.
#   tests/slurm/node_faults.sh BINARY [TRIALS]     (TRIALS of each fault; 1)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
TRIALS="${2:-1}"
work="$(mktemp -d)"
cleanup() {
  "$ROOT/tests/slurm/cluster.sh" stop "$work/cluster"
  [ -f "$work/runs" ] && while read -r r; do rm -rf "${ROOT:?}/results/$r"; done <"$work/runs"
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in "$work"/slurm-*.out; do [ -f "$f" ] && { echo "--- end of $f"; sed 's/\x1b\[[0-9;]*m//g' "$f" | grep -v 'btl\|mca:' | tail -20; }; done
  exit 1
}
"$ROOT/tests/slurm/cluster.sh" start "$work/cluster" --netns 3
rc=$?
[ "$rc" -eq 77 ] && exit 77
[ "$rc" -eq 0 ] || fail "the cluster did not start"
source "$work/cluster/env"
cd "$ROOT" || exit 1
export DDPM_BIN="$BIN" DDPM_ROOT="$ROOT" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 DDPM_RESTART_DELAY=5
sed -e 's/^  batch_size: 32$/  batch_size: 48/' -e 's/^  steps: 60$/  steps: 200/' -e 's/^  log_every: 20$/  log_every: 10/' \
  -e 's/^  checkpoint_every: 60$/  checkpoint_every: 20/' -e 's/^  seed: 1$/  seed: 1\n  collective_timeout_s: 10/' \
  configs/smoke.yaml >"$work/faults.yaml"
grep -q "collective_timeout_s: 10" "$work/faults.yaml" && grep -q "^  steps: 200$" "$work/faults.yaml" ||
  fail "could not derive $work/faults.yaml from configs/smoke.yaml"
submit() {
  local jid
  jid="$(DDPM_LAUNCHER=srun sbatch --parsable --output="$work/slurm-%j.out" --nodes=3 --ntasks-per-node=1 \
    --cpus-per-task=1 --gpus-per-node=0 launch/slurm/multi_node.sbatch "$work/faults.yaml")" || fail "sbatch"
  echo "faults_$jid" >>"$work/runs"
  echo "$jid"
}
state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
wait_end() {
  for _ in $(seq 1200); do
    case "$(state "$1")" in COMPLETED | FAILED | CANCELLED | TIMEOUT) break ;; esac
    sleep 0.5
  done
  state "$1"
}
values_of() { h5dump -d "$2" -y -w 0 -m %.9g "$ROOT/results/$1/run.h5" | awk '/DATA \{/{on=1; next} on && /\}/{exit} on' | tr -d ' \n'; }
n3_ns() { awk '$1 == "ns" && $2 ~ /n3$/ {print $2}' "$work/cluster/netns"; }

reference="$(submit)"
[ "$(wait_end "$reference")" = COMPLETED ] || fail "the uninterrupted job $reference did not complete"
ref_losses="$(values_of "faults_$reference" /train/loss)"
echo "uninterrupted, job $reference: losses ${ref_losses:0:60}..."

for fault in crash cut; do
  for t in $(seq "$TRIALS"); do
    at=$((40 + RANDOM % 81))
    j="$(submit)"
    out="$work/slurm-$j.out"
    for _ in $(seq 1200); do grep -q "step $(( (at + 9) / 10 * 10 ))/" "$out" 2>/dev/null && break; sleep 0.1; done
    start=$SECONDS
    if [ "$fault" = crash ]; then
      ip netns pids "$(n3_ns)" | xargs -r kill -KILL
    else
      ip -n "$(n3_ns)" link set eth0 down
    fi
    # The first start ends: the watchdog's line or a failed collective's, naming rank, host, op, step.
    for _ in $(seq 600); do
      grep -qE "^\[slurm\] (exit|restart)|CANCELLED AT" "$out" && break
      sleep 0.1
    done
    ended=$((SECONDS - start))
    line="$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -m1 -E "waited [0-9]+ s in .* during training step [0-9]+ on host n[1-3]|rank [0-9] on host n[1-3], in .* during training step [0-9]+" | cut -c1-200)"
    sleep 20
    if [ "$fault" = crash ]; then
      "$ROOT/tests/slurm/cluster.sh" exec "$work/cluster" n3 slurmd -D -N n3 -f "$SLURM_CONF" >>"$work/cluster/log/slurmd_n3.out" 2>&1 &
      echo "slurmd_n3 $!" >>"$work/cluster/pids"
    else
      ip -n "$(n3_ns)" link set eth0 up
    fi
    s="$(wait_end "$j")"
    steps="$(values_of "faults_$j" /train/step)"
    echo "$fault at step ~$at, job $j: first start ended after ${ended} s; $s; restarts $(scontrol show job "$j" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p') (SLURM), $(grep -c '^\[slurm\] restart ' "$out") (script); ${line:-no line naming the step}"
    [ "$s" = COMPLETED ] || fail "job $j ended $s"
    [ "$ended" -le 45 ] || fail "job $j: the first start took ${ended} s to end"
    [ -n "$line" ] || fail "job $j: no line naming the rank, host, operation and step"
    [ "$steps" = "$(seq -s, 10 10 200)" ] || fail "job $j: history steps $steps"
    awk -v a="$(values_of "faults_$j" /train/loss)" -v b="$ref_losses" 'BEGIN {
      n = split(a, x, ","); m = split(b, y, ",")
      if (n != m || n == 0) exit 1
      for (i = 1; i <= n; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > 1e-4 * y[i]) exit 1 }
    }' || fail "job $j: losses differ from the uninterrupted run's"
  done
done
echo "PASS"
