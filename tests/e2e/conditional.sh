#!/usr/bin/env bash
# A class-conditional model through the whole pipeline under mpirun -np 2: training with label
# dropout, the evaluation at two guidance weights (a row each in the report, /eval/ema/guidance_<w>
# in run.h5, a picture each), samples of one asked-for class, and a refusal, naming the key, to
# sample the run with an unconditional configuration. The plumbing only: a run this short does not
# learn the classes (what the conditioning reaches is measured in docs/journal/quality.md).
#   conditional.sh MPIEXEC BINARY CONFIG
set -euo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT
cond=(--set run.threads=1 --set model.num_classes=10 --set train.label_dropout=0.2 --set sample.guidance=2
      --set sample.num_samples=100 --set sample.batch_size=50 --set run.out_dir="$out_dir")
"$MPIEXEC" -n 2 --oversubscribe "$BIN" "$CONFIG" "${cond[@]}" --set train.steps=100 --set 'eval.guidance=[0, 2]' \
  2>&1 | tee "$out_dir/log"
grep -A4 "report:" "$out_dir/log" | grep -q "cond. acc." || { echo "FAIL: the report has no conditional accuracy"; exit 1; }
for w in 0 2; do
  grep -A4 "report:" "$out_dir/log" | grep -Eq "^ema +$w +[0-9.]+ ± [0-9.]+ .* [0-9.]+% +[0-9.]+% +[0-9]+/10" ||
    { echo "FAIL: the report has no row for guidance $w"; exit 1; }
  ls "$out_dir/samples_guidance_$w.png"
done
values() { /usr/bin/python3 -c 'import sys, h5py; [print(v) for v in h5py.File(sys.argv[1], "r")[sys.argv[2]][()].reshape(-1)]' "$1" "$2"; }
for w in 0 2; do
  for name in fid fid_floor cond_accuracy class_accuracy labels_asked labels_pred; do
    values "$out_dir/run.h5" "/eval/ema/guidance_$w/$name" > /dev/null || { echo "FAIL: no /eval/ema/guidance_$w/$name"; exit 1; }
  done
done
# Balanced labels: image i is asked to be of class i mod 10.
[ "$(values "$out_dir/run.h5" /samples/labels | xargs | cut -d' ' -f1-12)" = "0 1 2 3 4 5 6 7 8 9 0 1" ] ||
  { echo "FAIL: /samples/labels is not balanced"; exit 1; }
"$BIN" inspect "$out_dir/run.h5" | grep -q "ema guidance 2: FID .*conditional accuracy" ||
  { echo "FAIL: inspect shows no conditional evaluation"; exit 1; }
# The page: a row and a grid (a class per row) per guidance weight, its figures equal to run.h5's.
"$(dirname "$0")/check_report.py" "$out_dir/report.html" --expect "cond. acc." \
  --expect "ema, guidance 0 weights: the first 100 samples (a row per class asked for)" \
  --expect "ema, guidance 2 weights: the first 100 samples (a row per class asked for)"
# Sevens only.
"$MPIEXEC" -n 2 --oversubscribe "$BIN" sample "$CONFIG" "${cond[@]}" --set 'sample.labels=[7]' \
  --set sample.num_samples=8 --set sample.batch_size=4 > "$out_dir/sample.log" 2>&1 || { cat "$out_dir/sample.log"; exit 1; }
[ "$(values "$out_dir/run.h5" /samples/labels | sort -u | xargs)" = "7" ] || { echo "FAIL: /samples/labels is not all 7"; exit 1; }
[ "$(values "$out_dir/run.h5" /samples/labels | wc -l)" = 8 ] || { echo "FAIL: not 8 labels"; exit 1; }
# The conditional run with an unconditional configuration: refused, naming the key to set.
if "$BIN" sample "$CONFIG" --set run.out_dir="$out_dir" > "$out_dir/refused.log" 2>&1; then
  echo "FAIL: an unconditional configuration sampled a conditional checkpoint"; exit 1
fi
grep -q "model.num_classes: 10 in the checkpoint, 0 in $CONFIG (the checkpoint's model is class-conditional)" \
  "$out_dir/refused.log" || { cat "$out_dir/refused.log"; echo "FAIL: the refusal does not name model.num_classes"; exit 1; }
echo "PASS"
