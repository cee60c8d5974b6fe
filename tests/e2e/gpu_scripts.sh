#!/usr/bin/env bash
# launch/gpu_deps.sh and launch/gpu_check.sh as far as a machine without a GPU takes them: the .deb
# download, their unpacking into a prefix, Open MPI relocated into that prefix compiling and
# running a program on two ranks without ssh, and the dry run of every stage.
#   gpu_scripts.sh           (from the repository root; needs apt and data/mnist)
set -euo pipefail
fail() { echo "FAIL: $*"; exit 1; }
bash -n launch/gpu_deps.sh || fail "bash -n launch/gpu_deps.sh"
bash -n launch/gpu_check.sh || fail "bash -n launch/gpu_check.sh"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

launch/gpu_deps.sh "$tmp/deps" | tail -3
for p in libopenmpi-dev libopenmpi3 openmpi-bin libhdf5-dev libhdf5-103-1 libyaml-cpp-dev libspdlog-dev libgtest-dev; do
  ls "$tmp"/deps/debs/"${p}"_*.deb >/dev/null 2>&1 || fail "no $p .deb"
done
ls "$tmp"/deps/debs/libc6_*.deb >/dev/null 2>&1 && fail "libc6 was downloaded: the C run-time must be the machine's"
[ "$(ls "$tmp"/deps/mnist/*.gz | wc -l)" -eq 4 ] || fail "not four MNIST files"
size_mb=$(du -sm "$tmp/deps" | cut -f1)
[ "$size_mb" -lt 60 ] || fail "$size_mb MB to carry: over what the device tool takes with the tree"

DDPM_GPU_DEPS="$tmp/deps" DDPM_GPU_PREFIX="$tmp/prefix" DDPM_GPU_MNIST="$tmp/mnist" DDPM_GPU_LOGS="$tmp/logs" \
  launch/gpu_check.sh prefix | tail -2
for f in usr/include/hdf5/serial/H5Cpp.h usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h usr/include/yaml-cpp/yaml.h \
         usr/include/spdlog/spdlog.h usr/include/CLI/CLI.hpp usr/lib/x86_64-linux-gnu/cmake/GTest/GTestConfig.cmake \
         usr/lib/x86_64-linux-gnu/hdf5/serial/libhdf5_cpp.so usr/bin/orted; do
  [ -e "$tmp/prefix/$f" ] || fail "$f is not in the prefix"
done
cmp "$tmp/mnist/t10k-labels-idx1-ubyte" data/mnist/t10k-labels-idx1-ubyte || fail "MNIST does not unpack to the original"

# The environment gpu_check.sh sets for the prefix, then a program built and run with it alone.
eval "$(sed -n '/^LIB=/,/^MPIRUN=/p' launch/gpu_check.sh | sed "s|\$PREFIX|$tmp/prefix|g")"
"$tmp/prefix/usr/bin/mpicxx.openmpi" --showme:incdirs | grep -q "$tmp/prefix" || fail "mpicxx does not point into the prefix"
cat > "$tmp/sum.cpp" <<'CPP'
#include <mpi.h>
#include <cstdio>
int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  double x = rank + 1;
  MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) std::printf("sum %g\n", x);
  MPI_Finalize();
}
CPP
"$tmp/prefix/usr/bin/mpicxx.openmpi" "$tmp/sum.cpp" -o "$tmp/sum"
ldd "$tmp/sum" | grep -q "$tmp/prefix/.*libmpi.so" || fail "the program does not load the prefix's libmpi"
out="$(timeout 60 "$MPIRUN" -np 2 --oversubscribe "$tmp/sum" 2>&1)" || fail "mpirun from the prefix: $out"
echo "$out" | grep -q "sum 3" || fail "all-reduce over 2 ranks gave: $out"

dry="$(launch/gpu_check.sh --dry-run)"
for want in "== prefix" "== build" "== unit" "== nccl" "== ranks" "== e2e" "== bench" "== seed" "torch" "run.backend=nccl" \
            "train.batch_size=1024" "sample_configured" "train.cuda_graphs=true" "-s USR1" "eval configs/mnist.yaml"; do
  echo "$dry" | grep -q -- "$want" || fail "the dry run does not show '$want'"
done
# One call of the device tool runs at most 10 minutes; the default stages must end within 8.
total="$(echo "$dry" | sed -n 's/^budget of these stages: \([0-9]*\) s$/\1/p')"
[ -n "$total" ] && [ "$total" -le 480 ] || fail "the default stages' budgets add up to '${total}' s, over 480"
sum=0
for b in $(echo "$dry" | sed -n 's/^== [a-z0-9_]* (budget \([0-9]*\) s)$/\1/p'); do sum=$((sum + b)); done
[ "$sum" -eq "$total" ] || fail "the stages' budgets ($sum s) are not the total printed ($total s)"
[ "$(echo "$dry" | grep -c '^== ')" -eq 8 ] || fail "not 8 default stages"
# --stages reruns only some; the opt-in whole seed run fits one call with prefix and build.
some="$(launch/gpu_check.sh --dry-run --stages nccl,seed)"
[ "$(echo "$some" | grep -c '^== ')" -eq 2 ] && echo "$some" | grep -q "== seed" || fail "--stages nccl,seed: $some"
full="$(launch/gpu_check.sh --dry-run --stages seed_full)"
full_s="$(echo "$full" | sed -n 's/^budget of these stages: \([0-9]*\) s$/\1/p')"
[ -n "$full_s" ] && [ "$full_s" -le 600 ] || fail "seed_full's budget '${full_s}' s is over one call's 600 s"
echo "$full" | grep -q "ddpm_dist configs/mnist.yaml" || fail "seed_full does not run configs/mnist.yaml"
launch/gpu_check.sh --dry-run --stages nope >/dev/null 2>&1 && fail "an unknown stage was accepted"

# A real stage through the prefix's mpirun, with this machine's build: its row is printed and in
# the table file as soon as it finishes. (The budget is the H200's; here, beside other tests, the
# stage gets as long as it needs.)
DDPM_BUDGET_e2e=600 DDPM_GPU_PREFIX="$tmp/prefix" DDPM_GPU_BUILD="$PWD/build" DDPM_GPU_LOGS="$tmp/logs" \
  launch/gpu_check.sh e2e >"$tmp/e2e.out" 2>&1 || { cat "$tmp/e2e.out" "$tmp/logs/e2e.log"; fail "the e2e stage on the CPU build"; }
grep -q '^| e2e | pass | [0-9]* (600) | ema ' "$tmp/logs/table.md" || { cat "$tmp/logs/table.md"; fail "no e2e row in table.md"; }
# A stage past its budget is stopped, and the table still comes back with its row: the seed stage
# (60 s of training, then an evaluation of 1000 images; far longer on this CPU) with 3 s.
start=$SECONDS
DDPM_BUDGET_seed=3 DDPM_GPU_PREFIX="$tmp/prefix" DDPM_GPU_BUILD="$PWD/build" DDPM_GPU_LOGS="$tmp/logs2" \
  launch/gpu_check.sh seed >"$tmp/seed.out" 2>&1 && fail "a stage over its budget passed"
[ $((SECONDS - start)) -le 45 ] || fail "a stage with a 3 s budget took $((SECONDS - start)) s"
grep -q '^| seed | FAIL (over its budget) | [0-9]* (3) |' "$tmp/logs2/table.md" || { cat "$tmp/seed.out"; fail "no FAIL row for the stage over its budget"; }
echo "PASS"
