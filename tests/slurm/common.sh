# What the tests of launch/slurm/*.sbatch share, sourced by tests/slurm/*.sh after they set
# ROOT (the repository) and BIN (the binary under test):
#   start_cluster [--netns N]   a throwaway cluster (tests/slurm/cluster.sh) in a temporary folder
#                               ($work), stopped and removed on exit with the run folders the jobs
#                               made; exit 77 (CTest: skipped) where it cannot start
#   submit SBATCH_ARGS... SCRIPT CONFIG   sbatch; prints the job id; the run folder is
#                               results/<config's name>_<job id>, its output $work/slurm-<id>.out
#   state, wait_end, completed, show, has, expect, values_of, steps_of, losses_of, same_losses,
#   restarts_of                 (each described where it is defined)
# DDPM_TEST_KEEP=DIR keeps the jobs' outputs and the cluster's logs in DIR (for a failure's story).
# shellcheck shell=bash
work="$(mktemp -d)"
cleanup() {
  if [ -n "${DDPM_TEST_KEEP:-}" ]; then
    mkdir -p "$DDPM_TEST_KEEP" && cp -r "$work"/slurm-*.out "$work/cluster/log" "$DDPM_TEST_KEEP"/ 2>/dev/null
  fi
  "$ROOT/tests/slurm/cluster.sh" stop "$work/cluster"
  [ -f "$work/runs" ] && while read -r r; do rm -rf "${ROOT:?}/results/$r"; done <"$work/runs"
  rm -rf "$work"
}
trap cleanup EXIT
# The end of every job's output (without Open MPI's verbose transport lines and colours) and of the
# cluster's logs.
fail() {
  echo "FAIL: $*"
  for f in "$work"/slurm-*.out; do
    [ -f "$f" ] && { echo "--- end of $f"; sed 's/\x1b\[[0-9;]*m//g' "$f" | grep -v 'btl\|mca:' | tail -15; }
  done
  echo "--- end of the cluster's logs"
  tail -n 8 "$work"/cluster/log/*.log 2>/dev/null
  exit 1
}

start_cluster() {
  "$ROOT/tests/slurm/cluster.sh" start "$work/cluster" "$@"
  local rc=$?
  [ "$rc" -eq 77 ] && exit 77
  [ "$rc" -eq 0 ] || fail "the cluster did not start"
  # shellcheck disable=SC1091
  source "$work/cluster/env"
  cd "$ROOT" || exit 1
  # sbatch passes this environment to the jobs: the binary under test, and mpirun's consent to root.
  export DDPM_BIN="$BIN" DDPM_ROOT="$ROOT" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
}
# sbatch's resources for CPU-only nodes, as a user without GPUs overrides the scripts' defaults.
CPU_NODE=(--cpus-per-task=1 --gpus-per-node=0)

submit() {
  local config="${*: -1}" jid
  jid="$(sbatch --parsable --output="$work/slurm-%j.out" "$@")" || fail "sbatch $*"
  echo "$(basename "$config" .yaml)_$jid" >>"$work/runs"
  echo "$jid"
}
state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
# How often SLURM requeued JOB.
restarts_of() { scontrol show job "$1" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p'; }
# wait_end JOB SECONDS: waits for a final state and prints it.
wait_end() {
  local s
  for _ in $(seq $(($2 * 2))); do
    s="$(state "$1")"
    case "$s" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
      echo "$s"
      return
      ;;
    esac
    sleep 0.5
  done
  echo "still ${s:-unknown} after $2 s"
}
# show JOB PATTERN: the output's lines that match (the key lines of a closing note).
show() { grep -E -- "$2" "$work/slurm-$1.out" | sed -e 's/\x1b\[[0-9;]*m//g' | cut -c1-220 | sed 's/^/    /'; }
# completed LABEL PATTERN JOB: waits for JOB's end (up to 7 minutes), prints its final state and
# the output's lines that match PATTERN; the job must complete.
completed() {
  local s
  s="$(wait_end "$3" 420)"
  echo "$1, job $3: $s"
  show "$3" "$2"
  [ "$s" = COMPLETED ] || fail "job $3 ended $s"
}
has() { grep -qE -- "$2" "$work/slurm-$1.out" 2>/dev/null; }
expect() { has "$1" "$2" || fail "job $1: no line matches '$2'"; }
# A dataset of a run's run.h5 as "v1,v2,...": the first DATA block of h5dump (the attributes follow).
values_of() { h5dump -d "$2" -y -w 0 -m %.9g "$ROOT/results/$1/run.h5" | awk '/DATA \{/{on=1; next} on && /\}/{exit} on' | tr -d ' \n'; }
steps_of() { values_of "$1" /train/step; }
losses_of() { values_of "$1" /train/loss; }
# same_losses A B: two histories' losses ("v1,v2,...") agree to 1e-4 relative. Runs with the same
# global batch train the same up to the order of float32 sums in the reductions (another world
# size, another transport): ~1e-7 relative per step, grown over a few hundred steps. 1e-4 holds
# that and still tells a missed gradient average or a lost step (~1e-2).
same_losses() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, ","); m = split(b, y, ",")
    if (n != m || n == 0) exit 1
    for (i = 1; i <= n; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > 1e-4 * y[i]) exit 1 }
  }'
}
