#!/usr/bin/env bash
# Latent diffusion under mpirun -np 2. The autoencoder stage (`ddpm_dist autoencoder`): its own
# checkpoints and history in <run>/autoencoder, the latent statistics in its run.h5 (/autoencoder)
# and the latent cache (latents.h5), a continuation with --resume auto from the newest checkpoint,
# and a refusal, naming the key, to continue with another architecture. Then the whole pipeline in
# latent space (`ddpm_dist CONFIG` with diffusion.space: latent): the cache kept, the report with
# the reconstruction FID, /latent and /eval in run.h5; and the refusals of a cache and of a run made
# with another autoencoder. The plumbing only: runs this short reconstruct and sample poorly (what
# latent diffusion reaches is measured in docs/journal/quality.md and docs/journal/latent.md).
#   autoencoder.sh MPIEXEC BINARY CONFIG
set -euo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT
# A small MNIST (the first 4096 training and 1000 test images, in IDX files of their own), so that
# each encoding of the training set takes a fraction of a second, and a copy of the evaluation
# classifier beside it, whose feature cache is then that of this small set.
/usr/bin/python3 - data/mnist "$out_dir/mnist" <<'PY'
import os, struct, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
for name, n in (("train-images-idx3-ubyte", 4096), ("train-labels-idx1-ubyte", 4096),
                ("t10k-images-idx3-ubyte", 1000), ("t10k-labels-idx1-ubyte", 1000)):
    with open(os.path.join(src, name), "rb") as f:
        magic, = struct.unpack(">I", f.read(4))
        dims = struct.unpack(">" + "I" * (magic & 0xFF), f.read(4 * (magic & 0xFF)))
        row = 1
        for d in dims[1:]:
            row *= d
        body = f.read(n * row)
    with open(os.path.join(dst, name), "wb") as f:
        f.write(struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), n, *dims[1:]) + body)
PY
cp results/classifier_mnist.h5 "$out_dir/classifier.h5"
ae=(--set run.threads=1 --set run.out_dir="$out_dir" --set data.dir="$out_dir/mnist" --set eval.classifier="$out_dir/classifier.h5"
    --set autoencoder.base_channels=8 --set autoencoder.groups=4 --set train.log_every=10 --set train.checkpoint_every=10)
"$MPIEXEC" -n 2 --oversubscribe "$BIN" autoencoder "$CONFIG" "${ae[@]}" --set autoencoder.steps=20 2>&1 | tee "$out_dir/log"
stage="$out_dir/autoencoder"
grep -Eq "latents have mean -?[0-9.]+ and standard deviation [0-9.]+ over 4096 training images" "$out_dir/log" ||
  { echo "FAIL: no latent statistics in the log"; exit 1; }
"$BIN" inspect --verify "$stage/checkpoints/step_00000020.h5"
attr() { /usr/bin/python3 -c 'import sys, h5py; print(h5py.File(sys.argv[1], "r")["autoencoder"].attrs[sys.argv[2]])' "$stage/run.h5" "$1"; }
[ "$(attr step)" = 20 ] || { echo "FAIL: /autoencoder step is $(attr step)"; exit 1; }
/usr/bin/python3 -c "import sys; s = float(sys.argv[1]); sys.exit(0 if 0 < s < 100 else 1)" "$(attr latent_std)" ||
  { echo "FAIL: latent_std $(attr latent_std)"; exit 1; }
# Ten more steps from the newest checkpoint; the history continues without a gap.
"$MPIEXEC" -n 2 --oversubscribe "$BIN" autoencoder "$CONFIG" "${ae[@]}" --set autoencoder.steps=30 --resume auto \
  > "$out_dir/resumed.log" 2>&1 || { cat "$out_dir/resumed.log"; exit 1; }
grep -q "resumed from .*step_00000020.h5 at step 20" "$out_dir/resumed.log" || { cat "$out_dir/resumed.log"; exit 1; }
steps="$(/usr/bin/python3 -c 'import sys, h5py; print(",".join(str(int(s)) for s in h5py.File(sys.argv[1], "r")["train/step"][()]))' "$stage/run.h5")"
[ "$steps" = "10,20,30" ] || { echo "FAIL: history steps $steps"; exit 1; }
[ "$(attr step)" = 30 ] || { echo "FAIL: /autoencoder step is $(attr step) after the continuation"; exit 1; }
# Another latent width is another architecture: refused, naming the key.
if "$BIN" autoencoder "$CONFIG" "${ae[@]}" --set autoencoder.latent_channels=2 --set autoencoder.steps=40 \
  --resume auto > "$out_dir/refused.log" 2>&1; then
  echo "FAIL: a checkpoint of another autoencoder was continued"; exit 1
fi
grep -q "autoencoder.latent_channels: 4 in the checkpoint, 2 in $CONFIG" "$out_dir/refused.log" || { cat "$out_dir/refused.log"; exit 1; }
# The cache: every training image's posterior under the EMA weights of step 30, and the scale
# measured from them.
cache="$stage/latents.h5"
/usr/bin/python3 - "$cache" <<'PY'
import sys, h5py, numpy as np
g = h5py.File(sys.argv[1], "r")["latents"]
m, s = g["mean"][()].astype(np.float64), g["std"][()].astype(np.float64)
assert m.shape == (4096, 4, 7, 7) and s.shape == m.shape, m.shape
assert (s > 0).all()
mu = m.mean()
sd = np.sqrt((m ** 2 + s ** 2).mean() - mu ** 2)
assert abs(mu - g.attrs["latent_mean"]) < 1e-6 * sd and abs(sd - g.attrs["latent_std"]) < 1e-6 * sd, (mu, sd, dict(g.attrs))
assert g.attrs["autoencoder_step"] == 30, g.attrs["autoencoder_step"]
PY
"$BIN" inspect --verify "$cache"
"$BIN" inspect "$cache" | grep -q "4096 posteriors (mean and std) of 4x7x7" || { "$BIN" inspect "$cache"; exit 1; }
# The whole pipeline in latent space: the autoencoder is complete and its cache current, so the run
# goes on to the diffusion model on 4 x 7 x 7 latents (one U-Net level).
lat=("${ae[@]}" --set autoencoder.steps=30 --set diffusion.space=latent --set model.channel_mult=[1]
     --set sample.clip_x0=false --set train.steps=20 --set sample.num_samples=40 --set sample.batch_size=20
     --set eval.trajectory_images=4)
"$MPIEXEC" -n 2 --oversubscribe "$BIN" "$CONFIG" "${lat[@]}" --resume auto > "$out_dir/latent.log" 2>&1 ||
  { cat "$out_dir/latent.log"; exit 1; }
for expected in "the latent cache is that of these weights; kept" "latent space: the posteriors of 4096 training images" \
                "the U-Net works on 4x7x7" "autoencoder reconstruction FID [0-9.]+ \(floor [0-9.]+, [0-9.]+x\)" \
                "network GFLOPs per sample \(ema weights\): [0-9.]+"; do
  grep -Eq "$expected" "$out_dir/latent.log" || { cat "$out_dir/latent.log"; echo "FAIL: no '$expected'"; exit 1; }
done
/usr/bin/python3 - "$out_dir/run.h5" "$cache" <<'PY'
import sys, h5py
run, cache = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")["latents"]
for k in ("autoencoder", "autoencoder_step", "latent_mean", "latent_std"):
    assert run["latent"].attrs[k] == cache.attrs[k], (k, run["latent"].attrs[k], cache.attrs[k])
assert run["eval/ema/reconstruction_fid"][()] > 0
assert run["eval/ema"].attrs["flops_per_sample"] > 0
assert run["samples/images"].shape == (40, 28, 28), run["samples/images"].shape
PY
ls "$out_dir/samples.png" "$out_dir/forward.png" "$out_dir/reverse.png" > /dev/null
"$(dirname "$0")/check_report.py" "$out_dir/report.html" --expect "The autoencoder (first stage)" \
  --expect "test images (top) and the autoencoder's reconstructions (bottom)" --expect "autoencoder reconstruction FID"
"$BIN" inspect "$out_dir/run.h5" | grep -q "latent space: the latents of the autoencoder with weights" ||
  { "$BIN" inspect "$out_dir/run.h5"; exit 1; }
# Ten more autoencoder steps make another autoencoder and a new cache: the diffusion run, trained
# on the old one's latents, is refused; so is the old cache, put back, for training.
cp "$cache" "$out_dir/old_latents.h5"
"$MPIEXEC" -n 2 --oversubscribe "$BIN" autoencoder "$CONFIG" "${ae[@]}" --set autoencoder.steps=40 --resume auto \
  > "$out_dir/ae40.log" 2>&1 || { cat "$out_dir/ae40.log"; exit 1; }
if "$BIN" eval "$CONFIG" "${lat[@]}" > "$out_dir/refused_eval.log" 2>&1; then
  echo "FAIL: a model trained on another autoencoder's latents was evaluated"; exit 1
fi
grep -q "the diffusion model was trained on the latents of another autoencoder" "$out_dir/refused_eval.log" ||
  { cat "$out_dir/refused_eval.log"; exit 1; }
cp "$out_dir/old_latents.h5" "$cache"
if "$BIN" train "$CONFIG" "${lat[@]}" > "$out_dir/refused_cache.log" 2>&1; then
  echo "FAIL: a cache of another autoencoder was trained on"; exit 1
fi
grep -q "latents.h5: the latent cache was made by another autoencoder" "$out_dir/refused_cache.log" ||
  { cat "$out_dir/refused_cache.log"; exit 1; }
echo PASS
