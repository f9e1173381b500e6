#!/usr/bin/env bash
# readme_paths.sh REPO: README.md and every docs/*.md name only what exists, so no page sends a
# reader to a file that moved or a flag that was renamed. Checked, each failure named by file:line:
#   paths    every repository path they mention (src/..., kernels/..., tests/..., scripts/...,
#            k8s/..., docs/..., data/..., bench/..., .ci/..., Dockerfile.*, CMakeLists.txt,
#            CMakePresets.json), in text and in code; a component in capitals or in angle brackets
#            (k8s/overlays/CLOUD, k8s/overlays/<cloud>) stands for any folder, * for any name
#   links    every relative Markdown link lands on a file, and its #anchor on one of its headings
#   flags    every --flag on an mnist-train command line is one src/app/cli.cpp declares; a code
#            span that opens with a --flag names one of cli.cpp's or of a script in the repository
#            (scripts/, bench/, .ci/); --NAME in capitals is a placeholder
#   tests    every code span naming a CTest test of the e2e_, deploy_ and fuzz_ families, or a
#            test binary (*_tests), is one tests/ registers
# Before the real pages, it runs on a planted page with one fault of each kind and fails unless it
# reports each of them, so a checker broken into silence fails too.
set -euo pipefail
repo=${1:?usage: readme_paths.sh REPO}
cd "$repo"
exec python3 - <<'EOF'
import glob, os, re, sys
from fnmatch import fnmatchcase

docs = ["README.md"] + sorted(glob.glob("docs/*.md"))
failures = []
counts = {"paths": 0, "links": 0, "flags": 0, "tests": 0}

def fail(where, what):
    failures.append(f"FAIL {where}: {what}")

# The flags the program declares: CLI11's add_option/add_flag/set_version_flag, and its --help.
cli = open("src/app/cli.cpp", encoding="utf-8").read()
flags = set(re.findall(r'(?:add_option|add_flag|set_version_flag)\(\s*"(--[a-z][a-z0-9_]*)"', cli))
flags.add("--help")
if len(flags) < 10:
    sys.exit(f"FAIL src/app/cli.cpp: found only {sorted(flags)}: has the way flags are declared changed?")

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
# The flags the repository's tools take or pass on (tests/ is left out: it plants wrong ones).
script_flags = set()
for path in glob.glob("scripts/*") + glob.glob("bench/*") + glob.glob(".ci/*"):
    if not os.path.isfile(path):
        continue
    try:
        script_flags.update(f.rstrip("-") for f in FLAG.findall(open(path, encoding="utf-8").read()))
    except UnicodeDecodeError:
        pass  # a binary file

# The CTest names tests/ registers (a ${variable} in a name stands for any text) and the test
# binaries whose GoogleTest cases it discovers.
test_patterns, binaries = set(), set()
for path in glob.glob("tests/**/CMakeLists.txt", recursive=True) + glob.glob("tests/**/*.cmake", recursive=True):
    if "node_modules" in path:
        continue
    text = open(path, encoding="utf-8").read()
    for name in re.findall(r"add_test\(\s*NAME\s+([A-Za-z0-9_${}.-]+)", text):
        test_patterns.add(re.sub(r"\$\{[^}]*\}", "*", name))
    binaries.update(re.findall(r"gtest_discover_tests\(\s*([A-Za-z0-9_]+)", text))
if not test_patterns:
    sys.exit("FAIL tests/: no add_test(NAME ...) found")

def is_test(token):
    if token in binaries:
        return True
    return any(fnmatchcase(token, p) or fnmatchcase(p, token) for p in test_patterns)

def slug(heading):
    # GitHub's anchors: lower case, punctuation dropped, each space a hyphen.
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")

def anchors(path):
    seen, result = {}, set()
    fenced = False
    for line in open(path, encoding="utf-8"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6} (.*)", line)):
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            result.add(s if n == 0 else f"{s}-{n}")
    return result

PATH = re.compile(r"(?<![\w./~$-])((?:src|kernels|tests|scripts|k8s|docs|data|bench|\.ci)/[\w.*<>/-]*"
                  r"|Dockerfile\.[a-z]+|CMakeLists\.txt|CMakePresets\.json)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SPAN = re.compile(r"`([^`]+)`")
TEST = re.compile(r"(?:e2e|deploy|fuzz)_[a-z0-9_*]+|[a-z0-9_]+_tests")
COMMAND = re.compile(r"(?:^|[\s/$])mnist-train((?:\s+[^|;&#`]*)?)")

def check_path(where, p):
    p = re.sub(r"[.,:;)'\"]+$", "", p)
    if p.endswith("..."):
        p = p[:-3]
    counts["paths"] += 1
    # A placeholder component (CLOUD, <cloud>) or * stands for any name.
    pattern = "/".join("*" if re.fullmatch(r"[A-Z]+|<[^>]+>", c) else c for c in p.split("/"))
    if not glob.glob(pattern):
        fail(where, f"names {p}, which does not exist")

def check_flags(where, text, scripts_too=False):
    for flag in FLAG.findall(text):
        flag = flag.rstrip("-")
        counts["flags"] += 1
        if flag in flags or (scripts_too and flag in script_flags):
            continue
        if scripts_too:
            fail(where, f"names the flag {flag}, which neither src/app/cli.cpp nor a script in the repository declares")
        else:
            fail(where, f"runs mnist-train with the flag {flag}, which src/app/cli.cpp does not declare")

def check_doc(doc, lines):
    fenced = False
    here = os.path.dirname(doc)
    for number, line in enumerate(lines, 1):
        where = f"{doc}:{number}"
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        for p in PATH.findall(line):
            check_path(where, p)
        # Commands: a code block's line, or a code span, that runs mnist-train.
        pieces = [line] if fenced else SPAN.findall(line)
        for piece in pieces:
            for args in COMMAND.findall(piece.split(" # ")[0]):
                check_flags(where, args)
        if fenced:
            continue
        for span in SPAN.findall(line):
            if span.startswith("--"):
                check_flags(where, span.split()[0].split("=")[0], scripts_too=True)
            if TEST.fullmatch(span):
                counts["tests"] += 1
                if not is_test(span):
                    fail(where, f"names the test {span}, which tests/ does not register")
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            counts["links"] += 1
            file, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(here, file)) if file else doc
            if not os.path.exists(dest):
                fail(where, f"links to {target}, but {dest} does not exist")
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                fail(where, f"links to {target}, but {dest} has no heading #{anchor}")

# The checker first proves it can fail: a page with one fault of each kind must give each failure.
planted = [
    "`src/app/no_such_file.cpp`",
    "run `--planted_flag 1`",
    "```", "mnist-train --max_steps 5 --planted_flag_either", "```",
    "[x](../README.md#no-such-heading) and [y](no_such_page.md)",
    "`e2e_no_such_test`",
]
check_doc("docs/planted.md", [line + "\n" for line in planted])
expected = ["no_such_file.cpp", "flag --planted_flag,", "flag --planted_flag_either,",
            "has no heading #no-such-heading", "no_such_page.md", "e2e_no_such_test"]
missed = [e for e in expected if not any(e in f for f in failures)]
if missed or len(failures) != len(expected):
    sys.exit(f"FAIL the checker itself: on planted faults it reported {failures}, missing {missed}")
failures.clear()
counts = dict.fromkeys(counts, 0)

for doc in docs:
    check_doc(doc, open(doc, encoding="utf-8").readlines())

for kind, n in counts.items():
    if n == 0:
        failures.append(f"FAIL no {kind} found in {', '.join(docs)}: is the checker still reading them?")
failures = list(dict.fromkeys(failures))  # a path that is also a link's target: said once
for f in failures:
    print(f)
summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
print(f"{len(docs)} documents; {summary} checked; {len(failures)} failures")
sys.exit(1 if failures else 0)
EOF
