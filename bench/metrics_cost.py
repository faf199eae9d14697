#!/usr/bin/env python3
"""What per-command statistics and metrics cost (bench/README.md).

Runs two levee binaries — BASELINE (built without the observability code, or
any other build to compare against) and CANDIDATE (default build/levee) —
alternately on fresh data directories with the same workload: redis-benchmark
SET then GET, -c 50 -P 16 -d 100 -r 1000000. Reports medians of ops/s and of
the server's CPU time per operation, and the ratio candidate / baseline.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import LEVEE, alternated_levees, run_point  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="levee binary to compare against")
    ap.add_argument("--candidate", default=LEVEE)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--requests", type=int, default=500_000)
    args = ap.parse_args()
    results = {"baseline": [], "candidate": []}
    work = tempfile.mkdtemp(prefix="levee-metrics-cost-")
    try:
        for rep, which, s in alternated_levees(args.baseline, args.candidate, args.repeat, work):
            set_r = run_point(s, "set", 16, 100, args.requests, 50)
            get_r = run_point(s, "get", 16, 100, args.requests, 50)
            results[which].append((set_r, get_r))
            print(f"rep {rep} {which:9} SET {set_r['ops']:>9.0f} ops/s {set_r['cpu_us_per_op']:.2f} us/op  "
                  f"GET {get_r['ops']:>9.0f} ops/s {get_r['cpu_us_per_op']:.2f} us/op", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Medians of {args.repeat} alternating runs, fresh data each, -c 50 -P 16 -d 100 -r 1000000, "
          f"{args.requests} requests per test.\n")
    print("| test | baseline ops/s | candidate ops/s | ratio | baseline CPU µs/op | candidate CPU µs/op | ratio |")
    print("|---|---|---|---|---|---|---|")
    for i, test in enumerate(("SET", "GET")):
        b_ops = statistics.median(r[i]["ops"] for r in results["baseline"])
        c_ops = statistics.median(r[i]["ops"] for r in results["candidate"])
        b_cpu = statistics.median(r[i]["cpu_us_per_op"] for r in results["baseline"])
        c_cpu = statistics.median(r[i]["cpu_us_per_op"] for r in results["candidate"])
        print(f"| {test} | {b_ops:.0f} | {c_ops:.0f} | {c_ops / b_ops:.3f} | {b_cpu:.2f} | {c_cpu:.2f} | "
              f"{c_cpu / b_cpu:.3f} |")


if __name__ == "__main__":
    main()
