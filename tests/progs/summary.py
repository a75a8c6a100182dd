#!/usr/bin/env python3
"""summary.py TREE BUILD EXPECTED JUNIT... -- what one tree's ctest runs did.

tools/test.sh calls it after each ctest run of a tree (the junit files are
ctest's --output-junit; EXPECTED is the number of tests `ctest -N` lists with
the same filters). Prints the ctest entries run, passed, failed and skipped
(the reason each skip printed), the Criterion tests inside them (from the
JSON reports in BUILD/tests/reports/: passed, failed, skipped with reasons),
and the test sources this tree does not register, with the reason CMake
recorded (BUILD/tests/not-registered.txt). Exits 1 when a test failed or when
fewer tests ran than ctest lists: nothing is counted as passed unseen.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET


def main(argv):
    tree, build, expected = argv[1], argv[2], int(argv[3])
    cases = []
    for path in argv[4:]:
        if os.path.exists(path):
            cases += ET.parse(path).getroot().iter("testcase")
    run = passed = failed = skipped = 0
    lines = []
    crit = {"PASSED": 0, "FAILED": 0, "ERRORED": 0, "SKIPPED": 0}
    for c in cases:
        name, status = c.get("name"), c.get("status")
        out = (c.findtext("system-out") or "").strip().splitlines()
        if status in ("notrun", "disabled") or c.find("skipped") is not None:
            skipped += 1
            why = next((l for l in out if "skipped" in l.lower()), "no reason printed")
            lines.append(f"  skipped  {name}: {why.strip()}")
            continue
        run += 1
        if status == "fail" or c.find("failure") is not None:
            failed += 1
            lines.append(f"  FAILED   {name}")
        else:
            passed += 1
        report = os.path.join(build, "tests", "reports", name + ".json")
        if not os.path.exists(report):
            continue
        with open(report) as f:
            r = json.load(f)
        for suite in r.get("test_suites", []):
            for t in suite.get("tests", []):
                st = t.get("status", "?")
                crit[st] = crit.get(st, 0) + 1
                if st == "SKIPPED":
                    why = "; ".join(t.get("messages", [])) or "no reason given"
                    lines.append(f"  skipped  {name}: {suite['name']}::{t['name']}: {why}")
    ok = failed == 0 and len(cases) == expected
    print(f"tree {tree}: {len(cases)} of {expected} ctest entries ran: {passed} passed, "
          f"{failed} failed, {skipped} skipped; Criterion tests inside: {crit['PASSED']} passed, "
          f"{crit['FAILED'] + crit['ERRORED']} failed, {crit['SKIPPED']} skipped")
    if len(cases) != expected:
        print(f"  MISSING  ctest lists {expected} tests, {len(cases)} ran")
    for l in lines:
        print(l)
    nr = os.path.join(build, "tests", "not-registered.txt")
    if os.path.exists(nr):
        for l in open(nr):
            if l.strip():
                print(f"  not here {l.strip()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
