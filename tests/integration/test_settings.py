"""Settings and CLI flags no other test sets: set each one, observe its
effect where a user would (INFO, metrics, the repository, the log)."""
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

from conftest import LEVEE, Levee, free_port, wait_until
from test_backup import s3  # noqa: F401 - the S3 fixture (s3rver behind the signature check)
from test_power_loss import disk  # noqa: F401 - the power-cut filesystem, here a slow disk


def metrics(s):
    text = urllib.request.urlopen(f"http://127.0.0.1:{s.http_port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def levee(*args, timeout=300):
    return subprocess.run([LEVEE] + list(args), capture_output=True, text=True, timeout=timeout)


def concurrent_sets(server, clients, per_client):
    errors = []

    def run(i):
        try:
            c = server.client(single_connection_client=True)
            for n in range(per_client):
                c.set(f"c{i}:{n}", n)
        except Exception as e:  # noqa: BLE001 - asserted below
            errors.append(repr(e))
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def fsyncs(server):
    return int(server.client().info("persistence")["wal_fsyncs"])


def test_max_write_group_bounds_the_commands_one_fsync_covers(server_factory):
    """fsync always with 16 clients: groups share a sync; max-write-group 1
    makes every command its own group, so one sync each."""
    s = server_factory(["--fsync", "always"])
    before = fsyncs(s)
    concurrent_sets(s, 16, 200)
    shared = fsyncs(s) - before
    assert shared < 3200 * 0.8, shared
    s.client().config_set("max-write-group", "1")
    before = fsyncs(s)
    concurrent_sets(s, 16, 200)
    assert fsyncs(s) - before == 3200


def test_expire_keys_per_cycle_bounds_what_one_cycle_deletes(server_factory):
    """The active expirer deletes at most expire-keys-per-cycle keys per
    cycle (ten a second): with 1, two seconds delete a few dozen of 3000
    expired keys; with the default, all of them."""
    s = server_factory(["--expire-keys-per-cycle", "1"])
    c = s.client()
    p = c.pipeline(transaction=False)
    for i in range(3000):
        p.set(f"e{i}", "v", px=20)
    p.execute()
    wait_until(lambda: int(c.info("stats")["expired_keys"]) >= 5, 10, what="the first active expiries")
    start = int(c.info("stats")["expired_keys"])
    window_end = time.monotonic() + 2.0  # a measuring window, not a wait for a condition
    wait_until(lambda: time.monotonic() >= window_end, 5, interval=0.1, what="two seconds of expiry cycles")
    slow = int(c.info("stats")["expired_keys"]) - start
    assert 0 < slow < 200, slow  # about 10 a second (plus cycles when the writer is idle)
    c.config_set("expire-keys-per-cycle", "500")
    wait_until(lambda: int(c.info("stats")["expired_keys"]) == 3000, 10, what="every expired key deleted")


def test_repl_compression_no_sends_records_uncompressed(server_factory):
    """Compressible values: with repl-compression the primary sends a
    fraction of the bytes; with no, at least the values' size."""
    sent = {}
    for setting in ("yes", "no"):  # the replica's setting: it asks the primary (REPLCONF capa zstd)
        p = server_factory()
        r = server_factory(["--replicaof", f"127.0.0.1:{p.port}", "--repl-compression", setting])
        wait_until(lambda: r.client().info("replication").get("master_link_status") == "up", 30, what="link up")
        before = metrics(p)["levee_repl_sent_bytes_total"]
        pipe = p.client().pipeline(transaction=False)
        for i in range(2000):
            pipe.set(f"k{i}", "abcdefgh" * 100)  # 800 bytes, compressible
        pipe.execute()
        wait_until(lambda: r.client().dbsize() == 2000, 30, what="the replica to catch up")
        sent[setting] = metrics(p)["levee_repl_sent_bytes_total"] - before
        r.stop()
        p.stop()
    assert sent["no"] >= 2000 * 800, sent
    assert sent["yes"] < sent["no"] / 4, sent


def test_masteruser_is_sent_with_the_password(server_factory, tmpdir_path):
    """A replica authenticates as masteruser: the primary's only user is
    "default", so masteruser default links and masteruser alice is refused
    (and the replica says why)."""
    pw = os.path.join(tmpdir_path, "pw")
    with open(pw, "w") as f:
        f.write("s3cret\n")
    os.chmod(pw, 0o600)
    p = server_factory(["--requirepass-file", pw], password="s3cret")
    good = server_factory(["--replicaof", f"127.0.0.1:{p.port}", "--masterauth-file", pw, "--masteruser", "default"])
    wait_until(lambda: good.client().info("replication").get("master_link_status") == "up", 30, what="link up")
    bad = server_factory(["--replicaof", f"127.0.0.1:{p.port}", "--masterauth-file", pw, "--masteruser", "alice"])
    wait_until(lambda: "WRONGPASS" in bad.read_log() or "alice" in bad.read_log(), 30,
               what="the replica to report the refused user")
    assert bad.client().info("replication")["master_link_status"] == "down"


def test_backup_chunk_mb_and_parallelism_shape_what_the_server_uploads(server_factory, s3, tmpdir_path):
    """A backup the server makes (to its backup-repo) with backup-chunk-mb 1
    stores no object larger than 1 MiB (plus its header), and with
    backup-parallelism 2 never has more than two uploads in flight."""
    repo_dir = os.path.join(tmpdir_path, "repo")
    s = server_factory(["--backup-repo", "file://" + repo_dir, "--backup-schedule", "1h", "--backup-chunk-mb", "1",
                        "--wal-segment-mb", "8"])
    c = s.client()
    pipe = c.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"k{i}", os.urandom(1000))
    pipe.execute()
    r = levee("backup", "create", "--server", f"127.0.0.1:{s.port}", "--json")
    assert r.returncode == 0, r.stderr
    sizes = [os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(repo_dir, "objects")) for f in fs]
    assert sizes and max(sizes) <= (1 << 20) + 4096, max(sizes)
    assert sum(1 for x in sizes if x > (1 << 19)) >= 2, "no object near the chunk size: the data was too small"
    # The same server backing up to S3 with backup-parallelism 2 (then 6).
    s.stop()
    for n in (2, 6):
        s3.object_put_delay, s3.max_object_puts_in_flight = 0.2, 0
        p = server_factory(["--backup-repo", s3.url(prefix=f"par{n}"), "--backup-schedule", "1h",
                            "--backup-chunk-mb", "1", "--backup-parallelism", str(n), "--wal-segment-mb", "8"],
                           data_dir=s.data_dir, env=s3.env())
        r = levee("backup", "create", "--server", f"127.0.0.1:{p.port}")
        assert r.returncode == 0, r.stderr
        assert s3.max_object_puts_in_flight == n, (n, s3.max_object_puts_in_flight)
        p.stop()


def test_backup_flags_no_digest_and_scratch_dir(server, tmpdir_path):
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    server.client().set("k", "v")
    r = levee("backup", "create", "--server", f"127.0.0.1:{server.port}", "--repo", repo, "--no-digest")
    assert r.returncode == 0, r.stderr
    (m,) = json.loads(levee("backup", "list", "--repo", repo, "--json").stdout)
    assert m["digest"] == ""
    r = levee("backup", "create", "--server", f"127.0.0.1:{server.port}", "--repo", repo)
    assert r.returncode == 0, r.stderr
    newest = max(json.loads(levee("backup", "list", "--repo", repo, "--json").stdout), key=lambda b: b["time_ms"])
    assert newest["digest"] == server.client().execute_command("DEBUG", "DIGEST").decode()
    # --scratch-dir: --deep restores there (and cleans up); a path that
    # cannot be used is named.
    scratch = os.path.join(tmpdir_path, "scratch")
    os.makedirs(scratch)
    r = levee("backup", "verify", "--deep", "--repo", repo, "--scratch-dir", scratch)
    assert r.returncode == 0, r.stderr
    assert os.listdir(scratch) == []
    blocked = os.path.join(tmpdir_path, "a-file")
    open(blocked, "w").close()
    r = levee("backup", "verify", "--deep", "--repo", repo, "--scratch-dir", blocked)
    assert r.returncode != 0 and blocked in r.stdout + r.stderr, r


def test_replica_ready_max_lag_ms_takes_a_lagging_replica_out_of_service(disk, server_factory):
    """A replica whose disk is slow (each write to its log held 0.2 s on the
    power-cut filesystem) falls behind under load: with
    replica-ready-max-lag-ms 300 its /readyz answers 503 naming the setting;
    raised to an hour at runtime, it is ready again while still behind."""
    p = server_factory()
    disk.mkdir_durable("replica")
    disk.ctl(op="delay", on="write", path="/replica/wal/*.wal", seconds=0.2)
    r = Levee(os.path.join(disk.mnt, "replica"), ["--replicaof", f"127.0.0.1:{p.port}",
                                                   "--replica-ready-max-lag-ms", "300"], port=free_port())
    r.log_path = os.path.join(disk.base, "replica.log")
    r.start(wait=False)
    disk.servers.append(r.proc)
    r.wait_ready()
    try:
        wait_until(lambda: r.client().info("replication").get("master_link_status") == "up", 30, what="link up")
        stop = threading.Event()

        def load():
            c = p.client()
            i = 0
            while not stop.is_set():
                c.set(f"k{i}", i)
                i += 1
        t = threading.Thread(target=load)
        t.start()
        try:
            def readyz():
                try:
                    return urllib.request.urlopen(f"http://127.0.0.1:{r.http_port}/readyz", timeout=5).status, ""
                except urllib.error.HTTPError as e:
                    return e.code, e.read().decode()
            code, body = wait_until(lambda: (x := readyz())[0] == 503 and x, 30, what="/readyz 503 while lagging")
            assert "replica-ready-max-lag-ms" in body and "behind the primary" in body, body
            r.client().config_set("replica-ready-max-lag-ms", "3600000")
            wait_until(lambda: readyz()[0] == 200, 10, what="/readyz 200 with an hour allowed")
        finally:
            stop.set()
            t.join(30)
    finally:
        r.stop()
