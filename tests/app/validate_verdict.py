#!/usr/bin/env python3
"""validate_verdict.py FILE...: each verdict mnist-train wrote, checked against its published form.
A JSON file (result.json, --result_file) against docs/result.schema.json (JSON Schema draft 2020-12,
the `jsonschema` module); a .prom file (--metrics_file) with Prometheus' own `promtool check
metrics`, whose lint findings fail too. A missing `jsonschema` or `promtool` is a failure naming
scripts/install-deps.sh, never a skip. Exit 0 when every file is valid."""

import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(ROOT, "docs", "result.schema.json")
INSTALL = "install it with scripts/install-deps.sh"


def import_jsonschema():
    """The jsonschema module: this interpreter's, else Debian's python3-jsonschema (installed for
    /usr/bin/python3, pure Python) when this python3 is another installation of the same kind."""
    try:
        import jsonschema
        return jsonschema
    except ImportError:
        pass
    debian = "/usr/lib/python3/dist-packages"
    if os.path.isdir(os.path.join(debian, "jsonschema")) and debian not in sys.path:
        sys.path.append(debian)
        try:
            import jsonschema
            return jsonschema
        except ImportError:
            pass
    return None


def check_json(path, validator):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        return [f"not JSON: {e}"]
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))]


def check_metrics(path, promtool):
    with open(path, "rb") as f:
        run = subprocess.run([promtool, "check", "metrics"], stdin=f, capture_output=True, timeout=60)
    text = (run.stdout + run.stderr).decode(errors="replace").strip()
    return [] if run.returncode == 0 and not text else [f"promtool (exit {run.returncode}): {text}"]


def main():
    paths = sys.argv[1:]
    if not paths:
        print("usage: validate_verdict.py FILE...", file=sys.stderr)
        return 2
    validator = promtool = None
    if any(not p.endswith(".prom") for p in paths):
        jsonschema = import_jsonschema()
        if not jsonschema:
            print(f"FAIL: the Python module jsonschema (Debian python3-jsonschema) is missing: {INSTALL}")
            return 1
        with open(SCHEMA, encoding="utf-8") as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
    if any(p.endswith(".prom") for p in paths):
        promtool = shutil.which("promtool")
        if not promtool:
            print(f"FAIL: promtool (Debian prometheus) is missing: {INSTALL}")
            return 1
    failed = 0
    for path in paths:
        problems = check_metrics(path, promtool) if path.endswith(".prom") else check_json(path, validator)
        for problem in problems:
            print(f"FAIL: {path}: {problem}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
