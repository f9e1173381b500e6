# shellcheck shell=bash
# Sourced by the e2e scripts: check_json FILE PYTHON-EXPRESSION... asserts each expression over the
# JSON document `d` (with `re` at hand) and counts a failure in the caller's `failures`.
check_json() {
  local file=$1; shift
  python3 - "$file" "$@" <<'EOF' || failures=$((failures + 1))
import json, sys
path, checks = sys.argv[1], sys.argv[2:]
try:
    d = json.load(open(path))
except Exception as e:
    print(f"FAIL: {path}: not JSON: {e}"); sys.exit(1)
bad = [c for c in checks if not eval(c, {"d": d, "re": __import__("re")})]
for c in bad:
    print(f"FAIL: {path}: {c}")
if bad:
    print(json.dumps(d, indent=1)[:3000])
sys.exit(1 if bad else 0)
EOF
}
