#!/usr/bin/env bash
# Runs one GoogleTest suite (BIN FILTER) for CTest; exits 77 (CTest's "skipped") when every test of
# it skipped, e.g. the CUDA suites on a machine without a GPU.
set -uo pipefail
out=$("$1" --gtest_filter="$2" 2>&1)
rc=$?
printf '%s\n' "$out"
if [[ $rc -eq 0 ]] && grep -q '^\[  PASSED  \] 0 tests' <<<"$out" && grep -q '^\[  SKIPPED \]' <<<"$out"; then
  exit 77
fi
exit $rc
