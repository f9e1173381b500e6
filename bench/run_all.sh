#!/usr/bin/env bash
# bench/run_all.sh [OPTIONS]: mnist-train --benchmark (our cuda backend and the cublas baseline)
# and every peer of bench/peers.py (JAX, PyTorch eager, CUDA graph, torch.compile) on this GPU in
# one call, then one table of the training step beside them (bench/table.py).
#   --trainer PATH     mnist-train (default: build/device/mnist-train under the checkout)
#   --data_dir DIR     real MNIST (the four .gz files mnist-train caches); default: --fake_data for
#                      mnist-train and random bytes for the peers (the step's time does not depend
#                      on the pixels)
#   --batches LIST     batch sizes, comma-separated (default 100,1024,8192)
#   --steps N          timed steps per configuration on both sides (default 200)
#   --precisions LIST  fp32,tf32,bf16 (the default) or a part of it
#   --peers LIST       bench/peers.py --peers (default: all of them)
#   --out DIR          where ours.txt, ours.json, peers.txt, peers.json and table.txt go (default: a
#                      new folder under /tmp, kept and named at the end)
# PYTHON names the interpreter with JAX and PyTorch (default python3).
# Exit status: mnist-train's when it fails (nothing else runs); else 1 when a peer failed (its
# rows say why; the table is printed all the same); 0 when everything ran.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
trainer=$here/../build/device/mnist-train
data_dir='' batches=100,1024,8192 steps=200 precisions=fp32,tf32,bf16 peers='' out=''
python=${PYTHON:-python3}
usage() { sed -n '2,17p' "$0" >&2; exit 2; }
while (($#)); do
  [[ $# -ge 2 ]] || usage
  case $1 in
    --trainer) trainer=$2 ;;
    --data_dir) data_dir=$2 ;;
    --batches) batches=$2 ;;
    --steps) steps=$2 ;;
    --precisions) precisions=$2 ;;
    --peers) peers=$2 ;;
    --out) out=$2 ;;
    *) usage ;;
  esac
  shift 2
done
[[ -x $trainer ]] || { echo "run_all.sh: no mnist-train at $trainer (build it, or pass --trainer)" >&2; exit 2; }
[[ -n $out ]] || out=$(mktemp -d /tmp/mnist-bench.XXXXXX)
mkdir -p "$out"

data=(--fake_data)
peer_data=()
if [[ -n $data_dir ]]; then
  data=(--data_dir "$data_dir")
  peer_data=(--data_dir "$data_dir")
fi

echo "== mnist-train --benchmark (cuda and cublas) -> $out/ours.txt, ours.json"
status=0
"$trainer" --benchmark "${data[@]}" --benchmark_batches "$batches" --benchmark_steps "$steps" \
  --benchmark_precisions "$precisions" --benchmark_out "$out/ours.json" --log_dir '' \
  --termination_log '' 2>&1 | tee "$out/ours.txt" || status=$?
if ((status)); then
  echo "run_all.sh: mnist-train --benchmark failed (exit $status); see $out/ours.txt" >&2
  exit "$status"
fi

echo
echo "== bench/peers.py -> $out/peers.txt, peers.json"
peer_args=(--batches "$batches" --steps "$steps" --precisions "$precisions" --out "$out/peers.json")
[[ -z $peers ]] || peer_args+=(--peers "$peers")
peers_status=0
"$python" "$here/peers.py" "${peer_args[@]}" "${peer_data[@]}" 2>&1 | tee "$out/peers.txt" ||
  peers_status=$?

echo
echo "== the training step, every framework (ours x: the row's median over mnist-train cuda's)"
table_status=0
"$python" "$here/table.py" "$out/ours.json" "$out/peers.json" | tee "$out/table.txt" ||
  table_status=$?
echo "(results in $out)"
if ((peers_status || table_status)); then exit 1; fi
