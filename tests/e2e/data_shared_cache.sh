#!/usr/bin/env bash
# data_shared_cache.sh TRAINER SERVER IDX_DIR [PROCESSES]: PROCESSES (8) `--download_only` runs
# start at once on one empty --data_dir against a slow loopback mirror of the real MNIST files.
# Every run must exit 0; the server must see each file requested exactly once (the others waited
# on the folder lock, then reused the verified copy); the cache must hold the four files and no
# temporaries.
set -euo pipefail
unset MNIST_MIRROR MNIST_BAKED_DATA  # read by the trainer; the test passes --mirror
trainer=$1 server=$2 idx_dir=$3 processes=${4:-8}
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
for f in "${files[@]}"; do
  [[ -f $idx_dir/$f ]] || { echo "FAIL: $idx_dir/$f is missing: run scripts/fetch-test-data.sh"; exit 1; }
done

work=$(mktemp -d)
server_pid=
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# gzip of the raw idx files: they verify through the content hashes of data/datasets.json.
mkdir -p "$work/mirror"
for f in "${files[@]}"; do gzip -1 -c "$idx_dir/$f" >"$work/mirror/$f.gz"; done
# Slow: 64 KiB every 5 ms, about a second for all four files, so the runs overlap.
"$server" "$work/mirror" "$work/port" --chunk_bytes 65536 --chunk_delay_ms 5 >"$work/requests" &
server_pid=$!
for _ in $(seq 600); do [[ -s $work/port ]] && break; sleep 0.05; done  # 30 s at most
[[ -s $work/port ]] || { echo "FAIL: the loopback server did not start"; exit 1; }
mirror="http://127.0.0.1:$(cat "$work/port")/"

start=$(date +%s.%N)
pids=()
for i in $(seq "$processes"); do
  "$trainer" --download_only --mirror "$mirror" --data_dir "$work/cache" --log_dir "$work/logs" \
    --download_attempts 1 >"$work/out.$i" 2>"$work/err.$i" &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "run $((i + 1)) failed:"; cat "$work/out.$((i + 1))" "$work/err.$((i + 1))"; failed=1
  fi
done
echo "$processes runs: $(echo "$(date +%s.%N) - $start" | bc) s"
(( failed == 0 )) || fail "every run must succeed"

for f in "${files[@]}"; do
  n=$(grep -c "^request /$f.gz\$" "$work/requests" || true)
  (( n == 1 )) || fail "$f.gz was requested $n times, expected once"
  cmp -s "$work/cache/$f.gz" "$work/mirror/$f.gz" || fail "cached $f.gz differs from the mirror's"
done
downloads=$(cat "$work"/out.* | grep -c '^Successfully downloaded ' || true)
(( downloads == 4 )) || fail "expected 4 'Successfully downloaded' lines over all runs, got $downloads"
extracting=$(cat "$work"/out.* | grep -c '^Extracting ' || true)
(( extracting == 4 * processes )) || fail "expected $((4 * processes)) 'Extracting' lines, got $extracting"
if grep -q . "$work"/err.*; then fail "a run wrote to stderr: $(cat "$work"/err.*)"; fi
extra=$(ls -A "$work/cache" | grep -v -x -e '.lock' -e '[a-z0-9-]*-ubyte.gz' || true)
[[ -z $extra ]] || fail "the cache holds leftovers: $extra"
echo "PASS: $processes concurrent runs, each file requested once, cache clean"
