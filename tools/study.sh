#!/usr/bin/env bash
# Runs the quality study's variants one after another (docs/journal/quality.md): each is launch/local.sh
# on configs/mnist_cpu_pixel.yaml (the pixel recipe the study chose) with 2 ranks and its
# overrides, logged to results/NAME/log.txt, and its row (tools/study_row.py) is appended to ROWS as soon as it finishes.
#   tools/study.sh ROWS VARIANTS   VARIANTS: one run a line, "NAME key=value ..."; # comments
# Run it with nothing else on the machine: the rows carry wall times.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROWS="$1"
grep -v '^\s*\(#\|$\)' "$2" | while read -r name overrides; do
  args=()
  for o in $overrides; do args+=(--set "$o"); done
  mkdir -p "results/$name"
  echo "[study] $name: $overrides"
  launch/local.sh configs/mnist_cpu_pixel.yaml 2 --set run.name="$name" "${args[@]}" </dev/null >"results/$name/log.txt" 2>&1 ||
    { echo "[study] $name failed: results/$name/log.txt"; continue; }
  tools/study_row.py "$name" "$overrides" | tee -a "$ROWS"
done
