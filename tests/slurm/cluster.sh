#!/usr/bin/env bash
# A throwaway SLURM cluster on this machine, for the tests of launch/slurm/*.sbatch:
#   tests/slurm/cluster.sh start DIR    writes DIR/env (source it: SLURM_CONF and the rest) and starts
#                                       munged, slurmctld and two slurmd (nodes n1 and n2)
#   tests/slurm/cluster.sh stop DIR     stops them by the process ids recorded in DIR/pids
# Everything lives in DIR: slurm.conf (found through SLURM_CONF), munge's key and socket
# (AuthInfo=socket=...), spool, state, logs; the ports are free ones picked at start. Nothing is
# written to the system's SLURM or munge configuration, and nothing is stopped by name.
# Needs the Debian packages slurmctld, slurmd, slurm-client and munge, and root (slurmd starts jobs
# as their user). Exit 77 (skip) when something this machine lacks stops it, with the reason.
set -uo pipefail
cmd="${1:-}" dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
skip() { echo "SKIP: $*"; exit 77; }

stop() {
  [ -f "$dir/pids" ] || return 0
  # Jobs first: cancelled, then up to 20 s for them to end while the daemons still run.
  if SLURM_CONF="$dir/etc/slurm.conf" scancel --quiet --user="$(id -un)" 2>/dev/null; then
    for _ in $(seq 40); do
      [ -z "$(SLURM_CONF="$dir/etc/slurm.conf" squeue -h 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  # Daemons last started first stopped; SIGTERM, then SIGKILL for what is left after 10 s.
  local pids
  pids="$(tac "$dir/pids" | awk '{print $2}')"
  for p in $pids; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 100); do
    local alive=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  # A job step's slurmstepd outlives slurmd (it is reparented to init), and so may a job's
  # processes: those of this cluster are found by the SLURM_CONF in their environment.
  local proc
  for proc in /proc/[0-9]*; do
    [ "${proc#/proc/}" = $$ ] && continue  # this script, started with SLURM_CONF by its caller
    grep -qzx "SLURM_CONF=$dir/etc/slurm.conf" "$proc/environ" 2>/dev/null && kill -KILL "${proc#/proc/}" 2>/dev/null
  done
  rm -f "$dir/pids"
}

# A TCP port nobody listens on, not handed out before in this start.
free_port() {
  local port
  while true; do
    port=$((20000 + RANDOM % 20000))
    grep -qw "$port" "$dir/ports" 2>/dev/null && continue
    ss -Htln "sport = :$port" 2>/dev/null | grep -q . && continue
    echo "$port" >>"$dir/ports"
    echo "$port"
    return
  done
}

# Waits until `check` succeeds (up to 30 s); prints the daemon's log and fails otherwise.
wait_for() {
  local what="$1" log="$2"
  shift 2
  for _ in $(seq 300); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "FAIL: $what did not come up; the end of $log:"
  tail -20 "$log"
  stop
  exit 1
}

start() {
  [ "$(id -u)" -eq 0 ] || skip "the cluster needs root (slurmd starts the jobs as their user)"
  for b in munged slurmctld slurmd sbatch sinfo ss; do
    command -v "$b" >/dev/null || skip "$b is not installed (launch/setup.sh installs slurmctld slurmd slurm-client munge)"
  done
  stop
  rm -rf "$dir"
  # Per node: spool and TmpFS (where srun's PMIx plugin makes each step's folder; two slurmd on one
  # host would otherwise both make the same one).
  mkdir -p "$dir"/{etc,munge,state,log,run} "$dir"/spool/{n1,n2} "$dir"/tmp/{n1,n2}
  dir="$(cd "$dir" && pwd)"
  chmod 700 "$dir/munge"
  head -c 1024 /dev/urandom >"$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  local host ctld_port n1_port n2_port
  host="$(hostname -s)"
  ctld_port="$(free_port)" n1_port="$(free_port)" n2_port="$(free_port)"
  local cpus
  cpus="$(nproc)"
  cat >"$dir/etc/slurm.conf" <<EOF
ClusterName=ddpmtest
FirstJobId=$((100000 + RANDOM * 30))
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: also how long a requeued job waits before it may start again (120 s by default).
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
TmpFS=$dir/tmp/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd_%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd_%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
SchedulerType=sched/backfill
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=$n1_port CPUs=$cpus State=UNKNOWN
NodeName=n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=$n2_port CPUs=$cpus State=UNKNOWN
# Up to 4 jobs share a CPU, so that the tests' jobs, which mostly wait, run side by side.
PartitionName=test Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
  cat >"$dir/env" <<EOF
export SLURM_CONF=$dir/etc/slurm.conf
EOF
  export SLURM_CONF="$dir/etc/slurm.conf"

  munged -F --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" >>"$dir/log/munged.out" 2>&1 &
  echo "munged $!" >>"$dir/pids"
  wait_for munged "$dir/log/munged.log" bash -c "munge -n -S '$dir/munge/munge.socket' | unmunge -S '$dir/munge/munge.socket'"

  slurmctld -D -c -f "$dir/etc/slurm.conf" >>"$dir/log/slurmctld.out" 2>&1 &
  echo "slurmctld $!" >>"$dir/pids"
  wait_for slurmctld "$dir/log/slurmctld.log" scontrol ping
  for n in n1 n2; do
    slurmd -D -N "$n" -f "$dir/etc/slurm.conf" >>"$dir/log/slurmd_$n.out" 2>&1 &
    echo "slurmd_$n $!" >>"$dir/pids"
  done
  wait_for "slurmd n1 and n2" "$dir/log/slurmd_n2.log" \
    bash -c "[ \"\$(sinfo -h -N -o '%N %t' | grep -c idle)\" = 2 ]"
  echo "[cluster] up in $dir: slurmctld on port $ctld_port, nodes n1 (port $n1_port) and n2 (port $n2_port), $cpus CPUs each"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
