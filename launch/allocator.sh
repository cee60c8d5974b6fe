# Sourced by the launch scripts: the memory allocator of the ranks.
#
# Under glibc's malloc a fresh tensor of a few MB is slow to fill; tcmalloc (Debian's
# libtcmalloc-minimal4, installed by launch/setup.sh) samples faster and trains as fast as a tuned
# glibc, jemalloc was slower (the measurements: docs/journal/performance.md). So: tcmalloc, preloaded,
# where the library is found; otherwise, or with
# DDPM_MALLOC=glibc, glibc with a fixed mmap threshold, a high trim threshold and a top pad (the
# variable is harmless under tcmalloc).
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456:glibc.malloc.top_pad=67108864}"

# The path of tcmalloc's shared library, from the linker cache; empty when it is not installed.
ddpm_tcmalloc_path() {
  local ldconfig
  for ldconfig in ldconfig /sbin/ldconfig /usr/sbin/ldconfig; do
    if command -v "$ldconfig" > /dev/null 2>&1; then
      "$ldconfig" -p 2>/dev/null | awk '/libtcmalloc_minimal\.so\.4 / { print $NF; exit }'
      return 0
    fi
  done
}

# What mpirun needs to hand all of this to its ranks (the launchers append it).
DDPM_ALLOCATOR_MPI_FLAGS=(-x GLIBC_TUNABLES)
if [ "${DDPM_MALLOC:-tcmalloc}" = tcmalloc ]; then
  DDPM_TCMALLOC="$(ddpm_tcmalloc_path)"
  if [ -n "$DDPM_TCMALLOC" ]; then
    case ":${LD_PRELOAD:-}:" in
      *":$DDPM_TCMALLOC:"*) ;;
      *) export LD_PRELOAD="$DDPM_TCMALLOC${LD_PRELOAD:+:$LD_PRELOAD}" ;;
    esac
  fi
fi
if [ -n "${LD_PRELOAD:-}" ]; then DDPM_ALLOCATOR_MPI_FLAGS+=(-x LD_PRELOAD); fi
