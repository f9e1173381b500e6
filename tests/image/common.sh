# shellcheck shell=bash
# Sourced by the image tests: `need TOOL...`, `need_root` and `need_runtime` (runc or crun, as root)
# exit 77 (ctest: skipped) when a tool is missing or this is not root; under CI (CI set, as .ci/run
# runs) that is a failure instead. `bundle_of NAME` is the unpacked image tests/image/build.sh left.
need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null && continue
    echo "$t not found: the image tests need umoci and an OCI runtime (runc or crun): scripts/install-deps.sh"
    [[ -n ${CI:-} ]] && exit 1
    exit 77
  done
}
need_root() {
  [[ $(id -u) == 0 ]] && return
  echo "not root: the images' files are owned by root and 65532, and the runtime runs rootful containers"
  [[ -n ${CI:-} ]] && exit 1
  exit 77
}
need_runtime() {
  command -v runc >/dev/null || command -v crun >/dev/null || need runc
  need_root
}
bundle_of() {  # uses the caller's image_dir
  local b=${image_dir:?}/bundle/$1
  [[ -f $b/config.json ]] || { echo "FAIL no bundle $b: image_build (tests/image/build.sh) did not run or failed"; exit 1; }
  echo "$b"
}
