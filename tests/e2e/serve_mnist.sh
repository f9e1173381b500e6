# Sourced by the e2e scripts: serve_mnist SERVER IDX_DIR WORK gzips the four idx files of IDX_DIR
# into WORK/mirror, serves that folder on loopback with SERVER (tests/support's scripted HTTP
# server) and sets `mirror` (its base URL) and `server_pid` (the caller's cleanup kills it).
serve_mnist() {
  local server=$1 idx_dir=$2 work=$3 f
  mkdir -p "$work/mirror"
  for f in "$idx_dir"/*-ubyte; do gzip -1 -c "$f" >"$work/mirror/$(basename "$f").gz"; done
  "$server" "$work/mirror" "$work/port" >/dev/null &
  server_pid=$!
  # 30 s at most: bounded, with room for a loaded machine.
  for _ in $(seq 600); do [[ -s $work/port ]] && break; sleep 0.05; done
  [[ -s $work/port ]] || { echo "FAIL: the loopback server did not start"; exit 1; }
  mirror="http://127.0.0.1:$(cat "$work/port")/"
}
