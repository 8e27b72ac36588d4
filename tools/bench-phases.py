#!/usr/bin/env python3
"""Where a kuasar pod start goes, from the sandboxer's log of a bench run (tools/bench-pod.sh).

usage: bench-phases.py SANDBOXER_LOG CLIENT_TIMES

CLIENT_TIMES holds the medians kuasar-ctl cri bench measured on the client side, as
"runp create start output" in ms. The log's lines, as the daemon, the task proxies and the
guest write them:
  sandbox ID: ready in N ms (...; Start took X ms)
  phases sandbox start (MODE): setup X ms, net-host X ms, vmm X ms, ...; T ms in all
  phases container create ID: bundle X ms, guest X ms; T ms in all
  phases container start ID: proxy X ms, guest X ms; T ms in all
  guest: container ID: created, pid N: spec X us, cgroup X us, clone X us, setup X us
Each step's median over the run is printed, nested under the client call it is part of.
"""
import re
import statistics
import sys

STEP = re.compile(r"([A-Za-z][a-z-]*) ([0-9.]+) (ms|us)")


def steps(text):
    """{name: ms} of "name X ms, name Y us, ..." (before any "; ... in all")."""
    out = {}
    for name, value, unit in STEP.findall(text.split(";")[0]):
        out[name] = float(value) / (1000.0 if unit == "us" else 1.0)
    return out


PATTERNS = {
    "start": re.compile(r"phases sandbox start \([^)]*\): (.*)"),
    "create": re.compile(r"phases container create \S+: (.*)"),
    "cstart": re.compile(r"phases container start \S+: (.*)"),
    "guest": re.compile(r"guest: container \S+: created, pid \d+: (.*)"),
    "daemon": re.compile(r": ready in .*(Start) took ([0-9.]+ ms)"),
}


def collect(lines):
    kinds = {k: [] for k in PATTERNS}
    for line in lines:
        for kind, pat in PATTERNS.items():
            m = pat.search(line)
            if m and kind == "daemon":
                kinds[kind].append(steps(m.group(1) + " " + m.group(2)))
            elif m:
                kinds[kind].append(steps(m.group(1)))
    return kinds


def med(rows, name):
    vals = [r[name] for r in rows if name in r]
    return statistics.median(vals) if vals else None


def names(rows):
    seen = []
    for r in rows:
        for n in r:
            if n not in seen:
                seen.append(n)
    return seen


def row(label, ms, indent):
    if ms is not None:
        print(f"  {' ' * indent}{label:<{46 - indent}} {ms:8.1f} ms")


def main():
    log, client = sys.argv[1], sys.argv[2]
    with open(log, errors="replace") as f:
        k = collect(f)
    with open(client) as f:
        runp, create, start, output = (float(x) for x in f.read().split())
    daemon = med(k["daemon"], "Start")
    proxy = sum(med(k["start"], n) or 0 for n in names(k["start"]))
    print("where a kuasar pod start goes (medians of this run's pods; ms)")
    row("RunPodSandbox (client)", runp, 0)
    if daemon is not None:
        row("containerd, CNI, the daemon's Create", runp - daemon, 2)
        row("the daemon's Start", daemon, 2)
        row("fork and exec of the task proxy", daemon - proxy, 4)
    for n in names(k["start"]):
        row(n, med(k["start"], n), 4)
    # containerd's CreateContainer makes the container's record only: the task (the
    # bundle, the guest's Create) is made inside StartContainer, then started.
    row("CreateContainer (client; containerd alone)", create, 0)
    row("StartContainer (client)", start, 0)
    spent = 0.0
    for n in names(k["create"]):
        row(f"task Create, proxy: {n}", med(k["create"], n), 2)
        spent += med(k["create"], n)
        if n == "guest":
            own = 0.0
            for g in names(k["guest"]):
                row(f"in the guest: {g}", med(k["guest"], g), 4)
                own += med(k["guest"], g)
            if k["guest"]:
                row("the link, the RPC in and out", med(k["create"], n) - own, 4)
    for n in names(k["cstart"]):
        row(f"task Start, proxy: {n}", med(k["cstart"], n), 2)
        spent += med(k["cstart"], n)
    if k["create"] or k["cstart"]:
        row("containerd", start - spent, 2)
    row("StartContainer answered to first output", output, 0)
    print(f"  ({len(k['start'])} sandbox starts, {len(k['create'])} creates, "
          f"{len(k['guest'])} guest reports in the log)")


if __name__ == "__main__":
    main()
