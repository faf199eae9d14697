#!/usr/bin/env python3
"""What the connection changes of issue 20 cost (bench/README.md).

Runs two levee binaries — BASELINE (the build before the change) and
CANDIDATE (default build/levee) — alternately, each on its own data set
that lives: 1,000,000 keys of 100 B prefilled, then overwritten once, LevelDB
and the blob collector left to settle. On it: redis-benchmark SET (overwrites)
and GET, -c 50 -r 1000000, -P 16 and -P 1, -d 100. Then N idle connections
(each served one PING) and the server's RSS growth per connection, with
redis-server's as the reference. Reports medians and candidate / baseline.
"""
import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import LEVEE, Server, alternated_levees, free_port, run_point  # noqa: E402


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    return 0


def idle_bytes_per_connection(port, pid, n):
    socks = []
    time.sleep(0.5)
    before = rss(pid)
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        for s in socks:
            s.sendall(b"PING\r\n")
        for s in socks:
            if s.recv(16) != b"+PONG\r\n":
                raise SystemExit("an idle connection was not served")
        time.sleep(0.5)
        return (rss(pid) - before) / n
    finally:
        for s in socks:
            s.close()


def settle(port, seconds):
    """Waits until LevelDB's compactions and the blob collector are idle (the
    server's CPU stays low for a second), at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "cpu"], capture_output=True, text=True).stdout
        a = sum(float(line.split(":")[1]) for line in out.splitlines() if line.startswith("used_cpu_"))
        time.sleep(1)
        out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "cpu"], capture_output=True, text=True).stdout
        b = sum(float(line.split(":")[1]) for line in out.splitlines() if line.startswith("used_cpu_"))
        if b - a < 0.05:
            return


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="levee binary to compare against")
    ap.add_argument("--candidate", default=LEVEE)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--idle", type=int, default=10_000, help="idle connections for the memory figure")
    args = ap.parse_args()
    args.baseline, args.candidate = os.path.abspath(args.baseline), os.path.abspath(args.candidate)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    idle = min(args.idle, hard - 200)
    points = [("set", 16, 1_000_000), ("get", 16, 1_000_000), ("set", 1, 200_000), ("get", 1, 200_000)]
    results = {"baseline": [], "candidate": []}
    mem = {"baseline": [], "candidate": []}
    work = tempfile.mkdtemp(prefix="levee-conn-bench-")
    try:
        for rep, which, s in alternated_levees(args.baseline, args.candidate, args.repeat, work,
                                               ["--maxclients", str(idle + 100)]):
            run_point(s, "set", 16, 100, args.keys, 50)  # prefill
            run_point(s, "set", 16, 100, args.keys, 50)  # overwrite
            settle(s.port, 60)
            row = {f"{t.upper()} -P {p}": run_point(s, t, p, 100, n, 50) for t, p, n in points}
            mem[which].append(idle_bytes_per_connection(s.port, s.proc.pid, idle))
            results[which].append(row)
            print(f"rep {rep} {which:9} " + "  ".join(f"{k} {v['ops']:.0f} ops/s {v['cpu_us_per_op']:.2f} us/op"
                                                     for k, v in row.items()) +
                  f"  idle {mem[which][-1]:.0f} B/conn", file=sys.stderr, flush=True)
        # The reference: redis-server's own idle connection.
        port = free_port()
        r = Server("redis", ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--maxclients", str(idle + 100)], port, work)
        r.start()
        try:
            redis_idle = idle_bytes_per_connection(port, r.proc.pid, idle)
        finally:
            r.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{args.repeat} runs each, alternated; medians. Idle connections: {idle}.\n")
    print("| point | baseline ops/s | candidate ops/s | ratio | baseline CPU µs/op | candidate CPU µs/op | ratio |")
    print("|---|---|---|---|---|---|---|")
    for key in results["baseline"][0]:
        b = statistics.median(x[key]["ops"] for x in results["baseline"])
        c = statistics.median(x[key]["ops"] for x in results["candidate"])
        bc = statistics.median(x[key]["cpu_us_per_op"] for x in results["baseline"])
        cc = statistics.median(x[key]["cpu_us_per_op"] for x in results["candidate"])
        print(f"| {key} | {b:.0f} | {c:.0f} | {c / b:.3f} | {bc:.2f} | {cc:.2f} | {cc / bc:.3f} |")
    bm, cm = statistics.median(mem["baseline"]), statistics.median(mem["candidate"])
    print("\n| memory per idle connection | baseline | candidate | redis-server |")
    print("|---|---|---|---|")
    print(f"| RSS growth / connection | {bm:.0f} B | {cm:.0f} B | {redis_idle:.0f} B |")


if __name__ == "__main__":
    main()
