"""Automatic failover with Debian's redis-sentinel (unchanged), HAProxy and
redis-py: a primary and two levee replicas, three Sentinels
(down-after-milliseconds 1000, failover-timeout 5000), sync-class keys
("sync:" prefix, sync-replicas 1) and fencing (min-replicas-to-write 1,
min-replicas-max-lag 2). Figures are printed for docs/benchmarks.md;
bench/failover.py measures them against real Redis."""
import os
import signal
import subprocess
import time

import pytest
import redis
import redis.sentinel

from conftest import privileged, require, wait_until
from failover_cluster import MASTER, Cluster, HAProxy, Load, expected_refusal, follows


def stats(node):
    return node.info("stats")


def wait_follows_sentinels_primary(node, c, timeout=60):
    """Waits until node follows whichever levee the Sentinels call primary
    now (Sentinel sometimes runs a second failover right after the first);
    returns that primary. On timeout says what node, the primary and the
    Sentinels think."""
    try:
        return wait_until(lambda: follows(node, c.primary()) and c.primary(), timeout, interval=0.2,
                          what=f"node on port {node.port} following the Sentinels' primary")
    except AssertionError as e:
        def safe(f):
            try:
                return f()
            except Exception as x:  # noqa: BLE001 - diagnostics only
                return f"<{x}>"
        raise AssertionError(f"{e}\nnode INFO: {safe(node.info)}\nprimary INFO: {safe(lambda: c.primary().info())}\n"
                             f"sentinel master: {safe(lambda: c.sentinels.client().execute_command('SENTINEL', 'master', 'mymaster'))}\n"
                             f"node log tail: {node.read_log()[-3000:]}") from None


def sentinel_transaction(node, *slaveof, client=None):
    """What Sentinel sends to promote (SLAVEOF NO ONE) or re-point a server."""
    pipe = (client or node.client()).pipeline(transaction=True)
    pipe.execute_command("SLAVEOF", *slaveof)
    pipe.execute_command("CONFIG", "REWRITE")
    pipe.execute_command("CLIENT", "KILL", "TYPE", "normal")
    pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    return pipe.execute(raise_on_error=False)


def test_kill9_under_load_promotes_a_replica_and_loses_no_sync_write(tmpdir_path):
    password = "failover-pass"
    c = Cluster("levee", tmpdir_path, password=password)
    hap = HAProxy(tmpdir_path, c.nodes, password=password)
    try:
        old = c.primary()
        assert old is c.nodes[0]
        old_run_id = old.info("server")["run_id"]
        # HAProxy routes to the primary only.
        wait_until(lambda: hap.client().info("server")["run_id"] == old_run_id, 20, what="haproxy on the primary")
        sentinel = redis.sentinel.Sentinel([("127.0.0.1", p) for p in c.sentinels.ports], socket_timeout=2,
                                           password=password)
        via_sentinel = sentinel.master_for(MASTER, socket_timeout=2)
        assert via_sentinel.set("before", "1")
        hap_client = hap.client()
        assert hap_client.set("via-haproxy-before", "1")

        load = Load(c).start()
        load.wait_acks(400)
        killed_at = time.monotonic()
        old.kill9()
        new_port = c.wait_new_primary(old.port, timeout=30)
        load.wait_acks(400, timeout=30)
        gap = load.failover_gap(old.port, new_port, killed_at)
        print(f"\nfailover: last ack on the old primary -> first ack on the new one: {gap:.2f} s")
        assert gap is not None and gap < 15, f"failover took {gap} s (real Redis here: about 4 s)"

        # A Sentinel-aware client finds the new primary by itself.
        wait_until(lambda: via_sentinel.set("after", "2"), 15, what="redis-py Sentinel client writing again")
        assert via_sentinel.info("server")["tcp_port"] == new_port
        # A plain client through HAProxy: its session to the dead primary is
        # gone; reconnecting lands on the new one.
        # (Sentinel sometimes runs a second failover right after the first:
        # follow whichever primary it names now.)
        def haproxy_on_sentinels_primary():
            port = hap.client().info("server")["tcp_port"]
            return port != old.port and port == c.sentinels.master_port()
        wait_until(haproxy_on_sentinels_primary, 20, what="haproxy on the new primary")
        wait_until(lambda: hap_client.set("via-haproxy-after", "1"), 10, what="the old haproxy client reconnecting")

        # The old primary comes back: Sentinel makes it a replica of the new one.
        old.start()
        new = wait_follows_sentinels_primary(old, c)
        load.stop()
        c.wait_converged()
        lost, total = load.missing(new)
        print(f"acknowledged writes: {total}; lost: sync {lost.get('sync', 0)}, async {lost.get('async', 0)}; "
              f"old primary resync: full {stats(old)['sync_replica_full']}, "
              f"partial {stats(old)['sync_replica_partial']}")
        assert lost.get("sync", 0) == 0, f"acknowledged sync-class writes lost: {lost}"
        for k in ("before", "via-haproxy-before", "after", "via-haproxy-after"):
            assert new.client().get(k) is not None, k
    finally:
        hap.stop()
        c.stop()


def test_restarted_old_primary_rejoins_with_a_partial_resync(tmpdir_path):
    """Sentinel's promotion and re-pointing, sent by the test so that only
    levee's part is timed: a primary killed with nothing in flight, then
    restarted and re-pointed, continues its history with PSYNC (no copy)."""
    c = Cluster("levee", tmpdir_path, sentinels=False)
    try:
        old, new, other = c.nodes
        pc = old.client()
        for i in range(300):
            pc.set(f"sync:{i}", i)
            pc.set(f"async:{i}", i)
        wait_until(lambda: all(n.info()["slave_repl_offset"] == old.info()["master_repl_offset"]
                               for n in c.nodes[1:]), 20, what="replicas caught up")
        old.kill9()
        assert sentinel_transaction(new, "NO", "ONE")[0] is True
        assert sentinel_transaction(other, "127.0.0.1", str(new.port))[0] is True
        wait_until(lambda: follows(other, new), 20, what="other replica following the new primary")
        assert new.client().set("sync:after", "1")
        old.start()
        assert old.role() == "master"  # its config file still says so, as with Redis
        assert sentinel_transaction(old, "127.0.0.1", str(new.port))[0] is True
        wait_until(lambda: follows(old, new), 30, what="old primary following the new one")
        s = stats(old)
        assert s["sync_replica_partial"] >= 1 and s["sync_replica_full"] == 0, s
        c.wait_converged(primary=new)
        assert old.client().get("sync:after") == b"1"
    finally:
        c.stop()


def test_old_primary_several_failovers_behind_rejoins_with_a_partial_resync(tmpdir_path):
    """Two failovers after the old primary stopped, its history id is neither
    of the new primary's two newest (PSYNC2's replid/replid2); levee keeps
    the longer history, so its data still counts as a prefix: no copy."""
    c = Cluster("levee", tmpdir_path, sentinels=False)
    try:
        a, b, cc = c.nodes
        for i in range(100):
            a.client().set(f"sync:a{i}", i)
        wait_until(lambda: all(n.info()["slave_repl_offset"] == a.info()["master_repl_offset"] for n in (b, cc)),
                   20, what="replicas caught up")
        a_id = a.info()["master_replid"]
        a.kill9()
        assert sentinel_transaction(b, "NO", "ONE")[0] is True
        assert sentinel_transaction(cc, "127.0.0.1", str(b.port))[0] is True
        wait_until(lambda: follows(cc, b), 20, what="c following b")
        assert b.client().set("sync:b", 1)
        assert sentinel_transaction(cc, "NO", "ONE")[0] is True
        assert sentinel_transaction(b, "127.0.0.1", str(cc.port))[0] is True
        wait_until(lambda: follows(b, cc), 20, what="b following c")
        assert cc.client().set("sync:c", 1)
        i = cc.info()
        assert a_id not in (i["master_replid"], i["master_replid2"]), i
        a.start()
        assert sentinel_transaction(a, "127.0.0.1", str(cc.port))[0] is True
        wait_until(lambda: follows(a, cc), 30, what="old primary following c")
        assert stats(a)["sync_replica_partial"] >= 1 and stats(a)["sync_replica_full"] == 0, stats(a)
        c.wait_converged(primary=cc)
        assert a.client().get("sync:b") == b"1" and a.client().get("sync:c") == b"1"
    finally:
        c.stop()


def rolled_back_replica_setup(c, extra_class, diverge=False):
    """What a Sentinel that missed a promotion did in CI: a (the first
    primary) dies; b is promoted and c follows it; b takes writes of
    extra_class that c acknowledges; b dies; a comes back, still a primary
    by its config and behind c (with diverge, after a write of its own); c
    is pointed at a. Returns (a, b, c, the keys written on b, c's count of
    full resyncs before it was pointed at a)."""
    a, b, cc = c.nodes
    for i in range(50):
        a.client().set(f"async:a{i}", i)
    wait_until(lambda: all(n.info()["slave_repl_offset"] == a.info()["master_repl_offset"] for n in (b, cc)),
               20, what="replicas caught up")
    a.kill9()
    assert sentinel_transaction(b, "NO", "ONE")[0] is True
    assert sentinel_transaction(cc, "127.0.0.1", str(b.port))[0] is True
    wait_until(lambda: follows(cc, b), 20, what="c following b")
    keys = [f"{extra_class}:b{i}" for i in range(200)]
    wb = b.client()
    for k in keys:
        assert wb.set(k, 1)  # sync-class: answered once c has it
    wait_until(lambda: cc.info()["slave_repl_offset"] == b.info()["master_repl_offset"], 20, what="c caught up")
    b.kill9()
    a.start()
    assert a.role() == "master"
    if diverge:
        a.client().config_set("min-replicas-to-write", "0")
        assert a.client().set("async:a-alone", 1)
    full_before = stats(cc)["sync_replica_full"]
    assert sentinel_transaction(cc, "127.0.0.1", str(a.port))[0] is True
    return a, b, cc, keys, full_before


def test_primary_behind_a_replica_takes_its_records_before_serving_it(tmpdir_path):
    """The CI case: a restarted old primary, behind, is given a replica that
    holds acknowledged sync-class writes it lacks. It takes them (backfill)
    instead of the replica dropping them with a full copy."""
    c = Cluster("levee", tmpdir_path, sentinels=False)
    try:
        a, b, cc, keys, full_before = rolled_back_replica_setup(c, "sync")
        wait_until(lambda: follows(cc, a), 30, what="c following a")
        assert all(v == b"1" for v in a.client().mget(keys))
        assert a.info("stats")["sync_backfilled_records"] == 200
        assert stats(cc)["sync_replica_full"] == full_before and stats(cc)["sync_replica_rollbacks_refused"] == 0
        assert "took records from a replica that was ahead" in a.read_log()
        # a took c's history: b, restarted and pointed at a, continues too.
        b.start()
        assert sentinel_transaction(b, "127.0.0.1", str(a.port))[0] is True
        c.wait_converged(primary=a)
        assert stats(b)["sync_replica_full"] == 0, stats(b)
        assert a.client().set("sync:after", 1)
        wait_until(lambda: all(n.client().get("sync:after") == b"1" for n in c.nodes), 20, what="replicated")
    finally:
        c.stop()


def test_replica_promoted_from_a_stale_offset_takes_the_records_its_sibling_has(tmpdir_path):
    """Sentinel promotes by the offsets it last read; if it promotes the
    replica that is behind, the other one (which acknowledged the newest
    sync-class writes) sends them to the new primary before following it."""
    c = Cluster("levee", tmpdir_path, sentinels=False)
    try:
        a, b, cc = c.nodes
        # A key that expires meanwhile: the new primary must not log its
        # delete before it has taken c's records.
        assert a.client().set("async:ttl", 1, px=300)
        wait_until(lambda: all(n.client().exists("async:ttl") for n in (b, cc)), 10, what="ttl key replicated")
        b.proc.send_signal(signal.SIGSTOP)  # b falls behind; c acknowledges alone
        try:
            keys = [f"sync:k{i}" for i in range(100)]
            for k in keys:
                assert a.client().set(k, 1)
            a.kill9()
        finally:
            b.proc.send_signal(signal.SIGCONT)
        assert b.client().get(keys[-1]) is None
        full_before = stats(cc)["sync_replica_full"]
        assert sentinel_transaction(b, "NO", "ONE")[0] is True
        wait_until(lambda: b.client().get("async:ttl") is None, 10, what="the ttl key expired on b")
        # Expired, but b refuses writes (no replica yet): its expirer logs
        # no delete meanwhile (ten expiry cycles watched).
        watch_until = time.monotonic() + 1.0
        while time.monotonic() < watch_until:
            assert b.info("stats")["expired_keys"] == 0, "b logged an expiry while it refused writes"
            time.sleep(0.05)  # poll interval within the watched second
        promoted_at = b.info()["master_repl_offset"]
        assert sentinel_transaction(cc, "127.0.0.1", str(b.port))[0] is True
        wait_until(lambda: follows(cc, b), 30, what="c following b")
        assert all(v == b"1" for v in b.client().mget(keys))
        assert b.info("stats")["sync_backfilled_records"] >= 1
        assert stats(cc)["sync_replica_full"] == full_before
        assert promoted_at < b.info()["master_repl_offset"]
        wait_until(lambda: b.info("stats")["expired_keys"] == 1, 10, what="b expiring once it has a replica")
        a.start()
        assert sentinel_transaction(a, "127.0.0.1", str(b.port))[0] is True
        c.wait_converged(primary=b)
    finally:
        c.stop()


def test_replica_refuses_a_full_resync_that_would_drop_acknowledged_sync_writes(tmpdir_path):
    """When the primary has written past where their data parts, it can't
    take the replica's records: the replica keeps them and refuses."""
    c = Cluster("levee", tmpdir_path, sentinels=False)
    try:
        a, b, cc, keys, full_before = rolled_back_replica_setup(c, "sync", diverge=True)
        wait_until(lambda: cc.info("stats")["sync_replica_rollbacks_refused"] >= 1, 20, what="the refusal")
        i = cc.info()
        assert i["master_port"] == a.port and i["master_link_status"] == "down", i
        assert "refusing a full resync" in i["master_link_last_error"], i
        assert "replica-refuse-rollback" in i["master_link_last_error"]
        assert i["master_rollback_refused_records"] == 200, i
        assert i["slave_repl_offset"] > a.info()["master_repl_offset"]  # offered to Sentinel as it is
        assert "refusing a full resync" in cc.read_log()
        assert all(v == b"1" for v in cc.client().mget(keys))  # still here
        assert a.info("stats")["sync_backfilled_records"] == 0
        # What Sentinel did next in CI: promote the replica that holds them.
        assert sentinel_transaction(cc, "NO", "ONE")[0] is True
        assert sentinel_transaction(a, "127.0.0.1", str(cc.port))[0] is True
        wait_until(lambda: follows(a, cc), 30, what="a following c")
        b.start()
        assert sentinel_transaction(b, "127.0.0.1", str(cc.port))[0] is True
        c.wait_converged(primary=cc)
        for n in c.nodes:
            assert all(v == b"1" for v in n.client().mget(keys)), n.port
        assert a.client().get("async:a-alone") is None  # its own unreplicated write is discarded
    finally:
        c.stop()


def test_replica_takes_the_copy_when_allowed_or_when_only_async_writes_go(tmpdir_path):
    """Async-class writes are not promised to survive: a full resync that
    drops only them goes ahead (as Redis). replica-refuse-rollback no lets
    an operator take the copy even over sync-class writes."""
    c = Cluster("levee", tmpdir_path, sentinels=False)
    try:
        a, b, cc, keys, full_before = rolled_back_replica_setup(c, "async", diverge=True)
        wait_until(lambda: follows(cc, a), 30, what="c following a after a full copy")
        assert stats(cc)["sync_replica_full"] == full_before + 1 and stats(cc)["sync_replica_rollbacks_refused"] == 0
        assert cc.client().get(keys[0]) is None
    finally:
        c.stop()
    c = Cluster("levee", os.path.join(tmpdir_path, "override"), sentinels=False)
    try:
        for n in c.nodes:
            n.client().config_set("replica-refuse-rollback", "no")
        a, b, cc, keys, full_before = rolled_back_replica_setup(c, "sync", diverge=True)
        wait_until(lambda: follows(cc, a), 30, what="c following a after a full copy")
        assert stats(cc)["sync_replica_rollbacks_refused"] == 0
        assert cc.client().get(keys[0]) is None
        assert "discards records received from an earlier primary" in cc.read_log()
    finally:
        c.stop()


def test_sentinel_transaction_commands_and_replies(tmpdir_path):
    """What Sentinel sends on promotion, byte for byte as it sends it."""
    c = Cluster("levee", tmpdir_path, sentinels=False)
    try:
        primary, replica, other = c.nodes
        r = replica.client(single_connection_client=True)
        r.client_setname("sentinel-1234abcd-cmd")
        app = replica.client(single_connection_client=True)
        app.ping()
        sub = replica.client().pubsub()
        sub.subscribe("news")
        wait_until(lambda: any("sub=1" in line or "psub=" in line for line in
                               r.execute_command("CLIENT", "LIST").decode().splitlines()), what="the subscriber")
        out = sentinel_transaction(replica, "NO", "ONE", client=r)
        assert out[0] is True and out[1] in (True, b"OK"), out
        assert out[2] >= 1 and out[3] == 1, out  # at least our app client; exactly our one subscriber
        with pytest.raises(redis.ConnectionError):
            app.ping()
        assert replica.role() == "master"
        # CONFIG REWRITE made the promotion durable: no replicaof in the file.
        with open(replica.config_path) as f:
            assert 'replicaof: ""' in f.read()
        # Re-pointing: the same transaction with SLAVEOF host port.
        o = other.client()
        assert sentinel_transaction(other, "127.0.0.1", str(replica.port), client=o)[0] is True
        wait_until(lambda: follows(other, replica), 20, what="re-pointed replica following")
        with open(other.config_path) as f:
            assert f'replicaof: "127.0.0.1:{replica.port}"' in f.read()
        assert other.info("stats")["sync_replica_partial"] >= 1
        # SCRIPT KILL: Redis' answer when nothing runs.
        with pytest.raises(redis.ResponseError, match="NOTBUSY"):
            o.execute_command("SCRIPT", "KILL")
        # The INFO fields Sentinel reads, from INFO with no argument, as it asks.
        i = other.client().info()
        # (master_link_down_since_seconds is there while the link is down, as
        # in Redis: see the unreachable-host test.)
        for field in ("run_id", "role", "master_host", "master_port", "master_link_status",
                      "slave_priority", "slave_repl_offset", "replica_announced"):
            assert field in i, field
        assert "slave0" in replica.info("replication")
    finally:
        c.stop()


def test_config_rewrite_without_a_file_fails_at_exec_not_at_queue_time(server):
    r = server.client(single_connection_client=True)
    others = [server.client(single_connection_client=True) for _ in range(3)]
    for o in others:
        o.ping()
    sub = server.client().pubsub()
    sub.subscribe("news")
    wait_until(lambda: len(r.client_list()) == 5, what="exactly this test's five clients connected")
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("SLAVEOF", "NO", "ONE")
    pipe.execute_command("CONFIG", "REWRITE")
    pipe.execute_command("CLIENT", "KILL", "TYPE", "normal")
    out = pipe.execute(raise_on_error=False)
    assert out[0] is True
    assert isinstance(out[1], redis.ResponseError) and "without a config file" in str(out[1])
    # As redis-server 7.0 answers the same transaction: the three other
    # normal clients and the caller itself (closed after EXEC's reply), not
    # the subscriber.
    assert out[2] == 4, out
    for o in others + [r]:
        with pytest.raises(redis.ConnectionError):
            o.ping()
    assert server.client().execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 1


def test_config_rewrite_keeps_comments_and_refuses_an_unwritable_file(tmpdir_path, server_factory):
    d = os.path.join(tmpdir_path, "conf")
    os.makedirs(d)
    path = os.path.join(d, "levee.yaml")
    with open(path, "w") as f:
        f.write("# my settings\nmaxclients: 100  # keep this comment\nlog-level: info\n")
    s = server_factory(["--config", path])
    r = s.client()
    r.config_set("maxclients", "250")
    r.config_set("slowlog-max-len", "64")
    assert r.execute_command("CONFIG", "REWRITE")
    text = open(path).read()
    assert text.startswith("# my settings\nmaxclients: 250  # keep this comment\nlog-level: info\n"), text
    assert "slowlog-max-len: 64" in text
    # The rewritten file starts a server with the same settings.
    s.stop()
    s.start()
    assert s.client().config_get("maxclients") == {"maxclients": "250"}
    # An unwritable location: an error naming the path; running config unchanged.
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", d], check=False, capture_output=True)
        immutable = subprocess.run(["lsattr", "-d", d], capture_output=True, text=True).stdout.split()[:1]
        require(immutable and "i" in immutable[0], "cannot make the directory unwritable as root here (no chattr +i)")
    else:
        os.chmod(d, 0o555)
    try:
        r = s.client()
        r.config_set("maxclients", "300")
        with pytest.raises(redis.ResponseError, match=path):
            r.execute_command("CONFIG", "REWRITE")
        assert r.config_get("maxclients") == {"maxclients": "300"}
        assert "maxclients: 250" in open(path).read()
    finally:
        subprocess.run(["chattr", "-i", d], check=False, capture_output=True)
        os.chmod(d, 0o755)


def test_slaveof_an_unreachable_host_says_ok_and_retries(server):
    r = server.client()
    assert r.execute_command("SLAVEOF", "127.0.0.1", "1") is True
    wait_until(lambda: "127.0.0.1:1" in server.read_log() and "link to the primary is down" in server.read_log(),
               10, what="a logged reason")
    i = r.info("replication")
    assert i["role"] == "slave" and i["master_link_status"] == "down"
    assert i["master_link_down_since_seconds"] >= 0
    # Retried with backoff: more than one attempt logged.
    wait_until(lambda: server.read_log().count("link to the primary is down") >= 3, 10, what="retries")
    assert r.execute_command("SLAVEOF", "NO", "ONE") is True


def test_replica_priority_zero_is_never_promoted_and_announce_address_reaches_sentinel(tmpdir_path):
    # Replica 1 announces an address of its own choosing and may never be
    # promoted; so Sentinel must pick replica 2.
    c = Cluster("levee", tmpdir_path, sentinels=False)
    try:
        primary, r1, r2 = c.nodes
        # What the primary (and so Sentinel) is told is what it shows.
        r1.client().config_set("replica-announce-ip", "10.1.2.3")
        r1.client().config_set("replica-announce-port", "7000")
        assert r1.client().execute_command("CLIENT", "KILL", "TYPE", "master") == 1
        wait_until(lambda: any(v.get("ip") == "10.1.2.3" and v.get("port") == 7000
                               for k, v in primary.info().items() if k.startswith("slave")), 20,
                   what="announced address in the primary's INFO")
        announce_port = r1.port  # now the real address, so Sentinel can reach it
        r1.client().config_set("replica-priority", "0")
        r1.client().config_set("replica-announce-ip", "127.0.0.1")
        r1.client().config_set("replica-announce-port", str(announce_port))
        # CLIENT KILL TYPE master: the replica reconnects and announces anew.
        assert r1.client().execute_command("CLIENT", "KILL", "TYPE", "master") == 1
        wait_until(lambda: r1.info()["master_link_status"] == "up", 20, what="link back up")
        assert r1.info()["slave_priority"] == 0
        from failover_cluster import Sentinels
        c.sentinels = Sentinels(tmpdir_path, primary.port)
        wait_until(lambda: len(c.sentinels.replicas_known()) == 2, 30, what="sentinels know both replicas")
        known = {int(dict(zip(x[::2], x[1::2]))["port"]) for x in c.sentinels.replicas_known()}
        assert known == {r1.port, r2.port}
        primary.kill9()
        assert c.wait_new_primary(primary.port) == r2.port
        wait_until(lambda: follows(r1, r2), 30, what="priority-0 replica following the new primary")
    finally:
        c.stop()


def test_pubsub_reaches_subscribers_on_replicas_and_client_kill_types(tmpdir_path):
    c = Cluster("levee", tmpdir_path, sentinels=False)
    try:
        primary, r1, _ = c.nodes
        sub = r1.client().pubsub()
        sub.subscribe("news")
        psub = primary.client().pubsub()
        psub.psubscribe("n*")
        # The subscriptions are in place once their confirmations arrive.
        assert sub.get_message(timeout=5)["type"] == "subscribe"
        assert psub.get_message(timeout=5)["type"] == "psubscribe"
        primary.client().set("k", "v")
        assert primary.client().publish("news", "hello") == 1  # the local pattern subscriber

        def got(p, want_type):
            m = p.get_message(timeout=0.2)
            return m if m and m["type"] == want_type else None
        m = wait_until(lambda: got(sub, "message"), 10, what="message delivered on the replica")
        assert m["channel"] == b"news" and m["data"] == b"hello"
        # Delivered after the write before it: the replica already has k.
        assert r1.client().get("k") == b"v"
        m = wait_until(lambda: got(psub, "pmessage"), 10, what="pattern message on the primary")
        assert m["pattern"] == b"n*"
        # PUBLISH on a replica is delivered locally only.
        assert r1.client().publish("news", "local") == 1
        # CLIENT KILL TYPE pubsub closes subscribers only; normal leaves them.
        killer = r1.client()
        killer.execute_command("CLIENT", "KILL", "TYPE", "normal")  # the caller is skipped (SKIPME yes)
        assert killer.publish("news", "still-here") == 1  # the subscriber survived
        assert killer.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 1
        with pytest.raises(redis.ConnectionError):
            for _ in range(50):
                sub.get_message(timeout=0.1)
        # CLIENT KILL TYPE replica: the replicas reconnect with PSYNC.
        before = primary.info("stats")["sync_partial_ok"]
        assert primary.client().execute_command("CLIENT", "KILL", "TYPE", "replica") == 2
        wait_until(lambda: primary.info("stats")["sync_partial_ok"] >= before + 2, 20, what="partial resyncs")
    finally:
        c.stop()


def test_pubsub_resp2_subscribed_mode_and_resp3_push(server):
    import socket

    def conn():
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        return s

    def read_until(s, needle):
        buf = b""
        deadline = time.monotonic() + 5
        while needle not in buf and time.monotonic() < deadline:
            buf += s.recv(65536)
        return buf

    s = conn()
    s.sendall(b"SUBSCRIBE a b\r\n")
    assert read_until(s, b"$1\r\nb\r\n:2\r\n") == b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n" \
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
    s.sendall(b"GET x\r\nPING\r\n")
    out = read_until(s, b"$4\r\npong\r\n$0\r\n\r\n")
    assert out.startswith(b"-ERR Can't execute 'get'"), out
    assert out.endswith(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")
    server.client().publish("a", "m1")
    assert read_until(s, b"m1\r\n") == b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nm1\r\n"
    s.sendall(b"UNSUBSCRIBE\r\n")
    out = read_until(s, b":0\r\n")
    assert out.count(b"unsubscribe") == 2 and out.endswith(b":0\r\n")
    s.sendall(b"GET x\r\n")
    assert read_until(s, b"\r\n") == b"$-1\r\n"  # back to normal mode
    s.close()

    s3 = conn()
    s3.sendall(b"HELLO 3\r\n")
    read_until(s3, b"modules")
    s3.sendall(b"SUBSCRIBE c\r\n")
    assert read_until(s3, b":1\r\n") == b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
    s3.sendall(b"GET x\r\n")  # RESP3 clients may run any command while subscribed
    assert read_until(s3, b"_\r\n") == b"_\r\n"
    server.client().publish("c", "m2")
    assert read_until(s3, b"m2\r\n") == b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nm2\r\n"
    s3.close()
    r = server.client()
    assert r.pubsub_numsub("c") in ([(b"c", 0)], [(b"c", 1)])  # the close may still be in flight
    wait_until(lambda: r.pubsub_numsub("c") == [(b"c", 0)], 5, what="closed subscriber forgotten")


def test_partitioned_primary_is_fenced_then_demoted_after_heal(tmpdir_path, netns_pair):
    """The primary runs here; its replicas and the three Sentinels run in a
    network namespace. A firewall rule there cuts every connection to the
    primary's port: the primary is alone with the clients on its side."""
    ns, sh = netns_pair
    c = Cluster("levee", tmpdir_path, split=(ns, "10.213.7.1", "10.213.7.2"))
    try:
        old = c.nodes[0]
        w = old.client(socket_timeout=10)
        acked = []
        for i in range(200):
            for cls in ("sync", "async"):
                assert w.set(f"{cls}:pre{i}", i)
                acked.append(f"{cls}:pre{i}")
        rules = [["INPUT", "-p", "tcp", "--sport", str(old.port), "-j", "DROP"],
                 ["OUTPUT", "-p", "tcp", "--dport", str(old.port), "-j", "DROP"]]
        for rule in rules:
            sh("ip", "netns", "exec", ns, "iptables", "-A", *rule)
        cut_at = time.monotonic()
        try:
            # Keep writing on the primary's side until fencing refuses.
            fenced_after = None
            acked_async_after_cut = 0
            i = 0
            while time.monotonic() - cut_at < 20:
                i += 1
                try:
                    if w.set(f"async:cut{i}", i):
                        acked.append(f"async:cut{i}")
                        acked_async_after_cut += 1
                    if w.set(f"sync:cut{i}", i):
                        acked.append(f"sync:cut{i}")
                except redis.ResponseError as e:
                    if "NOREPLICAS" in str(e):
                        fenced_after = time.monotonic() - cut_at
                        break
                    assert "may or may not" in str(e), e  # a sync-class write timing out
            print(f"\npartitioned primary fenced after {fenced_after:.2f} s "
                  f"(min-replicas-max-lag 2 s); async writes it acknowledged meanwhile: {acked_async_after_cut}")
            assert fenced_after is not None and fenced_after < 5
            with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
                w.set("async:fenced", 1)
            # The majority side promotes one of the replicas.
            new = c.by_port(c.wait_new_primary(old.port, timeout=30))
            assert new.client().set("sync:majority", 1)
            acked.append("sync:majority")
        finally:
            for rule in rules:
                sh("ip", "netns", "exec", ns, "iptables", "-D", *rule)
        # Healed: Sentinel demotes the old primary, which resyncs (its
        # unreplicated writes are discarded by a full resync, never merged).
        new = wait_follows_sentinels_primary(old, c)
        c.wait_converged()
        values = new.client().mget(acked)
        lost = [k for k, v in zip(acked, values) if v is None]
        lost_sync = [k for k in lost if k.startswith("sync:")]
        print(f"acknowledged writes lost to the partition: sync {len(lost_sync)}, async {len(lost) - len(lost_sync)}")
        assert not lost_sync, lost_sync[:10]
        assert all(k.startswith("async:cut") for k in lost), lost[:10]
    finally:
        c.stop()


def test_soak_consecutive_failovers_under_load(tmpdir_path):
    """TEST_FAILOVERS (default 20) kill -9s of whichever levee is primary,
    each restarted at once (Sentinel demotes it), under a write load."""
    rounds = int(os.environ.get("TEST_FAILOVERS", "20"))
    c = Cluster("levee", tmpdir_path)
    load = Load(c).start()
    started = time.monotonic()
    gaps = []
    try:
        for _ in range(rounds):
            gaps.append(c.failover_round(load)[1])
        load.stop()
        c.wait_converged(timeout=120)
        lost, total = load.missing(c.primary())
        took = time.monotonic() - started
        known = [g for g in gaps if g is not None]
        print(f"\n{rounds} failovers in {took:.0f} s; failover gap median {sorted(known)[len(known) // 2]:.2f} s, "
              f"max {max(known):.2f} s; acknowledged writes {total}, lost sync {lost.get('sync', 0)}, "
              f"async {lost.get('async', 0)}; full resyncs "
              f"{sum(n.info('stats')['sync_replica_full'] for n in c.nodes)}")
        if lost.get("sync", 0):
            raise AssertionError(f"acknowledged sync-class writes lost: {lost}\n"
                                 f"{load.lost_summary(c.primary())}\n{c.story()}")
        assert took < 60 * rounds, "each failover round is bounded"
    finally:
        load.stop()
        c.stop()


@pytest.mark.parametrize("wire, expected", [
    ("READONLY You can't write against a read only replica.", True),
    ("NOREPLICAS Not enough good replicas to write.", True),
    ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", True),
    ("BUSY a full resync is replacing the database; try again when it is done", True),
    ("LOADING levee is loading the dataset in memory", True),
    ("ERR server is shutting down", True),
    ("ERR sync replication timeout: fewer than 1 replicas acknowledged the write within sync-timeout-ms", True),
    ("ERR unknown command 'SET'", False),
    ("WRONGTYPE Operation against a key holding the wrong kind of value", False),
])
def test_failover_load_tells_refusals_from_defects_as_redis_py_raises_them(wire, expected):
    """The load's classification sees errors the way redis-py hands them
    over: it strips the codes it knows and raises its own classes."""
    from redis.connection import BaseParser  # redis-py 4.3 (Debian 12)
    e = BaseParser().parse_error(wire)
    assert expected_refusal(e) is expected, (wire, type(e).__name__, str(e))
