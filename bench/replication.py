#!/usr/bin/env python3
"""What replication costs a levee primary (bench/README.md).

In one run: SET throughput, p99 and closed-loop time per request of a
levee primary with 0 replicas, 1 async replica, 1 sync replica
(sync-replicas 1) and 2 sync replicas (sync-replicas 2), at -c 50, -P 1 and
-P 16, -d 100, -r 1000000; each point the median of --repeat runs, the
configurations interleaved within each repetition so drift hits all alike.
All processes share this machine's cores with redis-benchmark: a replica's
CPU is CPU the primary does not get, which a real deployment (one replica
per node) does not pay. The primary's CPU per operation is printed too.

Bars (issue 4): 1 sync replica keeps >= 0.7x the async throughput at -P 16;
async replication costs <= 15% of the no-replica throughput at -P 16.
Exit status 1 when a bar is missed (--no-bars to only report).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import LEVEE, Server, free_port, median_point, run_point  # noqa: E402

CONFIGS = [
    ("none", 0, 0),
    ("async1", 1, 0),
    ("sync1", 1, 1),
    ("sync2", 2, 2),
]
# The same async replica at SCHED_IDLE (chrt --idle 0): it runs only on CPU
# the primary and redis-benchmark leave, as on a node of its own, so the
# primary pays what replication costs the primary itself (reading its log
# back, sending it, the acks) and not the replica's CPU. An approximation:
# the replica still shares memory bandwidth, caches and the disk.
IDLE_CONFIG = ("async1-idle", 1, 0)
# Each side on a CPU of its own, as a replica on another node: the primary
# and redis-benchmark on CPU 0, the replica on CPU 1 (taskset). none-split is
# the same primary and client on CPU 0 with no replica; the two compared
# are what replication costs the primary when the replica's CPU is not its
# own. The memory bus, caches and disk are still shared.
SPLIT_CONFIGS = [("none-split", 0, 0), ("async1-split", 1, 0)]
PRIMARY_CPU, REPLICA_CPU = ("taskset", "-c", "0"), ("taskset", "-c", "1")
# Figures printed beside the bars, not judged by the exit status.
REPORTED_BESIDE = ("async1_idle_cost_p16", "async1_split_cost_p16")


def command(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port)] + [str(a) for a in args], capture_output=True,
                         text=True, timeout=60)
    return out.stdout


def info_field(port, section, field):
    for line in command(port, "INFO", section).splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def wait_caught_up(primary, replicas, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        want = info_field(primary.port, "replication", "master_repl_offset")
        if all(info_field(r.port, "replication", "master_link_status") == "up" and
               info_field(r.port, "replication", "slave_repl_offset") == want for r in replicas):
            return
        time.sleep(0.1)  # poll interval, bounded by the deadline
    raise SystemExit("replicas did not catch up within %ds" % timeout)


def levee(name, workdir, extra, prefix=()):
    port = free_port()
    d = os.path.join(workdir, name)
    return Server(name, list(prefix) + [LEVEE, "serve", "--port", str(port), "--http-port", "0", "--data-dir", d,
                                        "--log-format", "text"] + extra, port, workdir)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--requests-p1", type=int, default=100_000)
    ap.add_argument("--requests-p16", type=int, default=500_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-bars", action="store_true")
    ap.add_argument("--idle-replica", action="store_true",
                    help="also run async1-idle: the async replica at SCHED_IDLE (a node of its own, approximately)")
    ap.add_argument("--split", action="store_true",
                    help="also run none-split and async1-split: primary and client on CPU 0, replica on CPU 1")
    args = ap.parse_args()
    configs = CONFIGS + ([IDLE_CONFIG] if args.idle_replica else []) + (SPLIT_CONFIGS if args.split else [])
    workdir = tempfile.mkdtemp(prefix="levee-bench-repl-")
    samples = {}
    try:
        for rep in range(args.repeat):
            # Rotated each repetition: a configuration does not always follow
            # the same one (whose teardown may still be settling).
            for name, n_replicas, sync in configs[rep % len(configs):] + configs[:rep % len(configs)]:
                split = name.endswith("-split")
                primary = levee(f"{name}-p", workdir, ["--sync-replicas", str(sync), "--sync-timeout-ms", "10000"],
                                prefix=PRIMARY_CPU if split else ())
                primary.start()
                replicas = []
                for i in range(n_replicas):
                    prefix = ("chrt", "--idle", "0") if name.endswith("-idle") else REPLICA_CPU if split else ()
                    r = levee(f"{name}-r{i}", workdir, ["--replicaof", f"127.0.0.1:{primary.port}"], prefix=prefix)
                    r.start()
                    replicas.append(r)
                wait_caught_up(primary, replicas)
                for pipeline, requests in ((1, args.requests_p1), (16, args.requests_p16)):
                    point = run_point(primary, "set", pipeline, 100, requests, args.clients,
                                      client_prefix=PRIMARY_CPU if split else ())
                    samples.setdefault((name, pipeline), []).append(point)
                    wait_caught_up(primary, replicas)
                for s in replicas + [primary]:
                    s.stop()
                for s in replicas + [primary]:
                    shutil.rmtree(os.path.join(workdir, s.name), ignore_errors=True)
                os.sync()  # the removed data written out before the next configuration runs
                print(f"repetition {rep + 1}/{args.repeat}: {name} done", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    results = {f"{name} P{p}": median_point(v) for (name, p), v in samples.items()}
    ratio_sync = results["sync1 P16"]["ops"] / results["async1 P16"]["ops"]
    async_cost = 1 - results["async1 P16"]["ops"] / results["none P16"]["ops"]
    bars = {
        "sync1_vs_async1_p16": {"value": ratio_sync, "bar": ">= 0.7", "ok": ratio_sync >= 0.7},
        "async1_cost_p16": {"value": async_cost, "bar": "<= 0.15", "ok": async_cost <= 0.15},
    }
    if args.idle_replica:
        idle_cost = 1 - results["async1-idle P16"]["ops"] / results["none P16"]["ops"]
        bars["async1_idle_cost_p16"] = {"value": idle_cost, "bar": "<= 0.15 (replica at SCHED_IDLE: not a bar "
                                        "on shared cores, reported beside it)", "ok": idle_cost <= 0.15}
    if args.split:
        split_cost = 1 - results["async1-split P16"]["ops"] / results["none-split P16"]["ops"]
        bars["async1_split_cost_p16"] = {"value": split_cost, "bar": "<= 0.15 (primary and client on CPU 0, "
                                         "replica on CPU 1)", "ok": split_cost <= 0.15}
    if args.json:
        print(json.dumps({"points": results, "bars": bars}, indent=2))
    else:
        print(f"{'config':<12} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'loop us':>9} {'cpu us/op':>10}")
        for k, v in results.items():
            print(f"{k:<12} {v['ops']:>10.0f} {v['p50_ms']:>8.3f} {v['p99_ms']:>8.3f} {v['closed_loop_us']:>9.1f} "
                  f"{v['cpu_us_per_op']:>10.2f}")
        for k, b in bars.items():
            print(f"{k}: {b['value']:.3f} (bar {b['bar']}) {'ok' if b['ok'] else 'MISSED'}")
    if not args.no_bars and not all(b["ok"] for k, b in bars.items() if k not in REPORTED_BESIDE):
        sys.exit(1)


if __name__ == "__main__":
    main()
