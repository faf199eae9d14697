#!/usr/bin/env python3
"""Failover and rolling-upgrade pauses of the replicated overlay, in the
simulated cluster of tests/integration/test_kubernetes.py.

Each round runs two scenarios on a fresh install and reads the figures the
tests report (KUBE_REPORT):
  - the primary's pod lost: the longest gap between acknowledged writes
    through the `levee` Service (HAProxy) while Sentinel promotes;
  - a rolling upgrade of the three pods with the preStop switchover: the
    number of promotions and the longest gap between acknowledged writes.

    /usr/bin/python3 bench/kubernetes.py --rounds 3 [--json]

Needs root (network and mount namespaces), kubectl and dnsmasq, as the
tests do. There is no reference run: Redis itself has no equivalent of these
manifests; bench/failover.py compares the same Sentinel failover with Redis
outside Kubernetes.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests", "integration")
SCENARIOS = "primary_pod_lost or rolling_upgrade"


def one_round(i, total, quiet):
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report:
        env = dict(os.environ, KUBE_REPORT=report.name)
        out = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_kubernetes.py",
                              "-k", SCENARIOS], cwd=TESTS, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"round {i}: the scenarios failed:\n{out.stdout[-3000:]}")
        figures = {}
        for line in open(report.name):
            name, _, value = line.rpartition(": ")
            figures[name] = value.strip()
    if not quiet:
        print(f"round {i}/{total}: " + "; ".join(f"{k} = {v}" for k, v in figures.items()), file=sys.stderr)
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    rounds = [one_round(i + 1, args.rounds, args.json) for i in range(args.rounds)]
    summary = {}
    for key in rounds[0]:
        if key.endswith("(s)") or key.endswith("promotions"):
            values = [float(r[key]) for r in rounds]
            summary[key] = {"median": statistics.median(values), "min": min(values), "max": max(values),
                            "values": values}
    if args.json:
        print(json.dumps({"rounds": args.rounds, "figures": summary}, indent=2))
        return
    for key, s in summary.items():
        print(f"{key}: median {s['median']:.2f}, min {s['min']:.2f}, max {s['max']:.2f} over {args.rounds} rounds")


if __name__ == "__main__":
    main()
