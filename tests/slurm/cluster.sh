#!/usr/bin/env bash
# A throwaway SLURM cluster on this machine, for the tests of launch/slurm/*.sbatch:
#   tests/slurm/cluster.sh start DIR    writes DIR/env (source it: SLURM_CONF and the rest) and starts
#                                       munged, slurmctld and two slurmd (nodes n1 and n2)
#   tests/slurm/cluster.sh start DIR --netns N
#                                       N nodes n1..nN, each a network, UTS and mount namespace: its
#                                       own address on a bridge (10.R.S.11, .12, ...), its own host
#                                       name and /etc/hosts (naming every node), its own slurmd;
#                                       slurmctld on the bridge's address (10.R.S.1). Ranks of
#                                       different nodes reach each other over TCP only.
#   tests/slurm/cluster.sh stop DIR     stops them by the process ids recorded in DIR/pids, then
#                                       removes the namespaces and links recorded in DIR/netns
#   tests/slurm/cluster.sh exec DIR NODE CMD...   runs CMD inside NODE's namespaces (tests: to cut
#                                       a link, `ip link set eth0 down`, or to find its processes)
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
  remove_netns
}

# Namespaces and links of a --netns cluster: deleting a namespace deletes its end of the veth pair,
# and with it the host's end.
remove_netns() {
  [ -f "$dir/netns" ] || return 0
  local kind name
  while read -r kind name; do
    case "$kind" in
      ns) ip netns pids "$name" 2>/dev/null | xargs -r kill -KILL 2>/dev/null; ip netns del "$name" 2>/dev/null ;;
      link) ip link del "$name" 2>/dev/null ;;
    esac
  done < <(tac "$dir/netns")
  rm -f "$dir/netns"
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

# Makes the bridge and, per node, a network namespace joined to it by a veth pair; records them in
# DIR/netns (removed by stop, also after a failed start). Sets CTLD_ADDR and NODE_ADDR[i].
make_netns() {
  local id=$(( $$ % 100000 )) subnet i
  # A /24 that no address of this machine is in yet.
  for _ in $(seq 50); do
    subnet="10.$((100 + RANDOM % 100)).$((RANDOM % 250))"
    ip -o addr show | grep -q " $subnet\." || break
  done
  local bridge="ddbr$id"
  ip link add "$bridge" type bridge || skip "cannot make a bridge (ip link add type bridge)"
  echo "link $bridge" >>"$dir/netns"
  { ip addr add "$subnet.1/24" dev "$bridge" && ip link set "$bridge" up; } || { stop; exit 1; }
  CTLD_ADDR="$subnet.1"
  for i in $(seq "$NODES"); do
    local ns="ddpm${id}n$i" host_end="ddv${id}n$i"
    ip netns add "$ns" || { stop; skip "cannot make a network namespace (ip netns add)"; }
    echo "ns $ns" >>"$dir/netns"
    ip link add "$host_end" type veth peer name eth0 netns "$ns" || { stop; exit 1; }
    echo "link $host_end" >>"$dir/netns"
    { ip link set "$host_end" master "$bridge" && ip link set "$host_end" up; } || { stop; exit 1; }
    { ip -n "$ns" addr add "$subnet.$((10 + i))/24" dev eth0 && ip -n "$ns" link set eth0 up &&
      ip -n "$ns" link set lo up && ip -n "$ns" route add default via "$subnet.1"; } || { stop; exit 1; }
    NODE_ADDR[$i]="$subnet.$((10 + i))"
  done
  # Each node's /etc/hosts (bind-mounted in its mount namespace): every node and the controller.
  {
    echo "127.0.0.1 localhost"
    echo "$CTLD_ADDR $(hostname -s)"
    for i in $(seq "$NODES"); do echo "${NODE_ADDR[$i]} n$i"; done
  } >"$dir/etc/hosts"
}

# NODE CMD...: CMD as node NODE's processes run: in its network namespace, with its host name and
# /etc/hosts (a UTS and a mount namespace of their own).
in_node() {
  local n="$1" ns
  shift
  ns="$(awk -v n="$n" '$1 == "ns" && $2 ~ (n "$") {print $2}' "$dir/netns" 2>/dev/null)"
  [ -n "$ns" ] || { echo "no node $n in $dir/netns" >&2; return 2; }
  # nsenter, not `ip netns exec`, which mounts a sysfs of its own (without /sys/fs/cgroup, which slurmd needs).
  nsenter --net="/run/netns/$ns" unshare --uts --mount --propagation private \
    sh -c 'hostname "$1"; mount --bind "$2" /etc/hosts; shift 2; exec "$@"' node "$n" "$dir/etc/hosts" "$@"
}

start() {
  [ "$(id -u)" -eq 0 ] || skip "the cluster needs root (slurmd starts the jobs as their user)"
  for b in munged slurmctld slurmd sbatch sinfo ss; do
    command -v "$b" >/dev/null || skip "$b is not installed (launch/setup.sh installs slurmctld slurmd slurm-client munge)"
  done
  if [ "$NETNS" = 1 ]; then
    for b in ip unshare; do command -v "$b" >/dev/null || skip "$b is not installed"; done
  fi
  stop
  rm -rf "$dir"
  local nodes=() i n
  for i in $(seq "$NODES"); do nodes+=("n$i"); done
  # Per node: spool and TmpFS (where srun's PMIx plugin makes each step's folder; two slurmd on one
  # host would otherwise both make the same one).
  mkdir -p "$dir"/{etc,munge,state,log,run}
  for n in "${nodes[@]}"; do mkdir -p "$dir/spool/$n" "$dir/tmp/$n"; done
  dir="$(cd "$dir" && pwd)"
  chmod 700 "$dir/munge"
  head -c 1024 /dev/urandom >"$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  local host ctld_port cpus node_lines="" ports=""
  host="$(hostname -s)"
  CTLD_ADDR=127.0.0.1
  [ "$NETNS" = 1 ] && make_netns
  ctld_port="$(free_port)"
  cpus="$(nproc)"
  for i in $(seq "$NODES"); do
    local port addr node_host
    port="$(free_port)"
    if [ "$NETNS" = 1 ]; then addr="${NODE_ADDR[$i]}" node_host="n$i"; else addr=127.0.0.1 node_host="$host"; fi
    node_lines+="NodeName=n$i NodeHostname=$node_host NodeAddr=$addr Port=$port CPUs=$cpus State=UNKNOWN"$'\n'
    ports+=" n$i ($addr port $port)"
  done
  cat >"$dir/etc/slurm.conf" <<CONF
ClusterName=ddpmtest
FirstJobId=$((100000 + RANDOM * 30))
SlurmctldHost=$host($CTLD_ADDR)
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
# How long a node's slurmd may be silent before the node is down and its jobs are requeued:
# ${SLURMD_TIMEOUT} s (10 with --netns, where tests lose nodes; 300 is SLURM's default).
SlurmdTimeout=$SLURMD_TIMEOUT
# slurmctld talks to every node itself, not through other nodes (a lost node must not delay the
# messages to the others).
TreeWidth=65533
${node_lines}# Up to 4 jobs share a CPU, so that the tests' jobs, which mostly wait, run side by side.
PartitionName=test Nodes=$(IFS=,; echo "${nodes[*]}") Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  cat >"$dir/env" <<ENV
export SLURM_CONF=$dir/etc/slurm.conf
ENV
  export SLURM_CONF="$dir/etc/slurm.conf"

  munged -F --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" >>"$dir/log/munged.out" 2>&1 &
  echo "munged $!" >>"$dir/pids"
  wait_for munged "$dir/log/munged.log" bash -c "munge -n -S '$dir/munge/munge.socket' | unmunge -S '$dir/munge/munge.socket'"

  slurmctld -D -c -f "$dir/etc/slurm.conf" >>"$dir/log/slurmctld.out" 2>&1 &
  echo "slurmctld $!" >>"$dir/pids"
  wait_for slurmctld "$dir/log/slurmctld.log" scontrol ping
  for n in "${nodes[@]}"; do
    if [ "$NETNS" = 1 ]; then
      in_node "$n" slurmd -D -N "$n" -f "$dir/etc/slurm.conf" >>"$dir/log/slurmd_$n.out" 2>&1 &
    else
      slurmd -D -N "$n" -f "$dir/etc/slurm.conf" >>"$dir/log/slurmd_$n.out" 2>&1 &
    fi
    echo "slurmd_$n $!" >>"$dir/pids"
  done
  wait_for "slurmd ${nodes[*]}" "$dir/log/slurmd_${nodes[-1]}.log" \
    bash -c "[ \"\$(sinfo -h -N -o '%N %t' | grep -c idle)\" = $NODES ]"
  echo "[cluster] up in $dir: slurmctld on $CTLD_ADDR port $ctld_port, nodes$ports, $cpus CPUs each$([ "$NETNS" = 1 ] && echo ", each in its own network, UTS and mount namespace")"
}

declare -A NODE_ADDR
NETNS=0
NODES=2
SLURMD_TIMEOUT=30
if [ "${3:-}" = "--netns" ]; then
  NETNS=1
  NODES="${4:-3}"
  SLURMD_TIMEOUT=10
fi

case "$cmd" in
  start) start ;;
  stop) stop ;;
  exec) shift 2; in_node "$@" ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
