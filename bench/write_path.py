#!/usr/bin/env python3
"""The write path on a data set that lives (issue 24's evidence; bench/README.md).

In one invocation, levee (fsync everysec) and Debian's redis-server
(appendonly yes, appendfsync everysec), each started fresh:

1. prefill 1,000,000 keys of 100 B (`key:%012d`, the names redis-benchmark
   -r 1000000 draws, so later runs overwrite them), through redis-cli --pipe;
2. redis-benchmark -c 50 -r 1000000 SET then GET at -P 1 and -P 16, -d 100
   then -d 4096, --repeat runs each, in that order, on the same growing data
   set (no flush between points);
3. optionally (--sustained SECONDS) SET -d 4096 -P 16 for that long, one
   figure per --window seconds: whether throughput or p99 collapse once
   compaction and blob garbage collection start.

Per point and server: ops/s, p50/p99 (redis-benchmark's), the server's CPU
per operation (its own utime+stime; redis' AOF-rewrite children are not
counted), and for SETs the bytes the server wrote to disk per byte of value
accepted (/proc/PID/io write_bytes; levee's covers its log, LevelDB's
flushes and compactions and blob files; redis' rewrite children are again
not counted). Ratios levee / redis-aof. Read the results together with
docs/benchmarks.md ("The write path on a living data set").
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import free_port, levee_everysec, redis_aof, require_tools, run_point  # noqa: E402


def write_bytes(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise SystemExit(f"/proc/{pid}/io has no write_bytes (run as root or as the server's user)")


def prefill(server, keys, size, workdir):
    """SET key:%012d <size bytes> for every key, pipelined, checked by DBSIZE."""
    path = os.path.join(workdir, f"prefill-{size}.resp")
    if not os.path.exists(path):
        value = b"x" * size
        with open(path, "wb") as f:
            for i in range(keys):
                k = b"key:%012d" % i
                f.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, size, value))
    with open(path, "rb") as f:
        out = subprocess.run(["redis-cli", "-p", str(server.port), "--pipe"], stdin=f, capture_output=True,
                             text=True, timeout=1800)
    if out.returncode != 0 or "errors: 0" not in out.stdout:
        raise SystemExit(f"prefill of {server.name} failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    n = subprocess.run(["redis-cli", "-p", str(server.port), "DBSIZE"], capture_output=True, text=True).stdout
    if int(n.strip() or 0) < keys:
        raise SystemExit(f"{server.name} holds {n.strip()} keys after the prefill, not {keys}")


def measured(server, test, pipeline, size, requests, clients):
    before = write_bytes(server.proc.pid)
    r = run_point(server, test, pipeline, size, requests, clients)
    written = write_bytes(server.proc.pid) - before
    r["disk_bytes_per_value_byte"] = written / (requests * size) if test == "set" else None
    return r


def median(samples):
    out = {}
    for k in samples[0]:
        vals = [s[k] for s in samples if s[k] is not None]
        out[k] = statistics.median(vals) if vals else None
    return out


def sustained(server, seconds, window, clients):
    """SET -d 4096 -P 16 for `seconds`, one redis-benchmark run per window
    (its request count sized from the previous window's rate)."""
    rows, start, n = [], time.monotonic(), 20000
    while time.monotonic() - start < seconds:
        t = time.monotonic()
        r = measured(server, "set", 16, 4096, n, clients)
        took = time.monotonic() - t
        rows.append({"at_s": round(t - start), **r})
        print(f"  {server.name} t={t - start:5.0f}s {r['ops']:>8.0f} ops/s p99 {r['p99_ms']:.1f} ms "
              f"cpu {r['cpu_us_per_op']:.1f} us/op disk {r['disk_bytes_per_value_byte']:.2f} B/B",
              file=sys.stderr, flush=True)
        n = max(5000, int(n * window / max(took, 0.1)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=1_000_000, help="prefilled keys of 100 B")
    ap.add_argument("--requests", type=int, default=200_000, help="per run of a point")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--sustained", type=int, default=0, help="seconds of SET -d 4096 -P 16 after the points")
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    require_tools()
    workdir = tempfile.mkdtemp(prefix="levee-write-path-")
    servers = [levee_everysec(free_port(), workdir), redis_aof(free_port(), workdir, "aof")]
    points, runs = [], {}
    try:
        for s in servers:
            s.start()
            t = time.monotonic()
            prefill(s, args.keys, 100, workdir)
            print(f"prefilled {s.name}: {args.keys} keys in {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
        for size in (100, 4096):
            for pipeline in (1, 16):
                for test in ("set", "get"):
                    point = {"test": test.upper(), "pipeline": pipeline, "size": size}
                    for s in servers:
                        point[s.name] = median([measured(s, test, pipeline, size, args.requests, args.clients)
                                                for _ in range(args.repeat)])
                    lv, rd = point["levee"], point["redis-aof"]
                    point["ops_ratio"] = lv["ops"] / rd["ops"]
                    point["cpu_ratio"] = lv["cpu_us_per_op"] / rd["cpu_us_per_op"] if rd["cpu_us_per_op"] else None
                    point["p99_ratio"] = lv["p99_ms"] / rd["p99_ms"] if rd["p99_ms"] else None
                    points.append(point)
                    print(f"{test.upper():>3} -P {pipeline:<2} -d {size:<5} levee {lv['ops']:>9.0f} ops/s "
                          f"p99 {lv['p99_ms']:.1f} ms cpu {lv['cpu_us_per_op']:.1f} us/op | redis-aof "
                          f"{rd['ops']:>9.0f} p99 {rd['p99_ms']:.1f} cpu {rd['cpu_us_per_op']:.1f} | ratio "
                          f"{point['ops_ratio']:.2f}", file=sys.stderr, flush=True)
        if args.sustained:
            for s in servers:
                runs[s.name] = sustained(s, args.sustained, args.window, args.clients)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    if args.json:
        print(json.dumps({"points": points, "sustained": runs}, indent=2))
        return
    print(f"{args.keys} keys of 100 B prefilled; -c {args.clients} -r 1000000 -n {args.requests}, median of "
          f"{args.repeat}; levee fsync everysec, redis appendfsync everysec.\n")
    print("| point | levee ops/s | p99 ms | CPU µs/op | disk B per value B | redis-aof ops/s | p99 ms | CPU µs/op "
          "| ops ratio | CPU ratio | p99 ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in points:
        lv, rd = p["levee"], p["redis-aof"]
        amp = f"{lv['disk_bytes_per_value_byte']:.2f}" if lv["disk_bytes_per_value_byte"] is not None else ""
        print(f"| {p['test']} -P {p['pipeline']} -d {p['size']} | {lv['ops']:.0f} | {lv['p99_ms']:.1f} | "
              f"{lv['cpu_us_per_op']:.1f} | {amp} | {rd['ops']:.0f} | {rd['p99_ms']:.1f} | {rd['cpu_us_per_op']:.1f} | "
              f"{p['ops_ratio']:.2f} | {p['cpu_ratio'] or 0:.2f} | {p['p99_ratio'] or 0:.2f} |")
    for name, rows in runs.items():
        print(f"\nSustained SET -P 16 -d 4096, {name}: per window (s, ops/s, p99 ms, CPU µs/op, disk B per value B)")
        for r in rows:
            print(f"  {r['at_s']:>5} {r['ops']:>9.0f} {r['p99_ms']:>7.1f} {r['cpu_us_per_op']:>6.1f} "
                  f"{r['disk_bytes_per_value_byte']:.2f}")


if __name__ == "__main__":
    main()
