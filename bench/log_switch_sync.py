#!/usr/bin/env python3
"""The cost of syncing LevelDB's log when it is closed (one fdatasync per
memtable switch, on the writer thread; docs/benchmarks.md).

Runs a BASELINE and a CANDIDATE levee alternately, each on a fresh data
directory: prefill with SETs of -d bytes over -r keys (several memtables),
then the measured run overwrites the same keys (memtable switches, flushes
and compactions of a data set that lives). Prints the medians of ops/s and
the server's CPU per operation, and the candidate/baseline ratios.

  bench/log_switch_sync.py --baseline OLD_LEVEE --candidate build/levee [--repeat 3]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import LEVEE, alternated_levees, run_point  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--candidate", default=LEVEE)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--fsync", default="everysec")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = {"baseline": [], "candidate": []}
    with tempfile.TemporaryDirectory(prefix="levee-bench-") as work:
        for rep, which, s in alternated_levees(args.baseline, args.candidate, args.repeat, work,
                                               ["--fsync", args.fsync]):
            run_point(s, "set", 16, args.size, args.requests, 50)  # prefill
            r = run_point(s, "set", 16, args.size, args.requests, 50)  # overwrite: the measured run
            results[which].append(r)
            print(f"rep {rep} {which}: {r['ops']:.0f} ops/s, {r['cpu_us_per_op']:.2f} us CPU/op", file=sys.stderr)
    med = {w: {k: statistics.median(x[k] for x in v) for k in v[0]} for w, v in results.items()}
    out = {"point": f"SET -P 16 -c 50 -d {args.size}, overwrite, fsync {args.fsync}", **med,
           "ops_ratio": med["candidate"]["ops"] / med["baseline"]["ops"],
           "cpu_ratio": med["candidate"]["cpu_us_per_op"] / med["baseline"]["cpu_us_per_op"]}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{out['point']}: baseline {med['baseline']['ops']:.0f} ops/s {med['baseline']['cpu_us_per_op']:.2f} "
              f"us/op; candidate {med['candidate']['ops']:.0f} ops/s {med['candidate']['cpu_us_per_op']:.2f} us/op; "
              f"ops ratio {out['ops_ratio']:.3f}, CPU ratio {out['cpu_ratio']:.3f}")


if __name__ == "__main__":
    main()
