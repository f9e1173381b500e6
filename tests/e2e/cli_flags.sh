#!/usr/bin/env bash
# cli_flags.sh TRAINER: the command line of the real binary. Bad input is exit 2 with one
# "mnist-train: error:" line (never exit 1, which is for bugs); a flag without its value never
# swallows the next flag; --version and --help exit 0.
set -uo pipefail
unset MNIST_MIRROR MNIST_BAKED_DATA JOB_COMPLETION_INDEX  # independent of the caller's environment
trainer=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

expect() {  # expect CODE ARGS... : the exit code, and for 2 the one-line error
  local want=$1; shift
  "$trainer" "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [[ $got != "$want" ]]; then
    fail "$*: exit $got, expected $want"; cat "$work/out" "$work/err"; return
  fi
  if [[ $want == 2 ]] && { [[ $(wc -l <"$work/err") != 1 ]] || ! grep -q '^mnist-train: error: ' "$work/err"; }; then
    fail "$*: not one 'mnist-train: error:' line"; cat "$work/err"; return
  fi
  echo "ok   $want  $*: $(cat "$work/err" "$work/out" | head -n1 | cut -c1-160)"
}
expect_in() {  # expect_in FILE TEXT: FILE (out or err) of the last run holds TEXT
  grep -qF -- "$2" "$work/$1" || { fail "expected '$2' in std$1:"; cat "$work/$1"; }
}
dry=(--backend cpu --dry_run)

expect 0 --version
expect_in out "mnist-train 1."
expect 0 --help
expect_in out "--checkpoint_every"

# A flag without its value: exit 2, nothing runs.
expect 2 --data_dir --dry_run --fake_data
expect_in err "--data_dir needs a value"
expect 2 "${dry[@]}" --log_dir
expect 2 "${dry[@]}" --mirror --fake_data
# An empty value given with '=' is a value: --fake_data is kept.
expect 0 "${dry[@]}" --log_dir= --fake_data
expect_in out "data synthetic"
expect 0 "${dry[@]}" --data_dir ./--odd --log_dir ""
expect_in out "in ./--odd"

# Numbers: finite, in range, no wrap; readable bounds.
for args in "--learning_rate nan" "--learning_rate inf" "--learning_rate 1e309" "--learning_rate 0" \
            "--dropout 1e-50" "--dropout 0" "--dropout 1.5" "--seed -1" "--seed 18446744073709551616" \
            "--seed 1e3" "--max_steps -1" "--max_steps 1e3" "--max_steps 99999999999" \
            "--download_timeout 0" "--download_timeout nan" "--download_timeout 1e-9" \
            "--download_attempts 0" "--batch_size 0" "--hidden_units 0" "--eval_every 0" \
            "--benchmark_steps 0" "--benchmark_batches 1,,2" "--checkpoint_every 5h" \
            "--checkpoint_every -1" "--mirror ftp://example.com/"; do
  # shellcheck disable=SC2086  # each entry is a flag and its value
  expect 2 "${dry[@]}" $args
done
expect 2 "${dry[@]}" --mirror ""
expect 2 "${dry[@]}" --learning_rate 1e999
expect_in err "out of range (1e-10 to 1e+30)"
[[ $(wc -c <"$work/err") -lt 200 ]] || fail "range message too long: $(cat "$work/err")"
expect 0 "${dry[@]}" --seed 18446744073709551615 --dropout 1e-6 --checkpoint_every 5m --max_steps 0

# A mistyped flag names the closest one.
expect 2 --max_step 5
expect_in err "unknown flag --max_step; did you mean --max_steps?"
expect 2 --fake-data
expect_in err "did you mean --fake_data?"

# Odd shapes: exit 2, never 1.
for args in "--" "-" "-x" "stray" "--=" "--fake_data=" "--fake_data=maybe" "--max_steps 1 --max_steps 2" \
            "--benchmark_backends auto" "--cuda_graphs maybe" "--dataset cifar" "--backend gpu"; do
  # shellcheck disable=SC2086
  expect 2 $args
done

# Several processes need the Job's shared secret (a file of at least 32 bytes); the file's content
# never appears in a message; a world of one ignores the flag, as it ignores --rendezvous.
world=(--dry_run --world_size 2 --rendezvous 127.0.0.1:29400)
printf '%s\n' 0123456789abcdef0123456789abcdef >"$work/secret"
ln -s "$work/secret" "$work/secret-link"  # how Kubernetes mounts a Secret's key
printf 'too-short-secret\n' >"$work/short"
expect 2 "${world[@]}"
expect_in err "needs --rendezvous_secret_file PATH"
expect 2 "${world[@]}" --rendezvous_secret_file "$work/missing"
expect_in err "missing: No such file"
expect 2 "${world[@]}" --rendezvous_secret_file "$work/short"
expect_in err "fewer than 32"
grep -q too-short-secret "$work/err" && fail "the secret's content is in the message: $(cat "$work/err")"
JOB_COMPLETION_INDEX=1 expect 0 "${world[@]}" --rendezvous_secret_file "$work/secret-link"
expect 0 "${dry[@]}" --rendezvous_secret_file "$work/missing"

(( failures == 0 )) && echo "PASS: command line"
exit $(( failures > 0 ))
