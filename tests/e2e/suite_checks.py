#!/usr/bin/env python3
"""suite_checks.py TESTS_DIR: the suite's own wiring, so that no test is dropped or mis-reported
silently. Every tests/*/tests.cmake is included by tests/CMakeLists.txt, never OPTIONAL (an
optional include drops a deleted file's tests without a word); every gtest_discover_tests call
has the skip pattern (without it CTest reports a GTEST_SKIP as passed)."""

import glob
import os
import re
import sys

SKIP_PATTERN = 'SKIP_REGULAR_EXPRESSION "  SKIPPED "'


def calls(text, name):
    """The full text of each NAME(...) call, parentheses balanced, comments dropped."""
    text = re.sub(r"#[^\n]*", "", text)
    for match in re.finditer(r"\b%s\s*\(" % name, text):
        depth, i = 0, match.end() - 1
        while i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        yield text[match.start():i + 1]


def main():
    tests = os.path.abspath(sys.argv[1])
    problems = []
    top = os.path.join(tests, "CMakeLists.txt")
    with open(top) as f:
        top_text = f.read()
    included = set()
    for call in calls(top_text, "include"):
        if re.search(r"\bOPTIONAL\b", call):
            problems.append(f"{top}: {' '.join(call.split())}: OPTIONAL drops the tests of a missing file")
        found = re.search(r"CMAKE_CURRENT_SOURCE_DIR\}/([\w/]+\.cmake)", call)
        if found:
            included.add(found.group(1))
    for path in sorted(glob.glob(os.path.join(tests, "*", "tests.cmake"))):
        rel = os.path.relpath(path, tests)
        if rel not in included:
            problems.append(f"{top}: does not include {rel}")
    files = [top] + sorted(glob.glob(os.path.join(tests, "**", "*.cmake"), recursive=True))
    discovered = 0
    for path in files:
        with open(path) as f:
            for call in calls(f.read(), "gtest_discover_tests"):
                discovered += 1
                if SKIP_PATTERN not in call:
                    problems.append(f"{path}: {' '.join(call.split())}: no {SKIP_PATTERN}")
    for p in problems:
        print("FAIL:", p)
    if discovered == 0:
        print("FAIL: no gtest_discover_tests call found")
        return 1
    if not problems:
        print(f"PASS: {len(included)} test files included, {discovered} GoogleTest binaries with the skip pattern")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
