#!/usr/bin/env bash
# The whole pipeline of a config under mpirun -np 2: both ranks train, rank 0 writes the results.
#   two_ranks_train.sh MPIEXEC BINARY CONFIG
set -euo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT
"$MPIEXEC" -n 2 --oversubscribe "$BIN" "$CONFIG" --set run.threads=1 --set run.out_dir="$out_dir" 2>&1 | tee "$out_dir/log"
grep -q "2 rank(s) x 1 intra-op thread(s)" "$out_dir/log"
grep -q "global batch .* per rank x 2 ranks" "$out_dir/log"
ls "$out_dir"/checkpoints/step_*.h5 "$out_dir/run.h5" "$out_dir/samples.png"
h5dump -H "$out_dir/run.h5" > "$out_dir/header.txt"
grep -q 'DATASET "images"' "$out_dir/header.txt"
"$(dirname "$0")/../../tools/plot_run.py" "$out_dir/run.h5"
ls "$out_dir/loss.png" "$out_dir/samples_grid.png"
echo "PASS"
