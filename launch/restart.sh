# Restarts without a person, shared by launch/local.sh and launch/slurm/job.sh (sourced, not run),
# as torchrun's --max-restarts: a run that failed starts again with --resume auto from its newest
# checkpoint, up to DDPM_MAX_RESTARTS times (3), DDPM_RESTART_DELAY seconds (10) after the failure,
# each restart logged with its cause. Not restarted:
#   exit 0    the run finished
#   exit 75   stopped on a signal with a checkpoint (a person or the time limit asked for it)
#   exit 2    an error of ours in the input or the surroundings (a bad key, a folder another run
#             holds, a full disk): the same start fails the same way
#   and a run that fails the same way (exit code and error line) at the same step (the last one it
#   logged) as the failure before it: a deterministic failure is not fixed by retrying.
# Use: ddpm_restarts_init once; run an attempt with its output also in a file; on failure,
# `ddpm_restart_decision RC FILE` logs the cause and, when another attempt is due, sleeps the
# delay and returns 0 (1: do not restart; it has said why). The caller's signal traps set
# DDPM_STOP_REQUESTED=1 for a stop (Ctrl-C, SIGTERM): a stop that comes during the delay ends it,
# and no attempt follows.

ddpm_restarts_init() {
  DDPM_RESTARTS_DONE=0
  DDPM_LAST_FAILURE=""
  DDPM_STOP_REQUESTED=0
}

# The failure of an attempt in one line: "exit RC after step S: <its first error line>", S the last
# step it reached.
ddpm_failure_of() {
  local rc="$1" log="$2" plain step error
  plain="$(sed 's/\x1b\[[0-9;]*m//g' "$log" 2>/dev/null)"
  # The last step it reached: its last progress line, or the checkpoint it resumed from.
  step="$(echo "$plain" | grep -oE 'step [0-9]+/[0-9]+|resumed from .* at step [0-9]+' | tail -1 | sed -E 's/.*step ([0-9]+).*/\1/')"
  # The first error line, without its time: the root cause (the lines after it are its echoes).
  error="$(echo "$plain" | grep -m1 -E '^\[[0-9:]+\] error ' | sed 's/^\[[0-9:]*\] error //' | cut -c1-300)"
  echo "exit $rc after step ${step:-0}: ${error:-no error line (killed by a signal, or by the launcher)}"
}

ddpm_restart_decision() {
  local rc="$1" log="$2" tag="${DDPM_RESTART_TAG:-restart}" failure max="${DDPM_MAX_RESTARTS:-3}"
  local delay="${DDPM_RESTART_DELAY:-10}"
  failure="$(ddpm_failure_of "$rc" "$log")"
  case "$rc" in
    0) return 1 ;;
    75) echo "[$tag] stopped on a signal with a checkpoint: not restarted (--resume auto continues it)"; return 1 ;;
    2) echo "[$tag] $failure"
       echo "[$tag] an error in the input or the surroundings: retrying would fail the same way; not restarted"
       return 1 ;;
  esac
  if [ "$failure" = "$DDPM_LAST_FAILURE" ]; then
    echo "[$tag] failed the same way at the same step twice ($failure): a deterministic failure is not fixed by retrying; not restarted"
    return 1
  fi
  DDPM_LAST_FAILURE="$failure"
  if [ "$DDPM_RESTARTS_DONE" -ge "$max" ]; then
    echo "[$tag] $failure"
    echo "[$tag] DDPM_MAX_RESTARTS = $max restart(s) used; not restarted"
    return 1
  fi
  DDPM_RESTARTS_DONE=$((DDPM_RESTARTS_DONE + 1))
  echo "[$tag] $failure"
  echo "[$tag] restart $DDPM_RESTARTS_DONE of $max in $delay s, from the newest checkpoint (--resume auto)"
  # In the background, so that a trapped signal cuts the wait short.
  local sleeper
  sleep "$delay" &
  sleeper=$!
  wait "$sleeper"
  if [ "$DDPM_STOP_REQUESTED" = 1 ]; then
    kill "$sleeper" 2>/dev/null
    echo "[$tag] stopped during the restart delay: not restarted"
    return 1
  fi
  return 0
}

# The arguments with `--resume X` (or --resume=X) replaced by `--resume auto`, or it added.
ddpm_resume_args() {
  local skip=0 arg
  DDPM_RESUME_ARGS=()
  for arg in "$@"; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case "$arg" in --resume) skip=1 ;; --resume=*) ;; *) DDPM_RESUME_ARGS+=("$arg") ;; esac
  done
  DDPM_RESUME_ARGS+=(--resume auto)
}
