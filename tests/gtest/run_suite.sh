#!/usr/bin/env bash
# Runs one GoogleTest suite (BIN FILTER) for CTest; exits 77 (CTest's "skipped") when every test of
# it skipped, e.g. the CUDA suites on a machine without a GPU. The output is streamed as it comes,
# so a suite that CTest kills at its timeout still shows how far it got.
set -uo pipefail
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
"$1" --gtest_filter="$2" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [[ $rc -eq 0 ]] && grep -q '^\[  PASSED  \] 0 tests' "$log" && grep -q '^\[  SKIPPED \]' "$log"; then
  exit 77
fi
exit "$rc"
