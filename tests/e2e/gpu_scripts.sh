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
for want in "== prefix" "== build" "== unit" "== nccl" "== ranks" "== e2e" "== bench" "torch" "run.backend=nccl" \
            "train.batch_size=1024" "sample_configured" "train.cuda_graphs=true"; do
  echo "$dry" | grep -q -- "$want" || fail "the dry run does not show '$want'"
done
echo "PASS"
