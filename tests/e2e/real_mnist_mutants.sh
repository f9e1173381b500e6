#!/usr/bin/env bash
# real_mnist_mutants.sh TRAINER SERVER IDX_DIR: real_mnist.sh's early-line checks catch a changed
# optimiser that its accuracy threshold lets through. A wrapper stands in for the trainer and
# changes the learning rate, as a missing Adam bias correction does (it multiplies the first
# steps' size by 3 to 7): on the CPU the golden lines must catch it; on a stand-in "GPU" (the CPU
# backend under --backend cuda, with a device node faked) the comparison with the CPU reference
# must. Unchanged, both pass.
set -euo pipefail
trainer=$1 server=$2 idx_dir=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The wrapper: --backend cuda runs the CPU backend, with --learning_rate $WRAP_LR where set;
# --backend cpu runs it with --learning_rate $WRAP_CPU_LR where set.
cat >"$work/trainer" <<EOF2
#!/usr/bin/env bash
args=() gpu=no
for a in "\$@"; do
  if [[ \$a == cuda ]]; then gpu=yes; a=cpu; fi
  args+=("\$a")
done
lr=\${WRAP_CPU_LR:-}
[[ \$gpu == yes ]] && lr=\${WRAP_LR:-}
exec "$trainer" "\${args[@]}" \${lr:+--learning_rate \$lr}
EOF2
chmod +x "$work/trainer"

# check EXPECTED BACKEND [VAR=VALUE...]: real_mnist.sh over 110 steps (accuracy lines 0 to 100).
check() {
  local expected=$1 backend=$2 rc=0
  shift 2
  env -u MNIST_MIRROR -u MNIST_BAKED_DATA MNIST_TEST_DEVICE_NODES=/ "$@" \
    bash "$here/real_mnist.sh" "$work/trainer" "$server" "$idx_dir" "$backend" 110 100 0.5 \
    >"$work/log" 2>&1 || rc=$?
  if [[ $expected == pass ]]; then
    (( rc == 0 )) || { tail -20 "$work/log"; fail "$backend $*: exit $rc, expected a pass"; }
  else
    (( rc == 1 )) && grep -q "^FAIL: .*more than .* apart" "$work/log" ||
      { tail -20 "$work/log"; fail "$backend $*: exit $rc, expected the early lines to fail"; }
  fi
  echo "ok: $backend $*: exit $rc: $(grep -E '^(PASS|FAIL): .*(steps 0 to 100|apart)' "$work/log" | tail -1)"
}

check pass cpu
check fail cpu WRAP_CPU_LR=0.0011
check pass cuda
check fail cuda WRAP_LR=0.003
echo "PASS: the early accuracy lines catch a changed optimiser on the CPU and on a GPU backend"
