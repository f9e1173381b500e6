#!/usr/bin/env bash
# tests/fuzz/run.sh [TARGET...]: builds the libFuzzer targets (clang, ASan + UBSan) in build/fuzz,
# replays each target's seed corpus and past findings (tests/fuzz/regressions/TARGET/), then fuzzes
# each for FUZZ_SECONDS (default 30). Targets: idx gzip checkpoint cli (default: all). Exits 1 on
# any finding: the input is kept in build/fuzz/findings/TARGET/; once the bug is fixed, copy it
# into tests/fuzz/regressions/TARGET/ so every later run (and ctest) replays it.
#   FUZZ_SECONDS=0 tests/fuzz/run.sh        # build and replay only
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/fuzz
build=${FUZZ_BUILD_DIR:-$root/build/fuzz}
seconds=${FUZZ_SECONDS:-30}
targets=("$@")
((${#targets[@]})) || targets=(idx gzip checkpoint cli)

# Longest input per target: room for a few 28x28 images, a small gzip stream, a valid checkpoint of
# the 2-hidden-unit mlp seed (19 KB), a long command line.
declare -A max_len=([idx]=4096 [gzip]=4096 [checkpoint]=24576 [cli]=1024)

cmake -S "$here" -B "$build" -DCMAKE_CXX_COMPILER="${FUZZ_CXX:-clang++}" >/dev/null
cmake --build "$build" -j "${FUZZ_JOBS:-$(nproc)}"

# Seeds made at run time (they follow the checkpoint format as it changes).
generated=$build/generated
rm -rf "$generated" && mkdir -p "$generated/checkpoint"
"$build/checkpoint_seeds" "$generated/checkpoint" >/dev/null

failed=()
for t in "${targets[@]}"; do
  [[ -n ${max_len[$t]:-} ]] || { echo "unknown fuzz target $t (idx gzip checkpoint cli)" >&2; exit 2; }
  fuzzer=$build/fuzz_$t
  findings=$build/findings/$t
  corpus=$build/corpus/$t  # what the fuzzer learns; kept between runs, never checked in
  mkdir -p "$findings" "$corpus"
  seeds=("$here/corpus/$t")
  [[ -d $generated/$t ]] && seeds+=("$generated/$t")
  dict=()
  [[ -f $here/$t.dict ]] && dict=(-dict="$here/$t.dict")
  log=$build/$t.log

  # Every seed and every past finding, once each (libFuzzer runs a folder's files with -runs=0).
  regressions=$(find "$here/regressions/$t" -type f ! -name '.*' 2>/dev/null | wc -l)
  echo "== fuzz_$t: replaying $(find "${seeds[@]}" -type f | wc -l) seeds and $regressions regressions"
  if ! "$fuzzer" -runs=0 -artifact_prefix="$findings/" "${seeds[@]}" "$here/regressions/$t" \
      >"$log" 2>&1; then
    tail -n 40 "$log"; failed+=("$t (replay)"); continue
  fi

  ((seconds > 0)) || continue
  echo "== fuzz_$t: fuzzing for $seconds s"
  if "$fuzzer" -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$findings/" -print_final_stats=1 "${dict[@]}" "$corpus" "${seeds[@]}" \
      >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^Done ' "$log" | tr '\n' ' '; echo
  else
    tail -n 60 "$log"
    failed+=("$t")
  fi
done

if ((${#failed[@]})); then
  echo "FUZZ FINDINGS in: ${failed[*]}" >&2
  find "$build/findings" -type f >&2
  echo "After fixing, copy each finding into tests/fuzz/regressions/TARGET/ (replayed by every run)." >&2
  exit 1
fi
echo "fuzzing: no findings (${targets[*]}, ${seconds} s each)"
