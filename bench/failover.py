#!/usr/bin/env python3
"""Failover time and lost writes: levee against real redis-server, under
the same three redis-sentinel processes and the same load (bench/README.md).

For each kind, one primary + two replicas + three Sentinels
(down-after-milliseconds 1000, failover-timeout 5000), min-replicas-to-write
1 / min-replicas-max-lag 2 on every node; levee also has sync-replicas 1 for
keys starting "sync:" (Redis has no such class: its "sync:" keys are
ordinary async writes). Four writer threads follow Sentinel's primary,
alternating "sync:" and "async:" keys, and record every acknowledged write.
Each round kill -9s the primary, waits for the new one, and restarts the old
one (Sentinel demotes it). At the end all nodes converge and every
acknowledged write is looked up on the final primary.

Per round: promotion (kill -> Sentinels agree on a new primary) and the
failover gap (last write acknowledged by the old primary -> first by the
new one). Printed: medians, the levee/redis ratio of the median gap, and
lost writes per class. Goal (issue 5): levee's gap <= 1.2x Redis', with 0
lost sync-class writes. Exit status 1 when missed (--no-bars to only report).
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from failover_cluster import Cluster, Load  # noqa: E402


def run_kind(kind, rounds):
    root = tempfile.mkdtemp(prefix=f"levee-bench-failover-{kind}-")
    c = Cluster(kind, root)
    load = Load(c).start()
    result = {"kind": kind, "promotion_s": [], "gap_s": []}
    try:
        for r in range(rounds):
            promotion, gap = c.failover_round(load, acks_before=200, acks_after=100)
            result["promotion_s"].append(promotion)
            result["gap_s"].append(gap)
            print(f"  {kind} round {r + 1}: promotion {promotion:.2f} s, gap {gap:.2f} s", flush=True)
        load.stop()
        c.wait_converged(timeout=180)
        lost, total = load.missing(c.primary())
        result.update(acked=total, lost_sync=lost.get("sync", 0), lost_async=lost.get("async", 0))
    finally:
        load.stop()
        c.stop()
        shutil.rmtree(root, ignore_errors=True)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="failovers per kind")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--no-bars", action="store_true", help="report only; never exit 1")
    a = ap.parse_args()
    results = {}
    for kind in ("redis", "levee"):
        print(f"{kind}: {a.rounds} failovers", flush=True)
        results[kind] = run_kind(kind, a.rounds)
    med = {k: statistics.median(v["gap_s"]) for k, v in results.items()}
    ratio = med["levee"] / med["redis"]
    if a.json:
        print(json.dumps({"results": results, "median_gap_s": med, "ratio": ratio}, indent=2))
    print(f"\n{'server':8} {'promotion p50':>14} {'gap p50':>8} {'gap max':>8} {'acked':>8} {'lost sync':>10} "
          f"{'lost async':>11}")
    for k, v in results.items():
        print(f"{k:8} {statistics.median(v['promotion_s']):13.2f}s {med[k]:7.2f}s {max(v['gap_s']):7.2f}s "
              f"{v['acked']:8d} {v['lost_sync']:10d} {v['lost_async']:11d}")
    print(f"levee/redis failover gap (median): {ratio:.2f}x (goal <= 1.2x); "
          f"levee lost sync-class writes: {results['levee']['lost_sync']} (goal 0)")
    missed = ratio > 1.2 or results["levee"]["lost_sync"] != 0
    if missed and not a.no_bars:
        sys.exit(1)


if __name__ == "__main__":
    main()
