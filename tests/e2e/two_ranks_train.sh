#!/usr/bin/env bash
# The whole pipeline of a config under mpirun -np 2: both ranks train, then sample and evaluate;
# rank 0 writes run.h5 (/train, /samples, /eval, /trajectory), the checkpoints, the pictures and
# report.html (checked in headless Chromium against run.h5, also rebuilt while the run trains).
# The model must have learned: the loss falls by more than half, and the FID of 100 samples is
# clearly below that of the same model after one step (a model that learned nothing).
#   two_ranks_train.sh MPIEXEC BINARY CONFIG
set -euo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT
common=(--set run.threads=1 --set train.steps=200 --set sample.num_samples=100 --set sample.batch_size=50
        --set 'train.phema_sigma_rels=[0.05, 0.10]' --set train.phema_snapshot_every=50)
CHECK="$(dirname "$0")/check_report.py"
# Evaluations during training at steps 100 and 200, of 50 samples each. While it trains, its page
# is rebuilt from run.h5 three times (what a user does to watch a run), which must not disturb it.
"$MPIEXEC" -n 2 --oversubscribe "$BIN" "$CONFIG" "${common[@]}" --set eval.every=100 --set eval.during_samples=50 \
  --set run.out_dir="$out_dir" > "$out_dir/log" 2>&1 &
job=$!
during=0
while kill -0 "$job" 2>/dev/null && [ "$during" -lt 3 ]; do
  if [ -f "$out_dir/run.h5" ] && "$BIN" report "$out_dir" --out "$out_dir/during.html" > /dev/null 2>> "$out_dir/during.err" &&
     grep -q "training: step" "$out_dir/during.html"; then during=$((during + 1)); fi
  sleep 2
done
status=0
wait "$job" || status=$?
cat "$out_dir/log"
[ "$status" -eq 0 ] || { echo "FAIL: the run exited with status $status"; exit 1; }
echo "pages of the run in progress: $during"
[ "$during" -gt 0 ] || { cat "$out_dir/during.err"; echo "FAIL: no page of the run was built while it trained"; exit 1; }
grep -q "2 rank(s) x 1 intra-op thread(s)" "$out_dir/log"
grep -q "global batch .* per rank x 2 ranks" "$out_dir/log"
ls "$out_dir"/checkpoints/step_*.h5 "$out_dir/run.h5" "$out_dir"/{samples,forward,reverse}.png
grep -q "report:" "$out_dir/log"
grep -A2 "report:" "$out_dir/log" | grep -q " KID "
grep -A4 "report:" "$out_dir/log" | grep -q "^real " || { echo "FAIL: the report has no row of real images"; exit 1; }
"$BIN" inspect "$out_dir/run.h5" > "$out_dir/inspect.txt"
grep -q "ema: FID .* (floor .*), confidence" "$out_dir/inspect.txt" || { cat "$out_dir/inspect.txt"; echo "FAIL: inspect shows no evaluation"; exit 1; }
grep -q "ema: FID .* +- .*, KID .* +- .*, precision" "$out_dir/inspect.txt" || { cat "$out_dir/inspect.txt"; echo "FAIL: inspect shows no errors"; exit 1; }
grep -q "evaluation (classifier test accuracy .*, weights [0-9a-f]\{16\}" "$out_dir/inspect.txt" || { echo "FAIL: inspect shows no classifier fingerprint"; exit 1; }
h5dump -H "$out_dir/run.h5" > "$out_dir/header.txt"
for name in images fid fid_se kid kid_se fid_inf fid_inf_se precision recall memorised fid_floor mean_confidence class_histogram gen_features ref_mu ref_sigma forward reverse; do
  grep -q "DATASET \"$name\"" "$out_dir/header.txt" || { echo "FAIL: run.h5 lacks $name"; exit 1; }
done
# The histogram counts every sample.
total="$(/usr/bin/python3 -c 'import sys, h5py; print(int(h5py.File(sys.argv[1], "r")["eval/ema/class_histogram"][()].sum()))' "$out_dir/run.h5")"
[ "$total" = 100 ] || { echo "FAIL: histogram sums to $total, not 100"; exit 1; }
# It learned: the loss fell, and the samples are nearer the data than an untrained model's.
values() { /usr/bin/python3 -c 'import sys, h5py; [print(v) for v in h5py.File(sys.argv[1], "r")[sys.argv[2]][()].reshape(-1)]' "$1" "$2"; }
first="$(values "$out_dir/run.h5" /train/loss | head -1)" last="$(values "$out_dir/run.h5" /train/loss | tail -1)"
echo "loss: first logged $first, last $last"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.5 * a) }' || { echo "FAIL: the loss did not halve"; exit 1; }
# Evaluated with two sample seeds: each seed's figures, their mean, and the seeds' spread.
"$MPIEXEC" -n 2 --oversubscribe "$BIN" "$CONFIG" "${common[@]}" --set train.steps=1 --set run.out_dir="$out_dir/untrained" \
  --set 'eval.seeds=[0, 1]' > "$out_dir/untrained.log" 2>&1 || { cat "$out_dir/untrained.log"; echo "FAIL: the one-step run failed"; exit 1; }
grep -q "over 2 sample seeds: the mean" "$out_dir/untrained.log" || { echo "FAIL: no mean over the sample seeds"; exit 1; }
# The command as typed, each argument a shell would split quoted (the page's "as it was started").
launch="$(/usr/bin/python3 -c 'import sys, h5py; print(h5py.File(sys.argv[1], "r")["launch"].attrs["command"])' "$out_dir/untrained/run.h5")"
case "$launch" in *" --set 'eval.seeds=[0, 1]'"*) ;; *) echo "FAIL: /launch command not quoted for a shell: $launch"; exit 1 ;; esac
per_seed="$(values "$out_dir/untrained/run.h5" /eval/ema/per_seed/fid | xargs)"
mean="$(values "$out_dir/untrained/run.h5" /eval/ema/fid)"
echo "FID per seed: $per_seed, mean $mean"
awk -v p="$per_seed" -v m="$mean" 'BEGIN { split(p, v, " "); exit !(length(v) == 2 && v[1] != v[2] && (v[1] + v[2]) / 2 - m < 1e-9 && m - (v[1] + v[2]) / 2 < 1e-9) }' ||
  { echo "FAIL: /eval/ema/per_seed/fid '$per_seed' does not average to /eval/ema/fid $mean"; exit 1; }
# The two runs side by side, measured with one classifier at one N: no warning.
"$BIN" compare "$out_dir" "$out_dir/untrained/run.h5" | tee "$out_dir/compare.txt"
grep -q "mean of 2 runs" "$out_dir/compare.txt" || { echo "FAIL: compare gives no mean"; exit 1; }
if grep -q WARNING "$out_dir/compare.txt"; then echo "FAIL: compare warns of runs that compare"; exit 1; fi
fid="$(values "$out_dir/run.h5" /eval/ema/fid)" fid0="$(values "$out_dir/untrained/run.h5" /eval/ema/fid)"
echo "FID after training $fid, after one step $fid0"
awk -v a="$fid" -v b="$fid0" 'BEGIN { exit !(a < 0.9 * b) }' || { echo "FAIL: FID $fid is not clearly below the untrained $fid0"; exit 1; }
[ "$(values "$out_dir/run.h5" /eval_history/step | xargs)" = "100.0 200.0" ] ||
  { echo "FAIL: /eval_history/step is '$(values "$out_dir/run.h5" /eval_history/step | xargs)'"; exit 1; }
grep -q "evaluations during training: 2" "$out_dir/inspect.txt" || { echo "FAIL: inspect shows no evaluation history"; exit 1; }
# The page a person opens: written at the end of the run, as a browser shows it, equal to run.h5.
grep -q "report: $out_dir/report.html" "$out_dir/log" || { echo "FAIL: the run wrote no report.html"; exit 1; }
"$CHECK" "$out_dir/report.html" --expect "Final evaluation" --expect "data set mnist" --expect "Evaluations during training" \
  --expect "as it was started mpirun -np 2 ddpm_dist" --expect "The forward and reverse processes"
# Two runs side by side: one classifier, one N: no warning. A run measured with another classifier: said.
"$BIN" report "$out_dir" "$out_dir/untrained" --out "$out_dir/both.html"
"$CHECK" "$out_dir/both.html" --absent WARNING --expect "What differs between the configurations"
cp -r "$out_dir/untrained" "$out_dir/other"
/usr/bin/python3 -c 'import sys, h5py; h5py.File(sys.argv[1], "r+")["eval"].attrs["classifier_fingerprint"] = "0123456789abcdef"' \
  "$out_dir/other/run.h5"
"$BIN" report "$out_dir" "$out_dir/other" --out "$out_dir/other.html"
"$CHECK" "$out_dir/other.html" --expect "WARNING: measured with different evaluation classifiers"
# Post-hoc EMA: snapshots every 50 steps; samples from the average of length 0.08 rebuilt from them.
ls "$out_dir"/phema/snapshot_0000{0050,0100,0150,0200}.h5 > /dev/null
"$BIN" sample "$CONFIG" "${common[@]}" --set run.out_dir="$out_dir" --set eval.ema_sigma_rel=0.08 \
  --set sample.num_samples=8 --set sample.batch_size=8 > "$out_dir/posthoc.log" 2>&1 || { cat "$out_dir/posthoc.log"; exit 1; }
grep -q "ema weights: post-hoc EMA sigma_rel 0.08 at step 200 (200 updates), from 8 averages in 4 snapshots" \
  "$out_dir/posthoc.log" || { cat "$out_dir/posthoc.log"; echo "FAIL: no post-hoc EMA line"; exit 1; }
[ "$(/usr/bin/python3 -c 'import sys, h5py; print(h5py.File(sys.argv[1], "r")["samples/images"].attrs["ema_sigma_rel"])' \
  "$out_dir/run.h5")" = 0.08 ] || { echo "FAIL: /samples/images does not say ema_sigma_rel 0.08"; exit 1; }
"$BIN" inspect "$out_dir/run.h5" | grep -q "post-hoc EMA (sigma_rel 0.08) weights of step 200" ||
  { "$BIN" inspect "$out_dir/run.h5"; echo "FAIL: inspect does not name the post-hoc EMA samples"; exit 1; }
"$BIN" inspect "$out_dir/phema/snapshot_00000200.h5" | grep -q "sigma_rel 0.05, 0.1 (200 updates)" ||
  { echo "FAIL: inspect does not read a snapshot"; exit 1; }
# Autoguidance: the model guided by its own post-hoc EMA of step 100 (snapshots reach any step), said
# in the log and in /samples/images; a step without a checkpoint is refused with what to set.
"$BIN" sample "$CONFIG" "${common[@]}" --set run.out_dir="$out_dir" --set sample.guide_step=100 \
  --set sample.guide_ema_sigma_rel=0.05 --set sample.guidance=1 --set sample.num_samples=8 --set sample.batch_size=8 \
  > "$out_dir/autoguided.log" 2>&1 || { cat "$out_dir/autoguided.log"; exit 1; }
grep -q "autoguidance: guided by this run's post-hoc EMA sigma_rel 0.05 at step 100" "$out_dir/autoguided.log" ||
  { cat "$out_dir/autoguided.log"; echo "FAIL: no autoguidance line"; exit 1; }
case "$(/usr/bin/python3 -c 'import sys, h5py; print(h5py.File(sys.argv[1], "r")["samples/images"].attrs["guide"])' "$out_dir/run.h5")" in
  *"post-hoc EMA sigma_rel 0.05 at step 100"*) ;; *) echo "FAIL: /samples/images does not name its guide"; exit 1 ;; esac
if "$BIN" sample "$CONFIG" "${common[@]}" --set run.out_dir="$out_dir" --set sample.guide_step=130 --set sample.guidance=1 \
  > "$out_dir/no_step.log" 2>&1; then echo "FAIL: a guide step without a checkpoint was accepted"; exit 1; fi
grep -q "sample.guide_step = 130: .* holds no checkpoint of that step (kept: steps .*); .*sample.guide_ema_sigma_rel" \
  "$out_dir/no_step.log" || { cat "$out_dir/no_step.log"; echo "FAIL: no message for a guide step without a checkpoint"; exit 1; }
# Another run guides only on the same noise process: one of another beta_end is refused by name.
"$BIN" train "$CONFIG" "${common[@]}" --set train.steps=1 --set diffusion.beta_end=0.03 \
  --set run.out_dir="$out_dir/other_noise" > "$out_dir/other_noise.log" 2>&1 || { cat "$out_dir/other_noise.log"; exit 1; }
if "$BIN" sample "$CONFIG" "${common[@]}" --set run.out_dir="$out_dir" --set sample.guide_run="$out_dir/other_noise" \
  --set sample.guidance=1 > "$out_dir/other_guide.log" 2>&1; then echo "FAIL: a guide of another noise process was accepted"; exit 1; fi
grep -q "diffusion.beta_end: 0.03 there, .* here" "$out_dir/other_guide.log" ||
  { cat "$out_dir/other_guide.log"; echo "FAIL: the guide's other noise process is not named"; exit 1; }
# The sweep across both ranks: EMA lengths (the checkpoint's, post-hoc 0.08) x (no guide, the one-step
# run as another run's guide... here this run at step 100) x weights 0 and 1: 4 cells, into /sweep,
# sweep.txt and the page.
"$MPIEXEC" -n 2 --oversubscribe "$BIN" sweep "$CONFIG" "${common[@]}" --set run.out_dir="$out_dir" \
  --set 'sweep.ema_sigma_rels=[0, 0.08]' --set 'sweep.guide_steps=[100]' --set 'sweep.guide_ema_sigma_rels=[0.05]' \
  --set 'sweep.guidances=[0, 1]' --set sweep.num_samples=40 --set 'sweep.seeds=[0, 1]' > "$out_dir/sweep.log" 2>&1 ||
  { cat "$out_dir/sweep.log"; echo "FAIL: the sweep failed"; exit 1; }
cat "$out_dir/sweep.txt"
grep -q "best by KID: .*: ema .*, guide .*, w " "$out_dir/sweep.txt" || { echo "FAIL: sweep.txt names no best"; exit 1; }
grep -q "to sample or evaluate with it: --set eval.ema_sigma_rel=" "$out_dir/sweep.txt" || { echo "FAIL: no --set"; exit 1; }
/usr/bin/python3 - "$out_dir/run.h5" <<'PY' || { echo "FAIL: /sweep is not the grid asked for"; exit 1; }
import sys, h5py, numpy as np
g = h5py.File(sys.argv[1], "r")["sweep"]
assert list(g["ema_sigma_rel"][:]) == [0, 0, 0.08, 0.08], g["ema_sigma_rel"][:]
assert list(g["guidance"][:]) == [0, 1, 0, 1] and list(g["guide_step"][:]) == [0, 100, 0, 100]
assert g["kid_blocks"].shape == (4, 20), g["kid_blocks"].shape  # 10 blocks x 2 seeds
best = int(g.attrs["best"])
assert g["kid"][best] == g["kid"][:].min() and g["vs_best"][best] == 0 and g["within"][best] == 1
assert all(np.isfinite(g[k][:]).all() for k in ("fid", "fid_se", "kid", "kid_se", "vs_best_se"))
assert "row_1" in g["guides"].attrs and "row_0" not in g["guides"].attrs
# Autoguidance costs the guide's network too: twice the FLOPs per sample of the unguided cell here.
assert abs(g["flops_per_sample"][1] / g["flops_per_sample"][0] - 2) < 1e-9
PY
"$BIN" inspect "$out_dir/run.h5" | grep -q "sweep: 4 cells of 40 images (sample seeds 0,1), weights of step 200; best by kid" ||
  { "$BIN" inspect "$out_dir/run.h5"; echo "FAIL: inspect does not summarise the sweep"; exit 1; }
"$CHECK" "$out_dir/report.html" --expect "Sweep: EMA length, guide and guidance weight" --expect "step 100 @0.05"
echo "PASS"
