#!/usr/bin/env bash
# check_includes.sh ROOT: every #include of project code points down the layers, never up or sideways.
#   src/app -> src/gpu -> src/train -> src/summary -> src/data -> src/error.h, src/stop.h, src/progress.h   (a layer includes
#   itself and the layers below); src/dist (the multi-process rendezvous) is a layer of its own on
#   the bottom one: it includes itself and src/error.h, src/stop.h, src/progress.h, and src/train
#   and the layers above it may include it (none does yet); src/app and src/gpu may include
#   kernels/; every host layer may include kernels/common/; kernels/ includes only kernels/ (never src/), and kernels/common/ only
#   kernels/common/. Host code writes includes from src/ ("train/loop.h") or, for kernels, from the
#   root ("kernels/gemm.h"); kernel code writes them from kernels/ ("common/philox.h") or from its
#   own folder. No project include may climb with "..".
set -uo pipefail
root=${1:?usage: check_includes.sh ROOT}
cd "$root" || exit 2
rank() {  # the layer of a path under src/
  case $1 in
    src/error.h | src/stop.h | src/progress.h | src/progress.cpp | src/stop.cpp | src/watchdog.h | src/watchdog.cpp) echo 0 ;;
    src/data/*) echo 1 ;;
    src/summary/*) echo 2 ;;
    src/train/*) echo 3 ;;
    src/gpu/*) echo 4 ;;
    src/app/*) echo 5 ;;
    src/dist/*) echo 0 ;;  # on the bottom layer, beside it; only src/train and above use it
    *) echo 9 ;;  # anything else under src/ is not a layer: refused below
  esac
}
failures=0
bad() { echo "FAIL $1: includes \"$2\" ($3)"; failures=$((failures + 1)); }
checked=0
# Where an include resolves, as the compiler looks: the file's folder, then src/, kernels/, the root.
resolve() {
  local file=$1 inc=$2 dir
  dir=$(dirname "$file")
  for base in "$dir" src kernels .; do
    if [[ -e $base/$inc ]]; then realpath -m --relative-to=. "$base/$inc"; return; fi
  done
}
while IFS= read -r file; do
  while IFS= read -r line; do
    inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^">]*)[">].*/\1/' <<<"$line")
    target=$(resolve "$file" "$inc")
    [[ -n $target ]] || continue  # a system or library header
    checked=$((checked + 1))
    [[ $inc != *..* ]] || { bad "$file" "$inc" "climbs with .."; continue; }
    case $file in
      kernels/common/*) [[ $target == kernels/common/* ]] || bad "$file" "$inc" "kernels/common includes only kernels/common" ;;
      kernels/*) [[ $target == kernels/* ]] || bad "$file" "$inc" "kernels never include src/" ;;
      src/*)
        if [[ $target == kernels/common/* ]]; then continue; fi
        if [[ $target == kernels/* ]]; then
          (( $(rank "$file") >= 4 && $(rank "$file") < 9 )) || bad "$file" "$inc" "only src/gpu and src/app use the kernels"
          continue
        fi
        [[ $target == src/* ]] || { bad "$file" "$inc" "outside src/ and kernels/"; continue; }
        if [[ $target == src/dist/* && $file != src/dist/* ]] && (( $(rank "$file") < 3 )); then
          bad "$file" "$inc" "only src/train and the layers above it use src/dist"; continue
        fi
        (( $(rank "$target") <= $(rank "$file") )) || bad "$file" "$inc" "a layer above it" ;;
    esac
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' "$file")
done < <(find src kernels -type f | sort)
(( checked > 50 )) || { echo "FAIL only $checked includes found: wrong ROOT?"; exit 1; }
(( failures == 0 )) && echo "layering holds ($checked includes checked)"
exit $(( failures > 0 ))
