#!/usr/bin/env bash
# The evaluation classifier the tests share (CTest fixture "classifier"): results/classifier_mnist.h5,
# trained by `ddpm_dist classifier` on 2 ranks where it is missing (a clean clone trains it here,
# once, instead of in the first test that evaluates), kept where it is there.
#   classifier_fixture.sh MPIEXEC DDPM_DIST CONFIG   (from the repository root)
set -euo pipefail
if [ -f results/classifier_mnist.h5 ]; then
  echo "reusing results/classifier_mnist.h5"
  exit 0
fi
"$1" -n 2 --oversubscribe "$2" classifier "$3"
[ -f results/classifier_mnist.h5 ] || { echo "FAIL: ddpm_dist classifier wrote no results/classifier_mnist.h5"; exit 1; }
