#!/usr/bin/env bash
# Run here, before a GPU check: gathers what launch/gpu_check.sh needs on a GPU machine that has
# CUDA, a compiler, CMake and PyTorch but neither MPI, HDF5, yaml-cpp, spdlog nor a network.
#   launch/gpu_deps.sh [DIR]        (default .gpu, which git ignores)
# DIR/debs: Debian's -dev packages (headers, CMake files, link names) and the run-time libraries
# they need, with those libraries' own dependencies, less the C and C++ run-times that every Linux
# has. DIR/mnist: the four MNIST files, gzip-compressed (the device tool carries 64 MiB at most).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-$ROOT/.gpu}"
log() { echo "[gpu_deps] $*"; }

# Headers and link names: taken alone, since their own dependencies are build tools and docs.
DEV=(libopenmpi-dev libhdf5-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libpng-dev zlib1g-dev
     libgtest-dev)
# What the binary loads and runs: taken with their dependencies.
RUNTIME=(openmpi-bin openmpi-common libopenmpi3 libhdf5-103-1 libhdf5-cpp-103-1 libyaml-cpp0.7 libspdlog1.10
         libfmt9 libpng16-16 zlib1g)
# Present on any Linux that can run a compiler, and not to be shadowed by Debian's copies; ssh is
# for remote launches only (gpu_check.sh starts local ranks), hwloc's plugins (X11, OpenCL, XML)
# are optional.
SKIP='^(libc6|libgcc-s1|libstdc\+\+6|gcc-12-base|libcrypt1|debconf|perl-base|dpkg|tar|base-files|openssh-client|libhwloc-plugins|libselinux1|libpcre2-8-0|libzstd1|liblzma5|libbz2-1.0|libsystemd0|libudev1|libcap2|libgcrypt20|libgpg-error0|liblz4-1|libtinfo6|libdb5.3|libaudit1|libcap-ng0|libpam0g|adduser|passwd|libbsd0|libmd0|sensible-utils|lsb-base|init-system-helpers|coreutils|libacl1|libattr1|libgmp10|ucf)$'

# The dependency closure of the arguments, pruned at SKIP; of alternatives, the first. One
# apt-cache call per level of the walk (each call reads the package lists anew: ~0.7 s).
closure() {
  local -A seen=()
  local level=("$@") next p d
  while [ ${#level[@]} -gt 0 ]; do
    next=()
    for p in "${level[@]}"; do
      [[ -n "${seen[$p]:-}" || "$p" =~ $SKIP ]] && continue
      seen[$p]=1
      next+=("$p")
      echo "$p"
    done
    [ ${#next[@]} -eq 0 ] && break
    level=()
    while read -r d; do
      [[ -z "${seen[$d]:-}" ]] && level+=("$d")
    done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
               "${next[@]}" | awk '/^[^ ]/ { alt = 0; next } /^ *\|?(Pre)?Depends:/ { if (!alt) print $2; alt = ($1 ~ /^\|/) }' |
               grep -v '^<' | sort -u)
  done
}

if ! apt-cache show "${RUNTIME[0]}" >/dev/null 2>&1; then
  log "apt lists are empty: apt-get update"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
fi
mapfile -t packages < <({ printf '%s\n' "${DEV[@]}"; closure "${RUNTIME[@]}"; } | grep -Ev "$SKIP" | sort -u)
mkdir -p "$DIR/debs"
rm -f "$DIR"/debs/*.deb
log "downloading ${#packages[@]} packages into $DIR/debs"
# As root, apt hands downloads to its _apt user, who cannot write into a private folder.
sandbox=()
[ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
(cd "$DIR/debs" && apt-get download -q=2 "${sandbox[@]}" "${packages[@]}")
du -sh "$DIR/debs" | sed 's/^/[gpu_deps] debs: /'

if [ -d "$ROOT/data/mnist" ]; then
  mkdir -p "$DIR/mnist"
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -f "$DIR/mnist/$f.gz" ] || gzip -c "$ROOT/data/mnist/$f" > "$DIR/mnist/$f.gz"
  done
  du -sh "$DIR/mnist" | sed 's/^/[gpu_deps] mnist: /'
else
  log "data/mnist is missing: run launch/setup.sh first, then this again"
  exit 1
fi
du -sh "$DIR" | sed 's/^/[gpu_deps] total to carry: /'
