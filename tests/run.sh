#!/usr/bin/env bash
# Sets up what is missing (packages, MNIST, build), then runs the whole suite through ctest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DDPM_SETUP_TESTS=1 "$ROOT/launch/setup.sh"
cd "$ROOT/build"
ctest --output-on-failure --timeout 900 "$@"
