#!/usr/bin/env python3
"""levee vs redis-server, same machine, same run (bench/README.md).

Starts levee (fsync everysec) and Debian's redis-server twice (no
persistence; appendonly yes + appendfsync everysec) on loopback ports, runs
redis-benchmark against each for SET and GET at -c 50, -P 1 and -P 16,
-d 100 and -d 4096, -r 1000000, several repetitions, and prints medians:
ops/s, p50/p99 as redis-benchmark reports them, the closed-loop time per
request (clients x pipeline / ops-per-second: redis-benchmark times only the
first reply of a pipelined batch), the server's CPU time per operation, and
the ratios levee / redis. Exit status 1 if a bar of the core issue is missed
(--no-bars to only report).
"""
import argparse
import csv
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEVEE = os.environ.get("BENCH_LEVEE_BIN", os.path.join(ROOT, "build", "levee"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ping(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not answer PING within {timeout}s")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


class Server:
    def __init__(self, name, argv, port, workdir):
        self.name, self.argv, self.port, self.workdir = name, argv, port, workdir

    def start(self):
        self.log = open(os.path.join(self.workdir, f"{self.name}.log"), "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir)
        wait_ping(self.port, self.proc)

    def flush(self):
        subprocess.run(["redis-cli", "-p", str(self.port), "FLUSHALL"], capture_output=True, timeout=600)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def require_tools():
    for tool in ("redis-server", "redis-benchmark", "redis-cli"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: run scripts/install-deps.sh")
    if not os.path.exists(LEVEE):
        raise SystemExit(f"{LEVEE} not found: build first (scripts/build.sh)")


def levee_everysec(port, workdir):
    """levee with fsync everysec, its data under workdir."""
    return Server("levee", [LEVEE, "serve", "--port", str(port), "--http-port", "0", "--data-dir",
                            os.path.join(workdir, "levee-data"), "--fsync", "everysec", "--log-format", "text"],
                  port, workdir)


def redis_aof(port, workdir, aof_dir):
    """redis-server with appendonly yes, appendfsync everysec: levee's reference."""
    return Server("redis-aof", ["redis-server", "--port", str(port), "--save", "", "--appendonly", "yes",
                                "--appendfsync", "everysec", "--dir", workdir, "--appenddirname", aof_dir],
                  port, workdir)


def alternated_levees(baseline, candidate, repeat, work, extra_args=()):
    """Starts BASELINE and CANDIDATE levee binaries alternately (baseline
    first on even repetitions, candidate first on odd ones), each on a fresh
    data directory under work; yields (rep, which, server) and stops the
    server and removes its data when the caller moves on."""
    for rep in range(repeat):
        for which in (("baseline", "candidate") if rep % 2 == 0 else ("candidate", "baseline")):
            binary = baseline if which == "baseline" else candidate
            port = free_port()
            data = os.path.join(work, f"{which}-{rep}")
            s = Server(which, [binary, "serve", "--port", str(port), "--http-port", "0", "--data-dir", data,
                               "--log-format", "text"] + list(extra_args), port, work)
            s.start()
            try:
                yield rep, which, s
            finally:
                s.stop()
                shutil.rmtree(data, ignore_errors=True)


def run_point(server, test, pipeline, size, requests, clients, client_prefix=()):
    before = cpu_seconds(server.proc.pid)
    out = subprocess.run(list(client_prefix) + ["redis-benchmark", "-p", str(server.port), "-c", str(clients), "-P", str(pipeline),
                          "-d", str(size), "-r", "1000000", "-n", str(requests), "-t", test, "--csv"],
                         capture_output=True, timeout=1800, text=True)
    cpu = cpu_seconds(server.proc.pid) - before
    if out.returncode != 0:
        raise SystemExit(f"redis-benchmark failed against {server.name}: {out.stderr}")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    row = rows[0]
    ops = float(row["rps"])
    return {
        "ops": ops,
        "p50_ms": float(row["p50_latency_ms"]),
        "p99_ms": float(row["p99_latency_ms"]),
        "closed_loop_us": clients * pipeline / ops * 1e6,
        "cpu_us_per_op": cpu / requests * 1e6,
    }


def median_point(samples):
    return {k: statistics.median(s[k] for s in samples) for k in samples[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs per point; the median is reported")
    ap.add_argument("--requests-p1", type=int, default=200_000)
    ap.add_argument("--requests-p16", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--sizes", default="100,4096")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--no-bars", action="store_true", help="do not fail when a bar is missed")
    args = ap.parse_args()
    require_tools()
    workdir = tempfile.mkdtemp(prefix="levee-bench-")
    ports = [free_port() for _ in range(3)]
    servers = [
        levee_everysec(ports[0], workdir),
        Server("redis", ["redis-server", "--port", str(ports[1]), "--save", "", "--appendonly", "no",
                         "--dir", workdir, "--dbfilename", "r1.rdb"], ports[1], workdir),
        redis_aof(ports[2], workdir, "aof2"),
    ]
    results = []
    try:
        for s in servers:
            s.start()
        sizes = [int(x) for x in args.sizes.split(",")]
        for size in sizes:
            for pipeline in (1, 16):
                for test in ("set", "get"):
                    n = args.requests_p16 if pipeline == 16 else args.requests_p1
                    if size > 1000:
                        n //= 4  # keep the 4 KiB data set near 1 GB
                    point = {"test": test.upper(), "pipeline": pipeline, "size": size, "requests": n}
                    for s in servers:
                        samples = []
                        for _ in range(args.repeat):
                            samples.append(run_point(s, test, pipeline, size, n, args.clients))
                        point[s.name] = median_point(samples)
                    results.append(point)
                    print_point(point, file=sys.stderr)
            for s in servers:
                s.flush()
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    bars = check_bars(results)
    if args.json:
        print(json.dumps({"results": results, "bars": bars}, indent=2))
    else:
        print(markdown(results, args))
        for b in bars:
            print(("PASS " if b["ok"] else "MISS ") + b["what"] + f": {b['ratio']:.2f} (bar {b['bar']})")
    if not args.no_bars and not all(b["ok"] for b in bars):
        sys.exit(1)


def print_point(p, file):
    lv, rd = p["levee"], p["redis"]
    print(f"{p['test']:>3} -P {p['pipeline']:<2} -d {p['size']:<5} levee {lv['ops']:>10.0f} ops/s  "
          f"redis {rd['ops']:>10.0f}  redis-aof {p['redis-aof']['ops']:>10.0f}  "
          f"levee cpu/op {lv['cpu_us_per_op']:.2f} us vs {rd['cpu_us_per_op']:.2f}", file=file, flush=True)


def check_bars(results):
    bars = []
    for p in results:
        if p["pipeline"] != 16:
            continue
        if p["test"] == "GET":
            bars.append({"what": f"GET -P 16 -d {p['size']} levee / redis (no persistence)",
                         "ratio": p["levee"]["ops"] / p["redis"]["ops"], "bar": 0.5})
        else:
            bars.append({"what": f"SET -P 16 -d {p['size']} levee (fsync everysec) / redis (appendfsync everysec)",
                         "ratio": p["levee"]["ops"] / p["redis-aof"]["ops"], "bar": 0.4})
    for b in bars:
        b["ok"] = b["ratio"] >= b["bar"]
    return bars


def markdown(results, args):
    lines = [f"Medians of {args.repeat} runs; -c {args.clients}, -r 1000000.",
             "",
             "| test | -P | -d | server | ops/s | p50 ms | p99 ms | closed-loop µs/req | server CPU µs/op | levee ÷ this |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for p in results:
        for name in ("levee", "redis", "redis-aof"):
            r = p[name]
            ratio = "" if name == "levee" else f"{p['levee']['ops'] / r['ops']:.2f}"
            lines.append(f"| {p['test']} | {p['pipeline']} | {p['size']} | {name} | {r['ops']:.0f} | {r['p50_ms']:.3f} "
                         f"| {r['p99_ms']:.3f} | {r['closed_loop_us']:.1f} | {r['cpu_us_per_op']:.2f} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
