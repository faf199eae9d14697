#!/usr/bin/env python3
"""Backup and restore speed against cp and restic, on one >= 2 GB data dir,
in one run (bench/README.md; issue 6's bars).

1. A levee server is filled with --gb of incompressible 4 KB values under
   random keys (so LevelDB compacts as it would in service).
2. Timed, each from a warm page cache: `cp -r DATA && sync` (the disk
   ceiling: levee's backup is durable, so the copy is synced too),
   `restic backup DATA` to a local repository (Debian's restic 0.14), and
   `levee backup create --server` to file:// (unlimited rate).
3. --incr-pct more data is written (random keys: compaction rewrites
   tables, as in service), then both tools back up again: time and bytes
   added to each repository.
4. Restores, each from a cold page cache: `cp -r` of the copy + sync,
   `restic restore`, `levee backup restore` (+ sync).
5. Foreground latency: redis-benchmark (SET, then GET, 50 clients,
   --window-s each) p99 without a backup, then while a server-side backup
   (BACKUP RUN, default settings) copies the whole data set to a fresh
   repository; --rounds such pairs, medians compared, in two layouts:
   "split" (levee on CPU 0, redis-benchmark on CPU 1, as clients on other
   machines: the bar) and "shared" (everything on both CPUs, reported).

Bars: full backup >= 0.8x cp's throughput and >= 2.5x restic's; restore
>= 0.8x cp; p99 during a backup <= 1.2x without. Exit 1 when one is
missed (--no-bars to only report). JSON summary on the last line.
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from conftest import LEVEE, Levee, wait_until  # noqa: E402


def timed(cmd, env=None):
    t0 = time.monotonic()
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{cmd} failed: {r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return time.monotonic() - t0, r.stdout


def drop_caches():
    """Restores read a repository that is not in memory (in service it is
    remote, or written long ago): each starts from a cold page cache. The
    copies the backups just wrote would otherwise be cached for cp and restic
    (written through the cache) but not for levee (written around it)."""
    subprocess.run("sync", check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def du(path):
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True).stdout.split()[0])


def fill(server, nbytes, seed):
    c = server.client(socket_timeout=120)
    rnd = random.Random(seed)
    pipe = c.pipeline(transaction=False)
    n = nbytes // 4096
    for i in range(n):
        pipe.set(rnd.randbytes(16), os.urandom(4000))
        if i % 256 == 255:
            pipe.execute()
    pipe.execute()


def settle(data):
    """Waits until LevelDB's compactions are done: the table files stay the
    same for three seconds (polled, with a deadline)."""
    seen = {"files": None, "since": time.monotonic()}

    def quiet():
        files = sorted(os.listdir(os.path.join(data, "db")))
        if files != seen["files"]:
            seen["files"], seen["since"] = files, time.monotonic()
        return time.monotonic() - seen["since"] >= 3

    wait_until(quiet, 900, interval=0.5, what="compactions to finish")


# Where the processes run for the latency part. In service the clients run
# on other machines and levee's backup shares levee's CPUs only: "split"
# gives levee (and so its backup threads) CPU 0 and redis-benchmark CPU 1.
# "shared" lets all of them run anywhere on this machine's two CPUs, where
# any runnable background thread, even a SCHED_IDLE one that only spins,
# moves redis-benchmark's p99 (docs/benchmarks.md has the experiment).
LAYOUTS = {"split": (["taskset", "-c", "0"], ["taskset", "-c", "1"]), "shared": ([], [])}


def bench_window(port, op, n, client_prefix):
    r = subprocess.run(client_prefix + ["redis-benchmark", "-p", str(port), "-t", op, "-n", str(n), "-c", "50",
                                        "-d", "200", "-r", "1000000", "--csv"], capture_output=True, text=True)
    f = [x.strip('"') for x in r.stdout.splitlines()[1].split(",")]
    return {"rps": float(f[1]), "p99_ms": float(f[6])}


def p99(port, requests, client_prefix):
    return {op: bench_window(port, op.lower(), requests[op], client_prefix) for op in ("SET", "GET")}


def latency(a, s, root, data, res):
    """p99 without and with a server-side backup (default settings: rate
    limit, CPU priority) running, --rounds times alternately, each round on a
    freshly started server backing up the whole data set into an empty
    repository, in each layout of --layouts. Each window runs --window-s
    seconds per command (request counts from a calibration run). One p99 is
    noisy here: the medians of the rounds are compared."""
    s.stop()
    res["p99"] = {}
    for layout in a.layouts.split(","):
        server_prefix, client_prefix = LAYOUTS[layout]
        rounds, requests = [], None
        for i in range(a.rounds):
            repo = f"{root}/server-repo-{layout}-{i}"
            s = Levee(data, extra_args=["--backup-repo", f"file://{repo}", "--backup-schedule", "off"] +
                      a.server_args.split(), prefix=server_prefix, io_threads=0).start()
            status = lambda: dict(zip(*[iter(s.client().execute_command("BACKUP", "STATUS"))] * 2))  # noqa: E731
            # The start-up scan of the key filter (a background thread) must
            # not fall in the idle window only.
            wait_until(lambda: s.client().info("levee")["key_filter_ready"] == 1, 300, what="the key filter's scan")
            if requests is None:
                cal = p99(s.port, {"SET": 20000, "GET": 20000}, client_prefix)
                requests = {op: int(cal[op]["rps"] * a.window_s) for op in cal}
            idle = p99(s.port, requests, client_prefix)
            s.client().execute_command("BACKUP", "RUN")
            wait_until(lambda: status()[b"running"] == 1, 10, what="the backup to start")
            busy = p99(s.port, requests, client_prefix)
            throughout = status()[b"running"] == 1
            t0 = time.monotonic()
            wait_until(lambda: status()[b"running"] == 0, 900, what="the backup to end")
            io_threads = s.client().info("server")["io_threads_active"]
            rounds.append({"idle": idle, "backup": busy, "backup_ran_throughout": throughout,
                           "backup_left_s": time.monotonic() - t0})
            print(f"{layout} round {i + 1} ({io_threads} io threads): SET p99 {idle['SET']['p99_ms']} -> "
                  f"{busy['SET']['p99_ms']} ms, GET {idle['GET']['p99_ms']} -> {busy['GET']['p99_ms']} ms, "
                  f"SET {idle['SET']['rps']:.0f} -> {busy['SET']['rps']:.0f} rps, GET {idle['GET']['rps']:.0f} -> "
                  f"{busy['GET']['rps']:.0f} rps; backup ran throughout: {throughout}", file=sys.stderr)
            s.stop()
            shutil.rmtree(repo, ignore_errors=True)
        med = statistics.median
        out = {"rounds": rounds, "requests": requests,
               "backup_ran_throughout": all(r["backup_ran_throughout"] for r in rounds)}
        for key in ("idle", "backup"):
            out[key] = {op: {"p99_ms": med([r[key][op]["p99_ms"] for r in rounds]),
                             "rps": med([r[key][op]["rps"] for r in rounds])} for op in ("SET", "GET")}
        res["p99"][layout] = out
        print(f"{layout}: median p99 SET {out['idle']['SET']['p99_ms']} -> {out['backup']['SET']['p99_ms']} ms, GET "
              f"{out['idle']['GET']['p99_ms']} -> {out['backup']['GET']['p99_ms']} ms; throughout: "
              f"{out['backup_ran_throughout']}", file=sys.stderr)
    if a.p99_only:
        print(json.dumps(res))
        shutil.rmtree(root, ignore_errors=True)
        sys.exit(0)
    return s  # stopped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.2)
    ap.add_argument("--incr-pct", type=float, default=5.5)
    ap.add_argument("--no-bars", action="store_true")
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--p99-only", action="store_true", help="only the foreground-latency part")
    ap.add_argument("--server-args", default="", help="extra levee serve flags for the latency part")
    ap.add_argument("--rounds", type=int, default=5, help="idle/backup p99 pairs per layout (medians compared)")
    ap.add_argument("--layouts", default="split,shared",
                    help="where processes run for the latency part: split (levee on CPU 0, redis-benchmark on CPU 1: "
                         "the bar), shared (anywhere on both)")
    ap.add_argument("--window-s", type=float, default=8, help="seconds of load per command in each latency window")
    ap.add_argument("--data", default=None, help="latency part only: use this existing data dir (a copy is taken)")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="levee-bench-backup-", dir=a.dir)
    env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_CACHE_DIR=os.path.join(root, "restic-cache"))
    data = os.path.join(root, "data")
    res = {}
    if a.data:
        if not a.p99_only:
            raise SystemExit("--data is for --p99-only")
        shutil.copytree(a.data, data)
        return latency(a, Levee(data), root, data, res)
    s = Levee(data).start()
    try:
        t0 = time.monotonic()
        fill(s, int(a.gb * 2**30), 1)
        res["fill_s"] = time.monotonic() - t0
        size = du(data)
        res["data_bytes"] = size
        print(f"data dir: {size / 2**30:.2f} GiB (filled in {res['fill_s']:.0f} s)", file=sys.stderr)
        settle(data)
        if a.p99_only:
            return latency(a, s, root, data, res)
        timed(f"cat {data}/db/* > /dev/null")  # warm the page cache for everyone

        res["cp_s"], _ = timed(f"cp -r {data} {root}/cp && sync")
        timed(["restic", "init", "--repo", f"{root}/restic"], env)
        res["restic_s"], _ = timed(["restic", "backup", "--repo", f"{root}/restic", data], env)
        repo = f"file://{root}/levee-repo"
        res["levee_s"], out = timed([LEVEE, "backup", "create", "--server", f"127.0.0.1:{s.port}", "--repo", repo,
                                     "--json"])
        full = json.loads(out.splitlines()[-1])
        res["levee_full"] = {k: full[k] for k in ("bytes", "new_bytes", "new_stored_bytes", "barrier_us", "files")}

        fill(s, int(a.gb * 2**30 * a.incr_pct / 100), 2)
        settle(data)
        restic_before = du(f"{root}/restic")
        res["restic_incr_s"], _ = timed(["restic", "backup", "--repo", f"{root}/restic", data], env)
        res["restic_incr_added_bytes"] = du(f"{root}/restic") - restic_before
        res["levee_incr_s"], out = timed([LEVEE, "backup", "create", "--server", f"127.0.0.1:{s.port}", "--repo", repo,
                                          "--json"])
        incr = json.loads(out.splitlines()[-1])
        res["levee_incr"] = {k: incr[k] for k in ("bytes", "read_bytes", "new_bytes", "new_stored_bytes", "barrier_us")}
        res["data_bytes_after"] = incr["bytes"]

        drop_caches()
        res["cp_restore_s"], _ = timed(f"cp -r {root}/cp {root}/cp-restored && sync")
        drop_caches()
        res["restic_restore_s"], _ = timed(["restic", "restore", "latest", "--repo", f"{root}/restic", "--target",
                                            f"{root}/restic-restored"], env)
        drop_caches()
        res["levee_restore_s"], _ = timed(f"{LEVEE} backup restore --repo {repo} --data-dir {root}/levee-restored && sync")
        for d in ("cp", "cp-restored", "restic-restored"):
            shutil.rmtree(os.path.join(root, d), ignore_errors=True)

        s = latency(a, s, root, data, res)
    finally:
        s.stop()
        shutil.rmtree(root, ignore_errors=True)

    gib = res["data_bytes"] / 2**30
    r = {
        "full_vs_cp": res["cp_s"] / res["levee_s"],
        "full_vs_restic": res["restic_s"] / res["levee_s"],
        "restore_vs_cp": res["cp_restore_s"] / res["levee_restore_s"],
    }
    for layout, out in res["p99"].items():
        for op in ("SET", "GET"):
            r[f"p99_{op.lower()}_{layout}"] = out["backup"][op]["p99_ms"] / out["idle"][op]["p99_ms"]
    bar_layout = "split" if "split" in res["p99"] else next(iter(res["p99"]))
    res["ratios"] = r
    print(f"full backup of {gib:.2f} GiB: cp+sync {res['cp_s']:.1f} s, restic {res['restic_s']:.1f} s, "
          f"levee {res['levee_s']:.1f} s -> {r['full_vs_cp']:.2f}x cp, {r['full_vs_restic']:.2f}x restic", file=sys.stderr)
    print(f"incremental (+{a.incr_pct}%): restic {res['restic_incr_s']:.1f} s adding "
          f"{res['restic_incr_added_bytes'] / 2**20:.0f} MiB; levee {res['levee_incr_s']:.1f} s uploading "
          f"{res['levee_incr']['new_stored_bytes'] / 2**20:.0f} MiB (read {res['levee_incr']['read_bytes'] / 2**20:.0f} MiB)",
          file=sys.stderr)
    print(f"restore: cp+sync {res['cp_restore_s']:.1f} s, restic {res['restic_restore_s']:.1f} s, levee "
          f"{res['levee_restore_s']:.1f} s -> {r['restore_vs_cp']:.2f}x cp", file=sys.stderr)
    for layout, out in res["p99"].items():
        print(f"p99 ({layout}) SET {out['idle']['SET']['p99_ms']} -> {out['backup']['SET']['p99_ms']} ms "
              f"({r['p99_set_' + layout]:.2f}x), GET {out['idle']['GET']['p99_ms']} -> {out['backup']['GET']['p99_ms']} "
              f"ms ({r['p99_get_' + layout]:.2f}x); backup still running at the end: {out['backup_ran_throughout']}",
              file=sys.stderr)
    print(json.dumps(res))
    missed = [name for name, bad in (("full >= 0.8x cp", r["full_vs_cp"] < 0.8),
                                     ("full >= 2.5x restic", r["full_vs_restic"] < 2.5),
                                     ("restore >= 0.8x cp", r["restore_vs_cp"] < 0.8),
                                     (f"p99 ({bar_layout}) <= 1.2x",
                                      max(r["p99_set_" + bar_layout], r["p99_get_" + bar_layout]) > 1.2)) if bad]
    if missed:
        print("missed: " + ", ".join(missed), file=sys.stderr)
    return 1 if missed and not a.no_bars else 0


if __name__ == "__main__":
    sys.exit(main())
