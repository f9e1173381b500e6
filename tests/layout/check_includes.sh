#!/usr/bin/env bash
# check_includes.sh ROOT: every quoted #include points down the layers, never up or sideways.
#   src/app -> src/gpu -> src/train -> src/data -> src/error.h   (a layer includes itself and below)
#   src/app and src/gpu may include kernels/; every host layer may include kernels/common/;
#   kernels/ includes only kernels/ (never src/), and kernels/common/ only kernels/common/.
set -uo pipefail
root=${1:?usage: check_includes.sh ROOT}
cd "$root" || exit 2
rank() {  # the layer of a path (host includes are written from src/, kernel ones from the root)
  case $1 in
    error.h | src/error.h | stop.h | src/stop.h) echo 0 ;;
    data/* | src/data/*) echo 1 ;;
    train/* | src/train/*) echo 2 ;;
    gpu/* | src/gpu/*) echo 3 ;;
    app/* | src/app/*) echo 4 ;;
    *) echo -1 ;;
  esac
}
failures=0
bad() { echo "FAIL $1: includes \"$2\" ($3)"; failures=$((failures + 1)); }
checked=0
while IFS= read -r file; do
  while IFS= read -r inc; do
    checked=$((checked + 1))
    case $file in
      kernels/common/*)
        [[ $inc == kernels/common/* || -e kernels/common/$inc ]] || bad "$file" "$inc" "kernels/common includes only kernels/common" ;;
      kernels/*)
        dir=$(dirname "$file")
        [[ $inc == kernels/* || -e $dir/$inc || -e kernels/$inc ]] || bad "$file" "$inc" "kernels never include src/" ;;
      src/*)
        if [[ $inc == kernels/common/* ]]; then continue; fi
        if [[ $inc == kernels/* ]]; then
          (( $(rank "$file") >= 3 )) || bad "$file" "$inc" "only src/gpu and src/app use the kernels"
          continue
        fi
        [[ -e src/$inc ]] || { bad "$file" "$inc" "not a path from src/"; continue; }
        (( $(rank "src/$inc") <= $(rank "$file") )) || bad "$file" "$inc" "a layer above it" ;;
    esac
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file")
done < <(find src kernels -type f \( -name '*.h' -o -name '*.cuh' -o -name '*.cpp' -o -name '*.cu' -o -name '*.in' \) | sort)
(( checked > 50 )) || { echo "FAIL only $checked includes found: wrong ROOT?"; exit 1; }
(( failures == 0 )) && echo "layering holds ($checked includes checked)"
exit $(( failures > 0 ))
