#!/usr/bin/env bash
# The latent-diffusion autoencoder stage under mpirun -np 2 (`ddpm_dist autoencoder`): its own
# checkpoints and history in <run>/autoencoder, the latent statistics in its run.h5 (/autoencoder),
# a continuation with --resume auto from the newest checkpoint, and a refusal, naming the key, to
# continue with another architecture. The plumbing only: a run this short reconstructs poorly
# (what the autoencoder reaches is measured in docs/latent.md).
#   autoencoder.sh MPIEXEC BINARY CONFIG
set -euo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT
ae=(--set run.threads=1 --set run.out_dir="$out_dir" --set autoencoder.base_channels=8 --set autoencoder.groups=4
    --set train.log_every=10 --set train.checkpoint_every=10)
"$MPIEXEC" -n 2 --oversubscribe "$BIN" autoencoder "$CONFIG" "${ae[@]}" --set autoencoder.steps=20 2>&1 | tee "$out_dir/log"
stage="$out_dir/autoencoder"
grep -Eq "latents have mean -?[0-9.]+ and standard deviation [0-9.]+ over 60000 training images" "$out_dir/log" ||
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
echo PASS
