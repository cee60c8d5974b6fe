#!/usr/bin/env bash
# The whole pipeline of a config under mpirun -np 2: both ranks train, then sample and evaluate;
# rank 0 writes run.h5 (/train, /samples, /eval, /trajectory), the checkpoints and the pictures.
#   two_ranks_train.sh MPIEXEC BINARY CONFIG
set -euo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT
"$MPIEXEC" -n 2 --oversubscribe "$BIN" "$CONFIG" --set run.threads=1 --set run.out_dir="$out_dir" 2>&1 | tee "$out_dir/log"
grep -q "2 rank(s) x 1 intra-op thread(s)" "$out_dir/log"
grep -q "global batch .* per rank x 2 ranks" "$out_dir/log"
ls "$out_dir"/checkpoints/step_*.h5 "$out_dir/run.h5" "$out_dir"/{samples,forward,reverse}.png
grep -q "report:" "$out_dir/log"
grep -A2 "report:" "$out_dir/log" | grep -q "FID floor"
"$BIN" inspect "$out_dir/run.h5" > "$out_dir/inspect.txt"
grep -q "ema: FID .* (floor .*), confidence" "$out_dir/inspect.txt" || { cat "$out_dir/inspect.txt"; echo "FAIL: inspect shows no evaluation"; exit 1; }
h5dump -H "$out_dir/run.h5" > "$out_dir/header.txt"
for name in images fid fid_floor mean_confidence class_histogram gen_features ref_mu ref_sigma forward reverse; do
  grep -q "DATASET \"$name\"" "$out_dir/header.txt" || { echo "FAIL: run.h5 lacks $name"; exit 1; }
done
# The histogram counts every sample.
total="$(h5dump -d /eval/ema/class_histogram -y -w 0 "$out_dir/run.h5" | sed -n '/DATA {/,/}/p' | tr -cd '0-9,' | tr ',' '+')"
[ "$(( ${total%+} ))" -eq 20 ] || { echo "FAIL: histogram sums to $(( ${total%+} )), not 20"; exit 1; }
"$(dirname "$0")/../../tools/plot_run.py" "$out_dir/run.h5"
ls "$out_dir/loss.png" "$out_dir/samples_grid.png"
echo "PASS"
