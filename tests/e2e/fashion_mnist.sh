#!/usr/bin/env bash
# fashion_mnist.sh TRAINER SERVER DIR: --dataset fashion-mnist downloads Zalando's files over
# loopback, verifies them against the built-in checksums, and trains on them (CPU, 31 steps).
set -euo pipefail
unset MNIST_MIRROR MNIST_BAKED_DATA  # read by the trainer; the test passes --mirror
trainer=$1 server=$2 dir=$3
[[ -f $dir/train-images-idx3-ubyte.gz ]] || { echo "FAIL: $dir lacks Fashion-MNIST (apt-get install dataset-fashion-mnist)"; exit 1; }
work=$(mktemp -d)
server_pid=
trap '[[ -n $server_pid ]] && kill $server_pid 2>/dev/null; rm -rf "$work"' EXIT
"$server" "$dir" "$work/port" >/dev/null &
server_pid=$!
for _ in $(seq 600); do [[ -s $work/port ]] && break; sleep 0.05; done  # 30 s at most
[[ -s $work/port ]] || { echo "FAIL: the loopback server did not start"; exit 1; }
"$trainer" --dataset fashion-mnist --backend cpu --max_steps 31 --download_attempts 1 \
  --mirror "http://127.0.0.1:$(cat "$work/port")/" --data_dir "$work/data" --log_dir "" | tee "$work/out"
(( $(grep -c '^Successfully downloaded' "$work/out") == 4 )) || { echo "FAIL: expected 4 downloads"; exit 1; }
accuracy=$(sed -n 's/^Accuracy at step 30: //p' "$work/out")
awk -v a="$accuracy" 'BEGIN { exit !(a >= 0.6) }' || { echo "FAIL: accuracy $accuracy at step 30"; exit 1; }
# MNIST's checksums must not accept Fashion-MNIST files.
if "$trainer" --dataset mnist --download_only --download_attempts 1 --mirror "file://$dir/" --data_dir "$work/m" \
  >"$work/out2" 2>&1; then echo "FAIL: Fashion-MNIST files passed as MNIST"; exit 1; fi
grep -q 'checksum mismatch' "$work/out2" || { echo "FAIL: no checksum message"; cat "$work/out2"; exit 1; }
echo "PASS: fashion-mnist verified and trained (step 30: $accuracy)"
