# Shared by the sbatch scripts (sourced, not run): the run folder named after the job, automatic
# resume, the warning signal passed on to the ranks, a requeue when the time limit stops the run,
# and restarts of a run that failed (launch/restart.sh: up to DDPM_MAX_RESTARTS times, 3, after
# DDPM_RESTART_DELAY seconds, 10; not a deterministic failure) inside the same allocation.
#
# Outside a SLURM job, or with DDPM_DRY_RUN=1, it prints the command it would run and exits 0.
#
# The caller sets CONFIG (the YAML file), THREADS (intra-op threads per rank) and LAUNCH (an array:
# the launcher and its flags, to which the ddpm_dist command line is appended).

# NCCL across nodes: which network interface and InfiniBand adapters to use depends on the
# cluster; set them in the environment before sbatch (sbatch passes its environment on):
#   NCCL_SOCKET_IFNAME=ib0   the interface for NCCL's bootstrap and socket transport
#   NCCL_IB_HCA=mlx5_0       the InfiniBand adapters (NCCL_IB_DISABLE=1 forces sockets)
#   NCCL_DEBUG=INFO          which transport each ring uses (WARN by default here)
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
source "${DDPM_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}/launch/allocator.sh"
source "${DDPM_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}/launch/restart.sh"

ddpm_run_job() {
  local root="${DDPM_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}"
  local job="${SLURM_JOB_ID:-dryrun}"
  local name
  name="$(basename "$CONFIG" .yaml)_${job}"
  local bin="${DDPM_BIN:-$(command -v ddpm_dist || echo "$root/build/ddpm_dist")}"
  # The same command on the first start and on every requeue: --resume auto starts afresh when
  # the run has no checkpoint yet.
  local cmd=("${LAUNCH[@]}" "$bin" "$CONFIG" --set "run.name=$name" --set "run.threads=$THREADS" --resume auto)
  if [ -z "${SLURM_JOB_ID:-}" ] || [ "${DDPM_DRY_RUN:-0}" = 1 ]; then
    echo "[slurm] dry run (not inside a SLURM job, or DDPM_DRY_RUN=1); the job would run, in $root:"
    echo "${cmd[*]}"
    return 0
  fi
  cd "$root" || return 1
  echo "[slurm] job $job (restart ${SLURM_RESTART_COUNT:-0}) on $SLURM_JOB_NUM_NODES node(s): ${cmd[*]}"
  echo "[slurm] results: $root/results/$name/"

  # SLURM sends SIGUSR1 to this shell (--signal=B:USR1@120) before the time limit; the ranks get
  # it from here, stop after their step, write a checkpoint and exit 75 (EX_TEMPFAIL: stopped
  # before the end); then the job requeues itself and the next start resumes. srun and mpirun
  # drop a signal that comes before they have started the ranks, so after the warning it is
  # passed on again every 10 s until the launcher ends (a rank that is already stopping ignores it).
  # SIGTERM is SLURM ending the job (scancel, or a lost node: SLURM requeues such a job itself):
  # whatever the ranks' exit then, it is not a failure to restart.
  local stop_signal=0 resend_at=0 launcher_pid= rc attempt_log
  ddpm_restarts_init
  trap 'stop_signal=1; resend_at=$((SECONDS + 10)); [ -n "$launcher_pid" ] && kill -USR1 "$launcher_pid" 2>/dev/null' USR1
  trap 'stop_signal=0; DDPM_STOP_REQUESTED=1; [ -n "$launcher_pid" ] && kill -TERM "$launcher_pid" 2>/dev/null' TERM
  attempt_log="$(mktemp "${TMPDIR:-/tmp}/ddpm_slurm_attempt.XXXXXX")"
  DDPM_RESTART_TAG=slurm
  while :; do
    # Each attempt's output also goes to a file, for the cause of a failure.
    "${cmd[@]}" > >(tee "$attempt_log") 2>&1 &
    launcher_pid=$!
    # Polled rather than waited for, so that the resends happen; a trap cuts the sleep short.
    while kill -0 "$launcher_pid" 2>/dev/null; do
      sleep 1 &
      wait $!
      if [ "$stop_signal" = 1 ] && [ "$SECONDS" -ge "$resend_at" ]; then
        kill -USR1 "$launcher_pid" 2>/dev/null
        resend_at=$((SECONDS + 10))
      fi
    done
    wait "$launcher_pid"
    rc=$?
    launcher_pid=
    # After the warning every way the ranks end keeps the checkpoints on disk: in training they stop
    # with one (exit 75); outside it (start-up, sampling, evaluation), or before they could handle
    # the signal, they end at once. Either way the next start continues from the newest. Exit 0
    # means the run finished (the warning came as the ranks ended): nothing is left to requeue.
    if [ "$stop_signal" = 1 ] && [ "$rc" -ne 0 ]; then
      rm -f "$attempt_log"
      if [ "$rc" -eq 75 ]; then
        echo "[slurm] stopped before the time limit with a checkpoint; requeueing job $job"
      else
        echo "[slurm] the ranks ended with exit $rc on the warning signal (outside training, where they stop at once); the checkpoints on disk are kept; requeueing job $job"
      fi
      scontrol requeue "$job" && return 0
      return "$rc"
    fi
    [ "$rc" -eq 0 ] && break
    if [ "$DDPM_STOP_REQUESTED" = 1 ]; then
      echo "[slurm] the job was ended by SIGTERM (scancel, or SLURM on a lost node: it requeues the job, and the next start resumes): not restarted"
      break
    fi
    ddpm_restart_decision "$rc" "$attempt_log" || break
  done
  rm -f "$attempt_log"
  return "$rc"
}
