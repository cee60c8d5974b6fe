#!/usr/bin/env bash
# Every bad input a user can give, through the real command line: the run fails (or, where the
# input is allowed but wasteful, warns) with a message that names the file, key or value and what
# to do. Prints one table row per input (docs/reliability.md).
#   bad_inputs.sh MPIEXEC BINARY CONFIG           (CONFIG: configs/smoke.yaml)
set -uo pipefail
MPIEXEC="$1" BIN="$2" CONFIG="$3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
n=0
# check NAME EXPECTED_EXIT(fail|ok) PATTERN COMMAND...: runs it and asserts the exit and a line.
check() {
  local name="$1" expect="$2" pattern="$3"
  shift 3
  timeout 120 bash -c '"$@"' check "$@" >"$work/log" 2>&1
  local rc=$?
  [ "$rc" -ne 124 ] || { tail -5 "$work/log"; echo "FAIL [$name]: hung"; exit 1; }
  if [ "$expect" = fail ] && [ "$rc" -eq 0 ]; then tail -5 "$work/log"; echo "FAIL [$name]: exit 0"; exit 1; fi
  if [ "$expect" = ok ] && [ "$rc" -ne 0 ]; then tail -5 "$work/log"; echo "FAIL [$name]: exit $rc"; exit 1; fi
  local line
  line="$(grep -E -m1 -- "$pattern" "$work/log")" || { tail -5 "$work/log"; echo "FAIL [$name]: no line matches '$pattern'"; exit 1; }
  line="$(echo "$line" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^\[[0-9:]*\] [a-z]* //' -e 's/|/\\|/g' | cut -c1-230)"
  echo "| $name | exit $rc | $line |"
  n=$((n + 1))
}
run1() { "$BIN" "$@" --set run.threads=1; }
export BIN
export -f run1

echo "| bad input | result | message (first line, cut at 230 characters) |"
echo "|---|---|---|"
# Data files.
mkdir -p "$work/data"
check "MNIST folder missing" fail "$work/none/train-images-idx3-ubyte: cannot open" run1 train "$CONFIG" --set data.dir="$work/none"
cp data/mnist/* "$work/data/"
head -c 1000000 data/mnist/train-images-idx3-ubyte >"$work/data/train-images-idx3-ubyte"
check "truncated IDX file" fail "train-images-idx3-ubyte: expected [0-9]+ bytes" run1 train "$CONFIG" --set data.dir="$work/data"
head -c 100000 /dev/urandom >"$work/data/train-images-idx3-ubyte"
check "foreign file in place of an IDX file" fail "train-images-idx3-ubyte: not an unsigned-byte IDX file" run1 train "$CONFIG" --set data.dir="$work/data"
cp data/mnist/train-images-idx3-ubyte "$work/data/"
cp data/mnist/t10k-labels-idx1-ubyte "$work/data/train-labels-idx1-ubyte"
check "label file of another split" fail "train-labels-idx1-ubyte: holds 10000" run1 train "$CONFIG" --set data.dir="$work/data"
# Gzipped IDX files, as Debian's dataset packages ship them, are read as they are.
mkdir -p "$work/gz"
for f in data/mnist/*-ubyte; do gzip -c "$f" >"$work/gz/$(basename "$f").gz"; done
check "gzipped IDX files (read as they are, allowed)" ok "gz: 60000 training images" \
  run1 train "$CONFIG" --set data.dir="$work/gz" --set run.out_dir="$work/gzrun" --set train.steps=2
head -c 5000000 data/mnist/train-images-idx3-ubyte | gzip -c >"$work/gz/train-images-idx3-ubyte.gz"
check "truncated gzipped IDX file" fail "train-images-idx3-ubyte.gz: expected [0-9]+ bytes" run1 train "$CONFIG" --set data.dir="$work/gz"
# Configuration.
printf 'train:\n  steps: [1, 2\n' >"$work/bad.yaml"
check "YAML that does not parse" fail "bad.yaml:[0-9]+:[0-9]+" run1 train "$work/bad.yaml"
check "config file missing" fail "File does not exist: .*missing.yaml" run1 train "$work/missing.yaml"
check "unknown key" fail "unknown key 'train.stepz'; did you mean 'train.steps'" run1 train "$CONFIG" --set train.stepz=5
check "wrong type" fail "key 'train.steps' must be" run1 train "$CONFIG" --set train.steps=many
check "impossible value" fail "key 'train.lr'" run1 train "$CONFIG" --set train.lr=-1
check "a key that no longer exists" fail "unknown key 'model.image_size'" run1 train "$CONFIG" --set model.image_size=32
check "value not in the allowed set" fail "key 'train.on_write_error' is 'retry'; allowed" run1 train "$CONFIG" --set train.on_write_error=retry
check "global batch not divisible by the ranks" fail "must be divisible by the number of ranks" \
  "$MPIEXEC" -n 2 --oversubscribe "$BIN" train "$CONFIG" --set run.threads=1 --set train.batch_size=33 --set run.out_dir="$work/div"
# Output folder and checkpoints.
touch "$work/file"
check "output folder that cannot be created" fail "cannot create the output folder" run1 train "$CONFIG" --set run.out_dir="$work/file/run"
check "--resume of a file that does not exist" fail "no such checkpoint; use --resume auto" run1 train "$CONFIG" --set run.out_dir="$work/r" --resume "$work/nope.h5"
check "sampling with no checkpoint" fail "no complete checkpoint to sample from" run1 sample "$CONFIG" --set run.out_dir="$work/empty"
run1 train "$CONFIG" --set run.out_dir="$work/small" --set train.steps=20 --set train.checkpoint_every=10 >/dev/null 2>&1 ||
  { echo "FAIL: could not train the 20-step run the next cases need"; exit 1; }
ckpt="$work/small/checkpoints/step_00000010.h5"
check "checkpoint of another architecture" fail "$ckpt" run1 train "$CONFIG" --set run.out_dir="$work/small" --set model.base_channels=8 --resume "$ckpt"
check "checkpoint of another noise schedule" fail "diffusion.timesteps: 100 in the checkpoint, 50 in" \
  run1 train "$CONFIG" --set run.out_dir="$work/small" --set diffusion.timesteps=50 --resume "$ckpt"
check "sampling under another prediction" fail "use the checkpoint's values \\(--set 'diffusion.prediction=eps'\\)" \
  run1 sample "$CONFIG" --set run.out_dir="$work/small" --set sample.num_samples=4 --set diffusion.prediction=v
check "evaluating under another dropout (same shapes)" fail "model.dropout: [0-9.]+ in the checkpoint, 0.2 in" \
  run1 eval "$CONFIG" --set run.out_dir="$work/small" --set sample.num_samples=4 --set model.dropout=0.2
check "sampling from both weight sets" fail "draws from one set of weights, but eval.weights is .both.: set it to .ema. or .raw." \
  run1 sample "$CONFIG" --set run.out_dir="$work/small" --set sample.num_samples=4 --set eval.weights=both
check "the retired key sample.use_ema" fail "'sample.use_ema' is no longer a key: eval.weights" \
  run1 sample "$CONFIG" --set run.out_dir="$work/small" --set sample.num_samples=4 --set sample.use_ema=false
check "sampling the raw weights (allowed)" ok "raw weights, step 20" \
  run1 sample "$CONFIG" --set run.out_dir="$work/small" --set sample.num_samples=4 --set eval.weights=raw
head -c 20000 "$ckpt" >"$work/truncated.h5"
check "truncated checkpoint" fail "truncated.h5: cannot open as HDF5|truncated.h5: not an HDF5 file" run1 train "$CONFIG" --set run.out_dir="$work/t" --resume "$work/truncated.h5"
check "file that is not HDF5" fail "README.md: not an HDF5 file" "$BIN" inspect README.md
# The newest checkpoint damaged in the middle (16 bytes of its tensor data overwritten).
newest="$work/small/checkpoints/step_00000020.h5"
size=$(stat -c %s "$newest")
head -c 16 /dev/urandom | dd of="$newest" bs=1 seek=$((size / 2)) conv=notrunc status=none
check "damaged checkpoint: inspect --verify" fail "DAMAGED: [0-9]+ problem" "$BIN" inspect --verify "$newest"
check "damaged checkpoint: --resume PATH" fail "step_00000020.h5: does not verify: /" \
  run1 train "$CONFIG" --set run.out_dir="$work/small" --set train.steps=30 --resume "$newest"
check "damaged newest checkpoint: sampling" fail "step_00000020.h5: does not verify: /" \
  run1 sample "$CONFIG" --set run.out_dir="$work/small" --set sample.num_samples=4
check "damaged newest checkpoint: --resume auto (falls back, allowed)" ok "training continues from step 10" \
  run1 train "$CONFIG" --set run.out_dir="$work/small" --set train.steps=20 --set train.checkpoint_every=10 --resume auto
check "more ranks than sample batches (allowed, warned)" ok "makes 1 batch\(es\) for 2 ranks" \
  "$MPIEXEC" -n 2 --oversubscribe "$BIN" sample "$CONFIG" --set run.threads=1 --set run.out_dir="$work/small" --set sample.num_samples=4 --set sample.batch_size=4
echo "PASS: $n bad inputs, each with its message"
