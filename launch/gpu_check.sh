#!/usr/bin/env bash
# Everything a GPU adds, checked in one call on a machine with CUDA, a compiler, CMake, ninja and
# PyTorch but no MPI, HDF5, yaml-cpp, spdlog or network (the device tool's H200).
#   launch/gpu_check.sh [--dry-run] [STAGE ...]        (default: every stage, in this order)
#   prefix  unpack the .deb files of launch/gpu_deps.sh (run it before, where apt works) into a
#           local prefix, never into /; MNIST from the same folder into data/mnist
#   build   configure and build against python3's LibTorch (torch.utils.cmake_prefix_path) and
#           the prefix
#   unit    the unit tests; the Cuda.* ones run on the GPU, the others as on any machine
#   nccl    1 rank under mpirun with run.backend: nccl, configs/smoke.yaml
#   ranks   2 ranks sharing the GPU (run.backend: mpi stages CUDA tensors through the host): the
#           CudaRanks.* MPI tests (equivalence with 1 rank, dropout, graphs) and the smoke run
#   e2e     configs/smoke.yaml end to end (train, sample, FID) with bf16 and graphs
#   bench   ddpm_dist bench configs/mnist.yaml on CUDA: global batch 128 and 1024, fp32 and bf16,
#           with and without CUDA graphs; sampling; 1000 images with 1000 DDPM steps
#   seed    the users' run, configs/mnist.yaml (the seed's 20,000 steps of batch 128, then sampling
#           and evaluation; DDPM_SEED_CONFIG=configs/mnist_seed.yaml for the seed's own recipe with
#           1000-step DDPM sampling), end to end with bf16 and graphs: its final table and wall
#           time; stopped after DDPM_SEED_TIMEOUT seconds (300), when it says how far it got
# Prints one table last. --dry-run prints each stage's commands and runs nothing.
# Environment: DDPM_GPU_DEPS (.gpu), DDPM_GPU_PREFIX (/tmp/ddpm_prefix), DDPM_GPU_BUILD (build-gpu),
# DDPM_GPU_MNIST (where MNIST is unpacked; data/mnist, which the configs name),
# DDPM_GPU_LOGS ($OUT if set, else /tmp/gpu_check), DDPM_TORCH_PREFIX (python3's), DDPM_JOBS (nproc).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(prefix build unit nccl ranks e2e bench seed)
DEPS="${DDPM_GPU_DEPS:-$ROOT/.gpu}"
PREFIX="${DDPM_GPU_PREFIX:-/tmp/ddpm_prefix}"
BUILD="${DDPM_GPU_BUILD:-$ROOT/build-gpu}"
MNIST="${DDPM_GPU_MNIST:-$ROOT/data/mnist}"
LOGS="${DDPM_GPU_LOGS:-${OUT:-/tmp/gpu_check}}"
JOBS="${DDPM_JOBS:-$(nproc)}"
BIN="$BUILD/ddpm_dist"
RUNS="$(mktemp -d /tmp/ddpm_gpu_runs.XXXX)"
mkdir -p "$LOGS"

# What the prefix needs at run time: Open MPI and PMIx relocated into it, local ranks only (no ssh).
LIB="$PREFIX/usr/lib/x86_64-linux-gnu"
export OPAL_PREFIX="$PREFIX/usr" PMIX_INSTALL_PREFIX="$LIB/pmix2" OMPI_MCA_plm=isolated
# PMIx looks for its zlib plugin where Debian installs it, finds the machine's own build there and
# warns at every start; compression is not needed on one node.
export PMIX_MCA_pcompress_base_silence_warning=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export LD_LIBRARY_PATH="$LIB:$LIB/openmpi/lib:$LIB/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$PREFIX/usr/bin:$PATH"
MPIRUN="$PREFIX/usr/bin/mpirun.openmpi"

TABLE=()  # "stage|result|seconds|figures"
row() { TABLE+=("$1|$2|$3|$4"); }

# run STAGE COMMAND...: runs (or, dry, prints) one command of a stage, its output in LOGS/STAGE.log.
run() {
  local stage="$1"
  shift
  if [ "$DRY" -eq 1 ]; then
    printf '[%s] %s\n' "$stage" "$*"
    return 0
  fi
  echo "[$stage] $*" | tee -a "$LOGS/$stage.log"
  "$@" >>"$LOGS/$stage.log" 2>&1
}

# stage NAME BODY: times a stage function and adds its row (figures from the function's FIGURES).
stage() {
  local name="$1" start rc
  FIGURES=""
  start=$(date +%s)
  if [ "$DRY" -eq 1 ]; then
    echo "== $name"
    "stage_$name" 2>/dev/null
    return 0
  fi
  "stage_$name"
  rc=$?
  row "$name" "$([ $rc -eq 0 ] && echo pass || echo "FAIL ($rc)")" "$(( $(date +%s) - start ))" "$FIGURES"
  [ $rc -eq 0 ] || tail -25 "$LOGS/$name.log"
  return $rc
}

stage_prefix() {
  local debs=("$DEPS"/debs/*.deb)
  [ "$DRY" -eq 1 ] || [ -e "${debs[0]}" ] || { echo "no .deb files in $DEPS/debs: run launch/gpu_deps.sh where apt works" >>"$LOGS/prefix.log"; return 1; }
  run prefix mkdir -p "$PREFIX" "$MNIST" || return 1
  run prefix sh -c 'for d in "$1"/*.deb; do dpkg-deb -x "$d" "$2" || exit 1; done' unpack "$DEPS/debs" "$PREFIX" || return 1
  run prefix sh -c 'for f in "$1"/*.gz; do gunzip -c "$f" > "$2/$(basename "$f" .gz)" || exit 1; done' unzip "$DEPS/mnist" "$MNIST" || return 1
  FIGURES="${#debs[@]} packages in $PREFIX"
  return 0
}

stage_build() {
  local torch_prefix="${DDPM_TORCH_PREFIX:-}" nccl_args=() site
  if [ -z "$torch_prefix" ] && [ "$DRY" -eq 1 ]; then
    torch_prefix="\$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  elif [ -z "$torch_prefix" ]; then
    torch_prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')" || return 1
  fi
  # The NCCL that python3's LibTorch loads, where it ships one; else CMake looks in the CUDA toolkit.
  site="$(python3 -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)"
  if [ -n "$site" ] && [ -f "$site/nvidia/nccl/include/nccl.h" ]; then
    nccl_args=(-DNCCL_INCLUDE_DIR="$site/nvidia/nccl/include" -DNCCL_LIBRARY="$(ls "$site"/nvidia/nccl/lib/libnccl.so* | head -1)")
  fi
  local gen=() keep=(-k)
  if command -v ninja >/dev/null; then gen=(-G Ninja); keep=(-k 0); fi
  # HDF5's compiler wrappers are turned off: one found on the machine would bring that HDF5's
  # headers, whose version check then aborts against the prefix's library.
  run build cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_prefix;$PREFIX/usr" -DCUDAToolkit_ROOT=/usr/local/cuda \
    -DMPI_CXX_COMPILER="$PREFIX/usr/bin/mpicxx.openmpi" -DMPIEXEC_EXECUTABLE="$MPIRUN" \
    -DCMAKE_INCLUDE_PATH="$PREFIX/usr/include/hdf5/serial" \
    -DHDF5_C_COMPILER_EXECUTABLE=/bin/false -DHDF5_CXX_COMPILER_EXECUTABLE=/bin/false \
    -DCMAKE_LIBRARY_PATH="$LIB/hdf5/serial" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${nccl_args[@]}" || return 1
  # Keep going: every compile error of the build in one log, not just the first.
  run build cmake --build "$BUILD" -j "$JOBS" --target ddpm_dist unit_tests -- "${keep[@]}" || return 1
  FIGURES="$(grep -m1 -o 'NCCL backend: [^ ]*' "$LOGS/build.log")"
  return 0
}

stage_unit() {
  # Several test processes at a time, each with a few threads.
  OMP_NUM_THREADS=2 run unit ctest --test-dir "$BUILD" -j 8 --timeout 300 -E '^(mpi|e2e)\.' --output-on-failure
  local rc=$?
  FIGURES="$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$LOGS/unit.log" | tail -1); Cuda.*: $(grep -c 'Test #.*Cuda\..* Passed' "$LOGS/unit.log") passed, $(grep -c 'Test #.*Cuda\..*Skipped' "$LOGS/unit.log") skipped"
  return $rc
}

stage_nccl() {
  run nccl "$MPIRUN" -np 1 "$BIN" train configs/smoke.yaml --set run.backend=nccl --set run.out_dir="$RUNS/nccl" || return 1
  grep -q "backend nccl" "$LOGS/nccl.log" || { echo "the log does not say backend nccl" >>"$LOGS/nccl.log"; return 1; }
  FIGURES="$(grep -o 'step 60/60.*img/s' "$LOGS/nccl.log" | tail -1)"
  return 0
}

stage_ranks() {
  run ranks cmake --build "$BUILD" -j "$JOBS" --target mpi_tests || return 1
  run ranks "$MPIRUN" -np 2 "$BUILD/tests/mpi_tests" --gtest_filter='CudaRanks.*' || return 1
  run ranks "$MPIRUN" -np 2 "$BIN" configs/smoke.yaml --set run.backend=mpi --set run.out_dir="$RUNS/ranks" || return 1
  grep -q "2 rank(s)" "$LOGS/ranks.log" || { echo "the log does not say 2 ranks" >>"$LOGS/ranks.log"; return 1; }
  FIGURES="$(grep -o 'graphs [01]: 2 ranks vs 1 on one GPU: [0-9.e-]*' "$LOGS/ranks.log" | sed 's/: 2 ranks vs 1 on one GPU//' | xargs)"
  return 0
}

stage_bench() {
  local rc=0 common=(--set run.out_dir="$RUNS/bench" --set sample.batch_size=1000)
  run bench "$BIN" bench configs/mnist.yaml --only matmul,conv,train,bf16,graphs,bf16_graphs,sample,sample_bf16,sample_graphs,sample_bf16_graphs "${common[@]}" || rc=1
  run bench "$BIN" bench configs/mnist.yaml --only train,bf16,graphs,bf16_graphs --set train.batch_size=1024 "${common[@]}" || rc=1
  # 1000 images x 1000 DDPM steps, each bounded so that the check keeps to its time. Every
  # command runs even when one before it failed: each adds its own rows.
  run bench timeout 100 "$BIN" bench configs/mnist.yaml --only sample_configured --set sample.precision=bf16 --set sample.cuda_graphs=true "${common[@]}" || rc=1
  run bench timeout 100 "$BIN" bench configs/mnist.yaml --only sample_configured "${common[@]}" || rc=1
  FIGURES="see the bench rows"
  return $rc
}

stage_e2e() {
  run e2e "$MPIRUN" -np 1 "$BIN" configs/smoke.yaml --set run.out_dir="$RUNS/e2e" --set train.precision=bf16 \
    --set train.cuda_graphs=true --set sample.precision=bf16 --set sample.cuda_graphs=true || return 1
  [ -f "$RUNS/e2e/run.h5" ] || { echo "no run.h5" >>"$LOGS/e2e.log"; return 1; }
  FIGURES="$(grep -E '(^| )ema +[0-9]' "$LOGS/e2e.log" | tail -1 | sed 's/.*ema /ema /' | tr -s ' ')"
  return 0
}

stage_seed() {
  local rc=0
  run seed timeout "${DDPM_SEED_TIMEOUT:-300}" "$MPIRUN" -np 1 "$BIN" "${DDPM_SEED_CONFIG:-configs/mnist.yaml}" --set run.out_dir="$RUNS/seed" \
    --set train.precision=bf16 --set train.cuda_graphs=true --set sample.precision=bf16 --set sample.cuda_graphs=true ||
    rc=1
  if [ $rc -eq 0 ]; then
    FIGURES="$(grep -E '(^| )ema +[0-9]' "$LOGS/seed.log" | tail -1 | sed 's/.*ema /ema /' | tr -s ' '); $(grep -o 'wall time:.*' "$LOGS/seed.log" | tail -1)"
  else
    FIGURES="stopped at $(grep -o 'step [0-9]*/[0-9]*' "$LOGS/seed.log" | tail -1), $(grep -o '[0-9.]* img/s' "$LOGS/seed.log" | tail -1)"
  fi
  return $rc
}

if [ "$DRY" -eq 0 ]; then
  echo "gpu_check: $(date -u +%FT%TZ), logs in $LOGS"
  nvidia-smi -L 2>&1 | head -4
fi
for s in "${STAGES[@]}"; do
  declare -F "stage_$s" >/dev/null || { echo "unknown stage $s (prefix build unit nccl ranks e2e bench seed)"; exit 2; }
  # A failed prefix or build leaves nothing for the later stages to run.
  if ! stage "$s" && { [ "$s" = prefix ] || [ "$s" = build ]; }; then break; fi
done
[ "$DRY" -eq 1 ] && exit 0

{
  echo
  echo "| stage | result | s | figures |"
  echo "|---|---|---|---|"
  for r in "${TABLE[@]}"; do echo "| ${r//|/ | } |"; done
  if [ -f "$LOGS/bench.log" ]; then
    echo
    echo "| bench (H200 as found) | value |"
    echo "|---|---|"
    sed -n 's/.*bench \([a-z0-9_]*\)=\(.*\)/| \1 | \2 |/p' "$LOGS/bench.log"
  fi
} | tee "$LOGS/table.md"
for r in "${TABLE[@]}"; do [[ "$r" == *"|FAIL"* ]] && exit 1; done
exit 0
