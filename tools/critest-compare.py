#!/usr/bin/env python3
"""Side by side: critest's JUnit reports of one run per runtime handler (tools/critest.sh).

usage: critest-compare.py DIR BASELINE OTHER...   (DIR holds HANDLER.xml for each)
Prints passed, failed and skipped per handler, then the specs each other handler fails or
skips where the baseline passes, and those it passes where the baseline does not.
"""
import sys
import xml.etree.ElementTree as ET


def results(path):
    """{spec name: 'passed' | 'failed' | 'skipped'} from one JUnit file (or several
    concatenated, as critest may write one per node)."""
    text = open(path, encoding="utf-8", errors="replace").read()
    out = {}
    # Concatenated documents: parse each <testsuites> or <testsuite> root alone.
    for chunk in text.split("<?xml")[1:] or [text]:
        root = ET.fromstring("<?xml" + chunk if not chunk.startswith("<") else chunk)
        for case in root.iter("testcase"):
            name = case.get("name", "")
            if not name.startswith("[It]"):
                continue  # suite setup and teardown nodes
            if case.find("failure") is not None or case.find("error") is not None:
                status = "failed"
            elif case.find("skipped") is not None or case.get("status") == "skipped":
                status = "skipped"
            else:
                status = "passed"
            out[name[5:]] = status
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    where, names = sys.argv[1], sys.argv[2:]
    runs = {}
    for n in names:
        try:
            runs[n] = results(f"{where}/{n}.xml")
        except (OSError, ET.ParseError) as e:
            sys.exit(f"critest-compare: {n}: no readable report ({e})")
    print(f"\n{'':10} {'passed':>7} {'failed':>7} {'skipped':>8}")
    for n in names:
        v = list(runs[n].values())
        print(f"{n:10} {v.count('passed'):7} {v.count('failed'):7} {v.count('skipped'):8}")
    base = runs[names[0]]
    for n in names[1:]:
        worse = sorted(k for k, s in runs[n].items() if s != "passed" and base.get(k) == "passed")
        better = sorted(k for k, s in runs[n].items() if s == "passed" and base.get(k) != "passed")
        print(f"\n{len(worse)} specs {names[0]} passes that {n} fails or skips:")
        for k in worse:
            print(f"  [{runs[n][k]}] {k}")
        if better:
            print(f"\n{len(better)} specs {n} passes that {names[0]} does not:")
            for k in better:
                print(f"  {k}")


if __name__ == "__main__":
    main()
