#!/usr/bin/env bash
# The sbatch scripts parse, and outside SLURM print the command they would run: the launcher, the
# run folder named after the job id, threads from --cpus-per-task, and --resume auto.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fail() { echo "FAIL: $*"; exit 1; }
for f in "$ROOT"/launch/slurm/*.sbatch "$ROOT"/launch/slurm/job.sh; do bash -n "$f" || fail "$f does not parse"; done

# Expect: SCRIPT, environment (as NAME=VALUE words), arguments, then -- and the expected last line.
check() {
  local script="$1"; shift
  local env=() args=()
  while [ "$1" != "--" ]; do
    case "$1" in *=*) env+=("$1") ;; *) args+=("$1") ;; esac
    shift
  done
  local expected="$2"
  local got
  got="$(env -u SLURM_JOB_ID "${env[@]}" DDPM_ROOT="$ROOT" DDPM_BIN=ddpm_dist bash "$ROOT/launch/slurm/$script" "${args[@]}" | tail -1)"
  echo "$script ${env[*]} ${args[*]}: $got"
  [ "$got" = "$expected" ] || fail "expected: $expected"
}

check single_node.sbatch -- \
  "srun --mpi=pmix --kill-on-bad-exit=1 --cpu-bind=cores ddpm_dist configs/mnist.yaml --set run.name=mnist_dryrun --set run.threads=8 --resume auto"
check single_node.sbatch DDPM_DRY_RUN=1 SLURM_JOB_ID=4242 SLURM_CPUS_PER_TASK=6 configs/smoke.yaml -- \
  "srun --mpi=pmix --kill-on-bad-exit=1 --cpu-bind=cores ddpm_dist configs/smoke.yaml --set run.name=smoke_4242 --set run.threads=6 --resume auto"
check multi_node.sbatch DDPM_DRY_RUN=1 SLURM_JOB_ID=77 -- \
  "srun --mpi=pmix --kill-on-bad-exit=1 --cpu-bind=cores ddpm_dist configs/mnist.yaml --set run.name=mnist_77 --set run.threads=8 --resume auto"
check multi_node.sbatch DDPM_DRY_RUN=1 DDPM_MALLOC=glibc DDPM_LAUNCHER=mpirun SLURM_JOB_ID=78 SLURM_NTASKS=16 SLURM_NTASKS_PER_NODE=4 SLURM_CPUS_PER_TASK=4 -- \
  "mpirun -np 16 --map-by ppr:4:node:PE=4 --bind-to core -x NCCL_DEBUG -x NCCL_SOCKET_IFNAME -x NCCL_IB_HCA -x GLIBC_TUNABLES ddpm_dist configs/mnist.yaml --set run.name=mnist_78 --set run.threads=4 --resume auto"

# The allocator: tcmalloc preloaded where the linker cache has it (launch/setup.sh installs it),
# and passed on to mpirun's ranks; DDPM_MALLOC=glibc keeps glibc's malloc.
tcmalloc="$(bash -c "source '$ROOT/launch/allocator.sh'; echo \"\${LD_PRELOAD:-}\"")"
[ -z "$(DDPM_MALLOC=glibc bash -c "source '$ROOT/launch/allocator.sh'; echo \"\${LD_PRELOAD:-}\"")" ] ||
  fail "DDPM_MALLOC=glibc still preloads a library"
if [ -n "$tcmalloc" ]; then
  [ -e "$tcmalloc" ] && [[ "$tcmalloc" == *libtcmalloc_minimal.so.4 ]] || fail "preloads '$tcmalloc'"
  check multi_node.sbatch DDPM_DRY_RUN=1 DDPM_LAUNCHER=mpirun SLURM_JOB_ID=79 SLURM_NTASKS=8 SLURM_NTASKS_PER_NODE=4 SLURM_CPUS_PER_TASK=4 -- \
    "mpirun -np 8 --map-by ppr:4:node:PE=4 --bind-to core -x NCCL_DEBUG -x NCCL_SOCKET_IFNAME -x NCCL_IB_HCA -x GLIBC_TUNABLES -x LD_PRELOAD ddpm_dist configs/mnist.yaml --set run.name=mnist_79 --set run.threads=4 --resume auto"
else
  echo "tcmalloc not installed here: its launch line is not checked"
fi
echo "PASS"
