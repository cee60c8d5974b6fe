#!/usr/bin/env bash
# launch/slurm/multi_node.sbatch across nodes that are network namespaces (tests/slurm/cluster.sh
# start DIR --netns 3): each node its own address on a bridge, host name and slurmd, so that ranks
# of different nodes talk over TCP only. On 2 and 3 nodes, one rank each, with srun --mpi=pmix and
# with mpirun: the ranks sit on the nodes asked for, Open MPI's verbose output shows the TCP
# transport between nodes on their eth0, and the losses equal a single-node job's (2 ranks, same
# global batch) to 1e-4. Exit 77 (CTest: skipped) where the cluster cannot start.
#   tests/slurm/netns_nodes.sh BINARY
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
source "$ROOT/tests/slurm/common.sh"
start_cluster --netns 3
# A global batch that 2 and 3 ranks divide.
sed -e 's/^  batch_size: 32$/  batch_size: 48/' configs/smoke.yaml >"$work/nodes.yaml"
grep -q "^  batch_size: 48$" "$work/nodes.yaml" || fail "could not derive $work/nodes.yaml from configs/smoke.yaml"

# The launch lines and where the ranks ran, of each job.
shown='^\[slurm\]|ranks by host|^ema '
reference="$(submit --ntasks-per-node=2 "${CPU_NODE[@]}" launch/slurm/single_node.sbatch "$work/nodes.yaml")"
declare -A multi
for launcher in srun mpirun; do
  for n in 2 3; do
    # The BTL's choices, per peer, in the job's output.
    multi[$launcher$n]="$(DDPM_LAUNCHER=$launcher submit --nodes="$n" --ntasks-per-node=1 "${CPU_NODE[@]}" \
      --export=ALL,OMPI_MCA_btl_base_verbose=30 launch/slurm/multi_node.sbatch "$work/nodes.yaml")"
  done
done

completed "single_node.sbatch, 2 ranks on n1" "$shown" "$reference"
ref_losses="$(losses_of "nodes_$reference")"
for launcher in srun mpirun; do
  for n in 2 3; do
    j="${multi[$launcher$n]}"
    completed "multi_node.sbatch on $n nodes with $launcher" "$shown" "$j"
    expect "$j" "^\[slurm\] job $j \(restart 0\) on $n node\(s\): $launcher "
    # One rank per node, each node its own host (the scheduler picks which).
    placement="$(sed -e 's/\x1b\[[0-9;]*m//g' "$work/slurm-$j.out" | sed -n 's/.*ranks by host: //p' | head -1)"
    want="^n[1-3]: 0 \(local 0, cpu\); n[1-3]: 1 \(local 0, cpu\)$([ "$n" = 3 ] && echo '; n[1-3]: 2 \(local 0, cpu\)')$"
    echo "$placement" | grep -qE "$want" || fail "job $j: ranks by host '$placement'"
    [ "$(echo "$placement" | grep -o 'n[1-3]:' | sort -u | wc -l)" = "$n" ] || fail "job $j: not $n hosts in '$placement'"
    # Every rank reaches the ranks of other nodes through the TCP BTL, on the namespaces' eth0.
    expect "$j" "^\[n[1-3]:[0-9]+\] mca: bml: Using tcp btl for send to \[\[[0-9]+,[0-9]+\],1\] on node n[1-3]"
    expect "$j" "^\[n[1-3]:[0-9]+\] btl:tcp: examining interface eth0"
    other="$(sed -n 's/^\[\(n[1-3]\):[0-9]*\] mca: bml: Using \([a-z]*\) btl for send to .* on node \(n[1-3]\)$/\1 \2 \3/p' "$work/slurm-$j.out" |
      awk '$1 != $3 && $2 != "tcp"')"
    [ -z "$other" ] || fail "job $j: between nodes by another transport than TCP: $other"
    echo "    transport: $(grep -m1 -E "^\[n[1-3]:[0-9]+\] mca: bml: Using tcp btl for send to .*,1\] on node n" "$work/slurm-$j.out")"
    losses="$(losses_of "nodes_$j")"
    # The same global batch as the reference (same_losses: the tolerance's reasoning).
    same_losses "$losses" "$ref_losses" || fail "losses of job $j ($losses) differ from the single-node job's ($ref_losses)"
    echo "    losses: $losses (single node: $ref_losses)"
  done
done
echo "PASS"
