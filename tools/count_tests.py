#!/usr/bin/env python3
"""Counts passed and failed test cases in meson's JUnit logs; prints "N passed, N failed".

Usage: count_tests.py LOG.junit.xml [MORE.junit.xml ...]
Skipped cases (GTEST_SKIP, for example CUDA tests without a GPU) count as neither. A missing or
unreadable log counts as one failure. Exits non-zero when anything failed.
"""
import sys
import xml.etree.ElementTree as ET

def main(paths):
    passed = failed = skipped = 0
    cases = []
    for path in paths:
        try:
            cases += list(ET.parse(path).getroot().iter("testcase"))
        except (OSError, ET.ParseError) as e:
            print(f"count_tests: cannot read {path}: {e}", file=sys.stderr)
            failed += 1
    for case in cases:
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    if skipped:
        print(f"({skipped} skipped)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["build/meson-logs/testlog.junit.xml"]))
