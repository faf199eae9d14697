"""Replication with real levee processes on loopback: streaming, partial and
full resync, cascading, promotion, WAIT and sync-class writes. Every check
is what an operator would look at: DEBUG DIGEST, INFO, ROLE, replies."""
import os
import random
import threading
import time

import pytest
import redis

from conftest import as_this_user, privileged, wait_until


def digest(s):
    return s.client().execute_command("DEBUG", "DIGEST")


def info(s, section):
    return s.client().info(section)


def replica_of(factory, primary, extra=(), **kw):
    return factory(["--replicaof", f"127.0.0.1:{primary.port}"] + list(extra), **kw)


def wait_link_up(r, timeout=20):
    wait_until(lambda: info(r, "replication").get("master_link_status") == "up", timeout,
               what=f"replica {r.port} link up")


def wait_same_data(*servers, timeout=30):
    def same():
        ds = [digest(s) for s in servers]
        return all(d == ds[0] for d in ds) and ds
    return wait_until(same, timeout, interval=0.1, what="equal DEBUG DIGEST on " + ", ".join(str(s.port) for s in servers))


def mixed_load(server, n_threads=4, ops=1500, seed=0):
    """Concurrent SET/INCR/EXPIRE/PEXPIRE/DEL/MULTI from n_threads clients."""
    errors = []

    def worker(t):
        rnd = random.Random(seed * 100 + t)
        c = server.client()
        try:
            for i in range(ops):
                k = f"k{rnd.randrange(300)}"
                op = rnd.randrange(7)
                if op == 0:
                    c.set(k, f"v{t}-{i}")
                elif op == 1:
                    c.incr(f"counter{rnd.randrange(10)}")
                elif op == 2:
                    c.expire(k, rnd.randrange(1, 100))
                elif op == 3:
                    c.set(k, "short", px=rnd.randrange(20, 200))  # expires during the run
                elif op == 4:
                    c.delete(k)
                else:
                    p = c.pipeline(transaction=True)
                    p.set(f"tx{t}", i)
                    p.incrby(f"counter{rnd.randrange(10)}", 5)
                    p.append(f"log{t}", "x")
                    p.execute()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors


def test_two_replicas_converge_under_mixed_writes(server_factory):
    p = server_factory()
    r1 = replica_of(server_factory, p)
    r2 = replica_of(server_factory, p)
    wait_link_up(r1)
    wait_link_up(r2)
    mixed_load(p)
    wait_same_data(p, r1, r2)
    # Keys whose short expiry passed were deleted on the primary and the
    # deletes replicated: the replicas hold the same keys, not stale ones.
    wait_until(lambda: p.client().dbsize() == r1.client().dbsize() == r2.client().dbsize(), 10,
               what="equal DBSIZE")
    assert r1.client().get("counter0") == p.client().get("counter0")
    with pytest.raises(redis.exceptions.ReadOnlyError, match="You can.t write against a read only replica"):
        r1.client().set("x", "1")
    pi = info(p, "replication")
    assert pi["role"] == "master" and pi["connected_slaves"] == 2
    for key in ("slave0", "slave1"):
        assert pi[key]["state"] == "online"
        assert pi[key]["port"] in (r1.port, r2.port)
    ri = info(r1, "replication")
    assert ri["role"] == "slave" and ri["master_port"] == p.port
    assert ri["master_replid"] == pi["master_replid"]
    wait_until(lambda: info(r1, "replication")["slave_repl_offset"] == info(p, "replication")["master_repl_offset"],
               10, what="replica offset equal to the primary's")
    role = r1.client().execute_command("ROLE")
    assert role[0] == b"slave" and role[3] == b"connected"
    role = p.client().execute_command("ROLE")
    assert role[0] == b"master" and len(role[2]) == 2


def test_replica_restart_resyncs_partially(server_factory):
    p = server_factory()
    r = replica_of(server_factory, p)
    wait_link_up(r)
    c = p.client()
    for i in range(500):
        c.set(f"a{i}", i)
    wait_same_data(p, r)
    full_before = info(p, "stats")["sync_full"]
    partial_before = info(p, "stats")["sync_partial_ok"]
    r.kill9()
    for i in range(500):
        c.set(f"b{i}", i)
    r.start()
    wait_link_up(r)
    wait_same_data(p, r)
    st = info(p, "stats")
    assert st["sync_full"] == full_before, "a restarted replica must not need a full copy"
    assert st["sync_partial_ok"] == partial_before + 1
    assert info(r, "stats")["sync_replica_partial"] == 1


def test_primary_restart_keeps_partial_resync(server_factory):
    p = server_factory()
    r = replica_of(server_factory, p)
    wait_link_up(r)
    p.client().set("before", "1")
    wait_same_data(p, r)
    replid = info(p, "replication")["master_replid"]
    p.stop()
    p.start()
    assert info(p, "replication")["master_replid"] == replid
    p.client().set("after", "2")
    wait_same_data(p, r)
    assert info(p, "stats")["sync_full"] == 0
    assert info(p, "stats")["sync_partial_ok"] == 1


def test_replica_offline_past_log_retention_gets_full_resync(server_factory):
    small = ["--wal-segment-mb", "1", "--wal-keep-segments", "1", "--repl-backlog-max-mb", "1"]
    p = server_factory(small)
    r = replica_of(server_factory, p)
    wait_link_up(r)
    p.client().set("first", "1")
    wait_same_data(p, r)
    offset = info(r, "replication")["slave_repl_offset"]
    r.stop()
    c = p.client()
    big = "x" * 2000
    pipe = c.pipeline(transaction=False)
    for i in range(4000):  # about 8 MB of log: several segments
        pipe.set(f"big{i}", big)
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    wait_until(lambda: info(p, "replication")["repl_backlog_first_byte_offset"] > offset + 1, 20,
               what="the primary trimming the log past the replica's offset")
    full_before = info(p, "stats")["sync_full"]
    r.start()
    wait_link_up(r, 30)
    wait_same_data(p, r)
    assert info(p, "stats")["sync_full"] == full_before + 1
    assert info(p, "stats")["sync_partial_err"] >= 1
    assert r.client().get("big3999") == big.encode()


def test_cascading_replicas(server_factory):
    p = server_factory()
    a = replica_of(server_factory, p)
    b = replica_of(server_factory, a)
    wait_link_up(a)
    wait_link_up(b)
    mixed_load(p, n_threads=2, ops=800, seed=1)
    wait_same_data(p, a, b)
    assert info(b, "replication")["master_replid"] == info(p, "replication")["master_replid"]
    # B keeps following after A restarts.
    a.stop()
    p.client().set("while-a-was-down", "1")
    a.start()
    wait_link_up(a)
    wait_link_up(b, 30)
    p.client().set("after-a-restart", "2")
    wait_same_data(p, a, b)
    assert b.client().get("after-a-restart") == b"2"
    # Counters of A's new process: B came back with a partial resync.
    assert info(a, "stats")["sync_full"] == 0
    assert info(a, "stats")["sync_partial_ok"] >= 1


def test_promotion_resyncs_others_partially(server_factory):
    p = server_factory()
    r1 = replica_of(server_factory, p)
    r2 = replica_of(server_factory, p)
    wait_link_up(r1)
    wait_link_up(r2)
    mixed_load(p, n_threads=2, ops=500, seed=2)
    wait_same_data(p, r1, r2)
    old_id = info(p, "replication")["master_replid"]
    # Promote r1, re-point r2 and the old primary at it.
    assert r1.client().execute_command("REPLICAOF", "NO", "ONE") == b"OK"
    ri = info(r1, "replication")
    assert ri["role"] == "master" and ri["master_replid2"] == old_id and ri["master_replid"] != old_id
    r1.client().set("after-promotion", "1")
    r2.client().execute_command("REPLICAOF", "127.0.0.1", r1.port)
    p.client().execute_command("SLAVEOF", "127.0.0.1", r1.port)
    wait_link_up(r2)
    wait_link_up(p)
    r1.client().set("later", "2")
    wait_same_data(r1, r2, p)
    st = info(r1, "stats")
    assert st["sync_full"] == 0, "replicas whose history is a prefix of the new primary's resync partially"
    assert st["sync_partial_ok"] == 2
    with pytest.raises(redis.exceptions.ReadOnlyError):
        p.client().set("x", "1")


def test_unrelated_primary_means_full_resync_not_merge(server_factory):
    a = server_factory()
    b = server_factory()
    a.client().set("only-on-a", "1")
    b.client().set("only-on-b", "1")
    b.client().execute_command("REPLICAOF", "127.0.0.1", a.port)
    wait_link_up(b)
    wait_same_data(a, b)
    assert b.client().get("only-on-b") is None
    assert info(a, "stats")["sync_full"] == 1


def test_wait_counts_acks_of_the_callers_writes(server_factory):
    p = server_factory()
    c = p.client()
    c.set("k", "1")
    assert c.execute_command("WAIT", 1, 100) == 0  # no replicas: times out with 0
    r1 = replica_of(server_factory, p)
    r2 = replica_of(server_factory, p)
    wait_link_up(r1)
    wait_link_up(r2)
    c.set("k", "2")
    assert c.execute_command("WAIT", 2, 5000) == 2
    assert c.execute_command("WAIT", 0, 0) == 2
    with pytest.raises(redis.ResponseError, match="WAIT cannot be used with replica instances"):
        r1.client().execute_command("WAIT", 1, 10)
    r2.kill9()
    c.set("k", "3")
    t0 = time.monotonic()
    assert c.execute_command("WAIT", 2, 300) == 1
    assert time.monotonic() - t0 >= 0.29


def test_sync_class_writes_wait_for_acks_and_time_out(server_factory):
    p = server_factory(["--sync-replicas", "1", "--sync-key-prefixes", "critical:,order:", "--sync-timeout-ms", "500"])
    c = p.client()
    # No replica: a sync-class write fails after the timeout, saying so.
    t0 = time.monotonic()
    with pytest.raises(redis.ResponseError, match="sync replication timeout.*may or may not survive a failover"):
        c.set("critical:a", "1")
    assert time.monotonic() - t0 >= 0.45
    assert c.get("critical:a") == b"1"  # applied here: the error says so
    assert c.set("plain", "1") is True  # async class: answered at once
    r = replica_of(server_factory, p)
    wait_link_up(r)
    # With a replica: acknowledged, and on the replica when OK arrives.
    for i in range(50):
        assert c.set(f"order:{i}", i) is True
        assert r.client().get(f"order:{i}") == str(i).encode()
    # degrade: answered OK after the timeout and counted.
    c.config_set("sync-timeout-policy", "degrade")
    r.kill9()
    assert c.set("critical:b", "2") is True
    m = p.client().info("stats")  # the server is still healthy
    assert m["sync_full"] >= 1
    import urllib.request
    body = urllib.request.urlopen(f"http://127.0.0.1:{p.http_port}/metrics", timeout=5).read().decode()
    assert "levee_repl_sync_degraded_total 1" in body
    assert "levee_repl_sync_timeouts_total 2" in body


def test_min_replicas_to_write_refuses_with_noreplicas(server_factory):
    p = server_factory(["--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"])
    c = p.client()
    with pytest.raises(redis.ResponseError, match="NOREPLICAS Not enough good replicas to write."):
        c.set("k", "1")
    assert c.get("k") is None
    r = replica_of(server_factory, p)
    wait_link_up(r)
    wait_until(lambda: c.set("k", "1"), 10, what="writes accepted with a good replica")
    r.kill9()
    wait_until(lambda: info(p, "replication")["connected_slaves"] == 0 or
               info(p, "replication").get("min_slaves_good_slaves") == 0, 15, what="replica gone")
    with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
        c.set("k", "2")


def test_replication_loops_are_refused(server_factory):
    a = server_factory()
    # Pointed at itself.
    a.client().execute_command("REPLICAOF", "127.0.0.1", a.port)
    wait_until(lambda: "replication loop" in info(a, "replication").get("master_link_last_error", ""), 10,
               what="self-replication refused")
    assert info(a, "replication")["master_link_status"] == "down"
    a.client().execute_command("REPLICAOF", "NO", "ONE")
    # A -> B, then B -> A.
    b = replica_of(server_factory, a)
    wait_link_up(b)
    a.client().execute_command("REPLICAOF", "127.0.0.1", b.port)
    wait_until(lambda: "replication loop" in info(a, "replication").get("master_link_last_error", ""), 10,
               what="A->B->A refused")
    assert "replication loop" in a.read_log()


def test_replica_readiness_and_stale_reads(server_factory):
    import urllib.error
    import urllib.request

    def readyz(s):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{s.http_port}/readyz", timeout=5).status
        except urllib.error.HTTPError as e:
            return e.code

    p = server_factory()
    p.client().set("k", "v")
    r = replica_of(server_factory, p, ["--replica-serve-stale-data", "no"])
    wait_link_up(r)
    wait_until(lambda: readyz(r) == 200, 10, what="replica ready")
    assert r.client().get("k") == b"v"
    p.stop()
    wait_until(lambda: readyz(r) == 503, 30, what="replica not ready once its primary is gone")
    with pytest.raises(redis.ResponseError, match="MASTERDOWN"):
        r.client().get("k")
    r.client().config_set("replica-serve-stale-data", "yes")
    assert r.client().get("k") == b"v"
    p.start()
    wait_until(lambda: readyz(r) == 200, 30, what="replica ready again after the primary returned")


FULLSYNC_MB = int(os.environ.get("TEST_FULLSYNC_MB", "1100"))


def fill_incompressible(server, total_mb, value_kb=64):
    c = server.client(socket_timeout=60)
    n = total_mb * 1024 // value_kb
    pipe = c.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"blob:{i:07d}", os.urandom(value_kb * 1024))
        if i % 64 == 63:
            pipe.execute()
    pipe.execute()
    return n


def test_full_resync_of_a_large_copy_resumes_after_a_cut(server_factory):
    p = server_factory(["--repl-full-sync-max-bytes-per-sec", "200mb"])
    n = fill_incompressible(p, FULLSYNC_MB)
    r = replica_of(server_factory, p)

    def progress():
        i = info(r, "replication")
        # In progress, and the primary's file list (the total) has arrived.
        if i.get("master_sync_in_progress") != 1 or not i.get("master_sync_total_bytes"):
            return None
        return i["master_sync_total_bytes"], i["master_sync_read_bytes"]

    total, _ = wait_until(progress, 30, what="full resync under way")
    assert total >= FULLSYNC_MB * 1024 * 1024 * 0.9, f"checkpoint is only {total} bytes"
    wait_until(lambda: (progress() or (0, 0))[1] > total * 0.4, 60, what="40% of the copy received")
    r.kill9()  # cut in the middle
    r.start(wait=False)
    r.wait_ready()
    wait_link_up(r, 120)
    # The second attempt took only what the first had not: the primary sent
    # about one copy in all, not one and a half.
    sent = info(p, "stats")["total_net_repl_output_bytes"]
    assert sent < total * 1.25, f"sent {sent} bytes for a {total}-byte copy: the resync started over"
    assert "bytes_resumed" in r.read_log()
    resumed = [line for line in r.read_log().splitlines() if "receiving a checkpoint" in line][-1]
    assert '"bytes_resumed":0' not in resumed, resumed
    p.client().set("after-resync", "1")
    wait_same_data(p, r, timeout=120)
    assert r.client().dbsize() == n + 1


def test_link_cut_in_a_network_namespace(server_factory, netns_pair):
    ns, sh = netns_pair
    # No password between namespaces: protected mode would refuse them.
    p = server_factory(["--bind", "10.213.7.1", "--protected-mode", "no"], start=False)
    p.client = lambda **kw: redis.Redis(host="10.213.7.1", port=p.port, socket_timeout=10, **kw)
    p.start()
    r = server_factory(["--bind", "0.0.0.0", "--protected-mode", "no", "--replicaof", f"10.213.7.1:{p.port}",
                        "--repl-timeout-ms", "2000"],
                       start=False)
    r.client = lambda **kw: redis.Redis(host="10.213.7.2", port=r.port, socket_timeout=10, **kw)
    plain_args = r.args
    r.args = lambda: privileged("ip", "netns", "exec", ns) + as_this_user() + plain_args()
    r.start()
    wait_link_up(r)
    p.client().set("before-cut", "1")
    wait_same_data(p, r)
    # Drop everything between the primary's port and the replica, both ways.
    rules = [["INPUT", "-p", "tcp", "--sport", str(p.port), "-j", "DROP"],
             ["OUTPUT", "-p", "tcp", "--dport", str(p.port), "-j", "DROP"]]
    for rule in rules:
        sh("ip", "netns", "exec", ns, "iptables", "-A", *rule)
    t0 = time.monotonic()
    wait_until(lambda: info(r, "replication")["master_link_status"] == "down", 10, what="link reported down")
    assert time.monotonic() - t0 < 6, "repl-timeout-ms is 2 s: the cut must show within a few seconds"
    for i in range(300):
        p.client().set(f"during-cut-{i}", i)
    assert r.client().get("during-cut-0") is None
    full_before = info(p, "stats")["sync_full"]
    for rule in rules:
        sh("ip", "netns", "exec", ns, "iptables", "-D", *rule)
    wait_link_up(r, 30)
    wait_same_data(p, r)
    assert info(p, "stats")["sync_full"] == full_before, "after a heal the replica catches up from the log"


def test_masterauth_and_compressed_stream(server_factory, tmpdir_path):
    pw = os.path.join(tmpdir_path, "pw")
    with open(pw, "w") as f:
        f.write("s3cret\n")
    p = server_factory(["--requirepass-file", pw], password="s3cret")
    r = replica_of(server_factory, p, ["--masterauth-file", pw])
    wait_link_up(r)
    c = p.client()
    for i in range(200):
        c.set(f"z{i}", "compressible " * 100)
    wait_same_data(p, r)
    # The stream was compressed: far fewer bytes went out than were logged.
    sent = info(p, "stats")["total_net_repl_output_bytes"]
    assert sent < 200 * 1300 / 4, f"{sent} bytes sent for ~260 kB of compressible values"
    # Without the password the replica can't follow, and says why.
    bad = replica_of(server_factory, p)
    wait_until(lambda: "NOAUTH" in info(bad, "replication").get("master_link_last_error", "") or
               "Authentication" in info(bad, "replication").get("master_link_last_error", ""), 10,
               what="replica without masterauth refused")


def test_damaged_stream_drops_the_link_and_applies_nothing_partial(server_factory):
    """A fake primary sends one good record, then a block whose checksum is
    wrong: the replica applies the good one, drops the link with the reason
    logged, and asks again from the record after the good one."""
    import socket as so
    import struct
    import zlib

    def frame(seq, key, value):
        value = b"\x00\x00" + value  # storage encoding: string, no expiry
        payload = struct.pack("<QQ", seq, 0) + bytes([1]) + bytes([1]) + bytes([len(key)]) + key + \
            bytes([len(value)]) + value
        return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload

    def block(t, payload, crc=None):
        return bytes([t]) + struct.pack("<II", len(payload), zlib.crc32(payload) if crc is None else crc) + payload

    lst = so.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    port = lst.getsockname()[1]
    psyncs = []

    def serve():
        for attempt in range(2):
            conn, _ = lst.accept()
            f = conn.makefile("rb")
            while True:
                line = f.readline()
                if not line:
                    return
                if not line.startswith(b"*"):
                    continue
                args = []
                for _ in range(int(line[1:])):
                    n = int(f.readline()[1:])
                    args.append(f.read(n + 2)[:-2])
                cmd = args[0].upper()
                if cmd == b"PING":
                    conn.sendall(b"+PONG\r\n")
                elif cmd == b"REPLCONF" and args[1].lower() == b"levee-id":
                    conn.sendall(b"+fakeprimary\r\n")
                elif cmd == b"REPLCONF" and args[1].lower() == b"levee-history":
                    conn.sendall(b"+" + b"f" * 40 + b":0\r\n")  # a history of its own
                elif cmd == b"REPLCONF":
                    conn.sendall(b"+OK\r\n")
                elif cmd == b"PSYNC":
                    psyncs.append(args)
                    break
            if attempt == 0:
                # Claim the replica's history continues (its replid is ours).
                conn.sendall(b"+CONTINUE " + args[1] + b"\r\n")
                good = frame(1, b"good", b"1")
                conn.sendall(block(1, good))
                bad = frame(2, b"bad", b"2")
                conn.sendall(block(1, bad, crc=12345))
                f.read(1)  # until the replica closes
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    r = server_factory(["--replicaof", f"127.0.0.1:{port}", "--log-format", "text"])
    wait_until(lambda: len(psyncs) >= 2, 20, what="the replica asking again after the damaged block")
    assert psyncs[1][2] == b"2", f"second PSYNC should continue after the good record: {psyncs[1]}"
    assert r.client().get("good") == b"1"
    assert r.client().get("bad") is None
    assert "fails its checksum" in r.read_log()
    lst.close()


def test_a_replica_owed_a_full_copy_offers_no_offset_until_it_has_it(server_factory):
    """Sentinel promotes the replica with the highest slave_repl_offset. A
    replica taking a full copy still holds its old data (another history,
    or a stale one); offering that data's sequence could get it promoted
    over a replica that follows, and the followers would then full-resync
    from it and drop acknowledged writes. Like Redis, it says 1 until the
    copy is in."""
    p = server_factory(["--repl-full-sync-max-bytes-per-sec", "8mb"])
    fill_incompressible(p, 40)
    r = server_factory()
    c = r.client()
    for i in range(500):
        c.set(f"own:{i}", "x")  # a history of its own, longer than 1
    own = c.info("replication")["master_repl_offset"]
    assert own >= 500
    c.replicaof("127.0.0.1", p.port)

    def copying():
        i = info(r, "replication")
        return i if i.get("master_sync_in_progress") == 1 else None

    during = wait_until(copying, 30, interval=0.05, what="the full copy under way")
    assert during["slave_repl_offset"] == 1, during
    assert during["slave_read_repl_offset"] == 1, during
    wait_link_up(r, 60)
    want = info(p, "replication")["master_repl_offset"]
    wait_until(lambda: info(r, "replication")["slave_repl_offset"] == want, 30,
               what="the replica offering the primary's offset once the copy is in")
    assert r.client().get("own:1") is None  # the old history is gone, never merged


def test_a_replica_not_following_its_primary_refuses_sub_replicas(server_factory):
    """As Redis: until its own link is up, a replica's data and ids may yet
    be replaced by a full copy, so it does not feed replicas of its own."""
    p = server_factory()
    a = replica_of(server_factory, p)
    wait_link_up(a)
    p.stop()
    wait_until(lambda: info(a, "replication")["master_link_status"] == "down", 30, what="a's link down")
    with pytest.raises(redis.ResponseError, match="NOMASTERLINK"):
        a.client().execute_command("PSYNC", "?", "-1")
    b = replica_of(server_factory, a)
    assert info(b, "replication")["master_link_status"] == "down"
    p.start()
    wait_link_up(a, 30)
    wait_link_up(b, 30)  # and b follows as soon as a does
    p.client().set("k", "v")
    wait_same_data(p, a, b)
    assert info(b, "replication")["master_replid"] == info(p, "replication")["master_replid"]
