#!/usr/bin/env bash
# Everything a GPU adds, checked in one call of at most 8 minutes on a machine with CUDA, a
# compiler, CMake, ninja and PyTorch but no MPI, HDF5, yaml-cpp, spdlog or network (the device
# tool's H200).
#   launch/gpu_check.sh [--dry-run] [--stages a,b,...] [STAGE ...]   (default: the stages below, in order)
#   prefix  unpack the .deb files of launch/gpu_deps.sh (run it before, where apt works) into a
#           local prefix, never into /; MNIST from the same folder into data/mnist
#   build   configure and build ddpm_dist and the unit and MPI tests against python3's LibTorch
#           (torch.utils.cmake_prefix_path) and the prefix
#   unit    the unit tests that touch the device or its contracts first (Cuda.*, the device path,
#           the completion contract, the watchdog, the backend's choice), then the others as far
#           as the budget goes (the rows say how many were reached)
#   nccl    1 rank under mpirun with run.backend: nccl, configs/smoke.yaml
#   ranks   2 ranks sharing the GPU (run.backend: auto picks MPI, which stages CUDA tensors through
#           the host): the CudaRanks.* MPI tests (equivalence with 1 rank, dropout, graphs) and the
#           smoke run
#   e2e     configs/smoke.yaml end to end (train, sample, FID) with bf16 and graphs
#   bench   ddpm_dist bench configs/mnist.yaml on CUDA: global batch 128 and 1024, fp32 and bf16,
#           with and without CUDA graphs; 1000 images with 1000 DDPM steps; sampling
#   seed    the users' configs/mnist.yaml with bf16 and graphs, trained for a fixed wall time
#           (DDPM_SEED_TRAIN_S, 60 s) and stopped cleanly (SIGUSR1), then evaluated at N = 1000
#           with its own fast sampler (Heun, 19 evaluations): the FID of that step, the speed, and
#           the projected time of the whole 20,000 steps
# Opt-in, for a second call when the session has the time (after prefix and build on the same
# warm machine, or with them: --stages prefix,build,seed_full):
#   seed_full  the whole configs/mnist.yaml end to end (DDPM_SEED_CONFIG=configs/mnist_seed.yaml
#           for the seed's own recipe with 1000-step DDPM sampling)
# Every stage has a time budget (BUDGET below; the default stages' sum is at most 480 s, which
# tests/e2e/gpu_scripts.sh checks on the dry run): its commands are stopped at the budget's end.
# Each stage's row is printed, and appended to LOGS/table.md, as soon as it finishes, so a call
# that is killed still returns the rows of the stages it finished. --dry-run prints each stage's
# budget and commands and runs nothing.
# Environment: DDPM_GPU_DEPS (.gpu), DDPM_GPU_PREFIX (/tmp/ddpm_prefix), DDPM_GPU_BUILD (build-gpu),
# DDPM_GPU_MNIST (where MNIST is unpacked; data/mnist, which the configs name),
# DDPM_GPU_LOGS ($OUT if set, else /tmp/gpu_check), DDPM_TORCH_PREFIX (python3's), DDPM_JOBS (nproc),
# DDPM_BUDGET_<stage> (seconds, in place of the stage's budget).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DEFAULT_STAGES=(prefix build unit nccl ranks e2e bench seed)
declare -A BUDGET=([prefix]=15 [build]=150 [unit]=60 [nccl]=20 [ranks]=40 [e2e]=25 [bench]=60 [seed]=105
                   [seed_full]=540)
# DDPM_BUDGET_<stage>=SECONDS replaces a stage's budget (a longer seed_full where the session has the time).
for k in "${!BUDGET[@]}"; do
  v="DDPM_BUDGET_$k"
  [ -n "${!v:-}" ] && BUDGET[$k]="${!v}"
done
DRY=0
STAGES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --stages) IFS=, read -r -a more <<<"${2:-}"; STAGES+=("${more[@]}"); shift ;;
    --stages=*) IFS=, read -r -a more <<<"${1#--stages=}"; STAGES+=("${more[@]}") ;;
    *) STAGES+=("$1") ;;
  esac
  shift
done
[ ${#STAGES[@]} -eq 0 ] && STAGES=("${DEFAULT_STAGES[@]}")
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
DEADLINE=0  # the running stage's end, in seconds since the epoch
# row STAGE RESULT SECONDS FIGURES: prints the row at once and appends it to LOGS/table.md.
row() {
  TABLE+=("$1|$2|$3|$4")
  [ -s "$LOGS/table.md" ] || printf '| stage | result | s (budget) | figures |\n|---|---|---|---|\n' >"$LOGS/table.md"
  printf '| %s | %s | %s (%s) | %s |\n' "$1" "$2" "$3" "${BUDGET[$1]}" "$4" | tee -a "$LOGS/table.md"
}

# run STAGE COMMAND...: runs (or, dry, prints) one command of a stage, its output in LOGS/STAGE.log,
# stopped at the stage's deadline (exit 124 then).
run() {
  local stage="$1"
  shift
  if [ "$DRY" -eq 1 ]; then
    printf '[%s] %s\n' "$stage" "$*"
    return 0
  fi
  local left=$((DEADLINE - $(date +%s)))
  if [ "$left" -le 0 ]; then
    echo "[$stage] not started, the stage's budget is spent: $*" >>"$LOGS/$stage.log"
    return 124
  fi
  echo "[$stage] $*" | tee -a "$LOGS/$stage.log"
  timeout -k 10 "$left" "$@" >>"$LOGS/$stage.log" 2>&1
}

# stage NAME: runs a stage function within its budget and adds its row (figures from the
# function's FIGURES).
stage() {
  local name="$1" start rc
  FIGURES=""
  start=$(date +%s)
  DEADLINE=$((start + BUDGET[$name]))
  if [ "$DRY" -eq 1 ]; then
    echo "== $name (budget ${BUDGET[$name]} s)"
    "stage_$name" 2>/dev/null
    return 0
  fi
  "stage_$name"
  rc=$?
  local result
  if [ $rc -eq 0 ]; then result=pass
  elif [ "$(date +%s)" -ge "$DEADLINE" ]; then result="FAIL (over its budget)"
  else result="FAIL ($rc)"; fi
  row "$name" "$result" "$(( $(date +%s) - start ))" "$FIGURES"
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
  run build cmake --build "$BUILD" -j "$JOBS" --target ddpm_dist unit_tests mpi_tests -- "${keep[@]}" || return 1
  FIGURES="$(grep -m1 -o 'NCCL backend: [^ ]*' "$LOGS/build.log")"
  return 0
}

# The unit tests of the device and of its contracts, in ctest's names.
DEVICE_TESTS='^unit\.(Cuda|DevicePath|.*Completion|Watchdog|Backend|FirstError)'

stage_unit() {
  local rc=0
  # Several test processes at a time, each with a few threads.
  OMP_NUM_THREADS=2 run unit ctest --test-dir "$BUILD" -j 8 -R "$DEVICE_TESTS" --output-on-failure || rc=1
  local device
  device="$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$LOGS/unit.log" | tail -1)"
  OMP_NUM_THREADS=2 run unit ctest --test-dir "$BUILD" -j 8 -E "$DEVICE_TESTS|^(mpi|e2e)\." --output-on-failure
  local others=$?
  [ "$DRY" -eq 1 ] && return 0
  # Past the budget ctest is stopped: what it reached counts, a failure among it fails the stage.
  local passed failed
  passed=$(sed -n '/-E ^unit/,$p' "$LOGS/unit.log" | grep -c 'Test *#.* Passed')
  failed=$(sed -n '/-E ^unit/,$p' "$LOGS/unit.log" | grep -cE 'Test *#.*(Failed|Exception|Timeout)')
  [ "$failed" -eq 0 ] && { [ "$others" -eq 0 ] || [ "$others" -eq 124 ]; } || rc=1
  FIGURES="device and contracts: $device (Cuda.*: $(grep -c 'Test *#.*Cuda\..* Passed' "$LOGS/unit.log") passed, $(grep -c 'Test *#.*Cuda\..*Skipped' "$LOGS/unit.log") skipped); others: $passed passed, $failed failed$([ "$others" -eq 124 ] && echo ', the rest not reached in the budget')"
  return $rc
}

stage_nccl() {
  run nccl "$MPIRUN" -np 1 "$BIN" train configs/smoke.yaml --set run.backend=nccl --set run.out_dir="$RUNS/nccl" || return 1
  grep -q "backend nccl" "$LOGS/nccl.log" || { echo "the log does not say backend nccl" >>"$LOGS/nccl.log"; return 1; }
  FIGURES="$(grep -o 'step 60/60.*img/s' "$LOGS/nccl.log" | tail -1)"
  return 0
}

stage_ranks() {
  run ranks "$MPIRUN" -np 2 "$BUILD/tests/mpi_tests" --gtest_filter='CudaRanks.*' || return 1
  # run.backend: auto, which must pick MPI for two ranks on one GPU (NCCL refuses a shared device).
  run ranks "$MPIRUN" -np 2 "$BIN" configs/smoke.yaml --set run.out_dir="$RUNS/ranks" || return 1
  grep -q "2 rank(s).*backend mpi" "$LOGS/ranks.log" || { echo "the log does not say 2 ranks on backend mpi" >>"$LOGS/ranks.log"; return 1; }
  FIGURES="$(grep -o 'graphs [01]: 2 ranks vs 1 on one GPU: [0-9.e-]*' "$LOGS/ranks.log" | sed 's/: 2 ranks vs 1 on one GPU//' | xargs)"
  return 0
}

stage_bench() {
  local rc=0 common=(--set run.out_dir="$RUNS/bench" --set sample.batch_size=1000)
  # The issue's figures first: every command runs even when one before it failed (each adds its
  # own rows), until the budget ends.
  run bench "$BIN" bench configs/mnist.yaml --only train,bf16,graphs,bf16_graphs "${common[@]}" || rc=1
  run bench "$BIN" bench configs/mnist.yaml --only train,bf16,graphs,bf16_graphs --set train.batch_size=1024 "${common[@]}" || rc=1
  run bench "$BIN" bench configs/mnist.yaml --only sample_configured --set sample.sampler=ddpm --set sample.steps=1000 \
    --set sample.precision=bf16 --set sample.cuda_graphs=true "${common[@]}" || rc=1
  run bench "$BIN" bench configs/mnist.yaml --only matmul,conv,sample,sample_bf16,sample_graphs,sample_bf16_graphs "${common[@]}" || rc=1
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

SEED_RUN=(--set train.precision=bf16 --set train.cuda_graphs=true --set sample.precision=bf16
          --set sample.cuda_graphs=true)

stage_seed() {
  local train_s="${DDPM_SEED_TRAIN_S:-60}" out="$RUNS/seed"
  # SIGUSR1 (SLURM's warning) makes the run finish its step, write a checkpoint and exit 75.
  run seed timeout --preserve-status -s USR1 -k 30 "$train_s" "$MPIRUN" -np 1 "$BIN" train configs/mnist.yaml \
    --set run.out_dir="$out" --set eval.every=0 "${SEED_RUN[@]}"
  local rc=$?
  [ "$DRY" -eq 1 ] && rc=75
  [ $rc -eq 75 ] || [ $rc -eq 0 ] || { FIGURES="training failed ($rc)"; return 1; }
  run seed "$MPIRUN" -np 1 "$BIN" eval configs/mnist.yaml --set run.out_dir="$out" "${SEED_RUN[@]}" || {
    FIGURES="evaluation failed"
    return 1
  }
  [ "$DRY" -eq 1 ] && return 0
  # The progress line: "step S/20000 ... X img/s ... ETA h:mm:ss" (ETA from the whole run's pace).
  local last steps img eta fid
  last="$(grep -o 'step [0-9]*/[0-9]* .*ETA [0-9:]*' "$LOGS/seed.log" | tail -1)"
  steps="$(echo "$last" | grep -o 'step [0-9]*/[0-9]*' | cut -d' ' -f2)"
  img="$(echo "$last" | grep -o '[0-9.]* img/s')"
  eta="$(echo "$last" | grep -o 'ETA [0-9:]*' | cut -d' ' -f2)"
  fid="$(grep -E '(^| )ema +[0-9]' "$LOGS/seed.log" | tail -1 | sed 's/.*ema /ema /' | tr -s ' ')"
  FIGURES="$steps steps in ${train_s} s ($img); whole run's training projected at ${train_s} s + ETA $eta; N = 1000, Heun x19: $fid"
  return 0
}

stage_seed_full() {
  run seed_full "$MPIRUN" -np 1 "$BIN" "${DDPM_SEED_CONFIG:-configs/mnist.yaml}" --set run.out_dir="$RUNS/seed_full" \
    "${SEED_RUN[@]}" || { FIGURES="stopped at $(grep -o 'step [0-9]*/[0-9]*' "$LOGS/seed_full.log" | tail -1)"; return 1; }
  FIGURES="$(grep -E '(^| )ema +[0-9]' "$LOGS/seed_full.log" | tail -1 | sed 's/.*ema /ema /' | tr -s ' '); $(grep -o 'wall time:.*' "$LOGS/seed_full.log" | tail -1)"
  return 0
}

for s in "${STAGES[@]}"; do
  declare -F "stage_$s" >/dev/null || { echo "unknown stage $s (${DEFAULT_STAGES[*]} seed_full)"; exit 2; }
done
if [ "$DRY" -eq 1 ]; then
  total=0
  for s in "${STAGES[@]}"; do total=$((total + BUDGET[$s])); done
  echo "budget of these stages: $total s"
else
  echo "gpu_check: $(date -u +%FT%TZ), logs in $LOGS"
  nvidia-smi -L 2>&1 | head -4
  rm -f "$LOGS/table.md"
fi
for s in "${STAGES[@]}"; do
  # A failed prefix or build leaves nothing for the later stages to run.
  if ! stage "$s" && { [ "$s" = prefix ] || [ "$s" = build ]; }; then break; fi
done
[ "$DRY" -eq 1 ] && exit 0

if [ -f "$LOGS/bench.log" ]; then
  {
    echo
    echo "| bench (as found) | value |"
    echo "|---|---|"
    sed -n 's/.*bench \([a-z0-9_]*\)=\(.*\)/| \1 | \2 |/p' "$LOGS/bench.log"
  } >>"$LOGS/table.md"
fi
echo
cat "$LOGS/table.md"
for r in "${TABLE[@]}"; do [[ "$r" == *"|FAIL"* ]] && exit 1; done
exit 0
