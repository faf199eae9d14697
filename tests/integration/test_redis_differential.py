"""Redis behaviour checked against Redis: the same command sequences go to
levee and to Debian's redis-server, and the replies are compared.

Where levee differs on purpose, DELIBERATE says how and why; everything
else must match reply for reply (errors by their code, the first word:
levee's messages say more, see DELIBERATE)."""
import random
import shutil
import subprocess

import pytest
import redis

from conftest import free_port, require, terminate, wait_until

# The one list of deliberate differences, with the reason for each.
DELIBERATE = {
    "error text": "levee's error messages name the problem and what to do (README's standard); the error "
                  "code (ERR, WRONGTYPE, ...) is the same, so only codes are compared",
    "CONFIG RESETSTAT": "levee also resets its own counters (INFO levee); the reply is the same",
    "COMMAND LIST": "levee implements the string, key, transaction, pub/sub and server commands; the "
                    "list is compared for those, not for Redis' other data types (issue: data types)",
    "TIME, CLIENT INFO": "values differ by nature (clock, ids, addresses); the shape is compared",
    "CLIENT SETINFO": "Redis 7.2's; Debian 12's redis-server is 7.0 and lacks it, so levee's replies are "
                      "checked against 7.2's documentation instead",
    "SELECT n > 0": "levee has one database (0); SELECT 0 is accepted, any other is an error that says so",
    "DEBUG DIGEST": "a digest of levee's own (the same on a primary and its replicas), not Redis' bytes",
    "PSYNC, SYNC, REPLCONF": "levee's replication stream is its own (docs/formats/replication.md); "
                             "REPLICAOF/SLAVEOF NO ONE and ROLE are compared",
    "HELLO, ROLE, SLOWLOG GET": "server-specific fields (version, ids, offsets, timings); the shape is compared",
}


@pytest.fixture
def pair(server, tmpdir_path):
    require(shutil.which("redis-server") is not None, "redis-server (Debian's) is not installed")
    proc, ref = start_redis(tmpdir_path)
    try:
        yield server.client(), ref
    finally:
        terminate(proc)


def reply(client, *cmd):
    try:
        return client.execute_command(*cmd)
    except redis.ResponseError as e:
        return ("error", str(e).split(" ", 1)[0])


def same(levee, ref, *cmd, approx=None):
    a, b = reply(levee, *cmd), reply(ref, *cmd)
    if approx is not None:
        assert approx(a, b), (cmd, a, b)
    else:
        assert a == b, f"{cmd}: levee {a!r}, redis-server {b!r}"
    return a


def ttl_close(a, b):
    return isinstance(a, int) and isinstance(b, int) and abs(a - b) <= 1


def test_scripted_commands_answer_as_redis_does(pair):
    lv, rs = pair
    script = [
        ("SET", "s", "hello world"), ("SUBSTR", "s", "0", "4"), ("SUBSTR", "s", "-5", "-1"), ("SUBSTR", "nokey", "0", "3"),
        ("PSETEX", "p", "100000", "v"), ("GET", "p"), ("PSETEX", "p", "0", "v"), ("PSETEX", "p", "-5", "v"),
        ("PSETEX", "p", "abc", "v"),
        ("SET", "u1", "1"), ("SET", "u2", "2"), ("UNLINK", "u1", "u2", "u3"), ("EXISTS", "u1", "u2"),
        ("SET", "e", "1"), ("EXPIREAT", "e", "4102444800"), ("EXPIREAT", "e", "100"), ("EXISTS", "e"),
        ("EXPIREAT", "missing", "4102444800"), ("EXPIREAT", "e", "notanumber"),
        ("ECHO", "hi there"), ("ECHO", ""), ("UNWATCH",),
        ("WATCH", "w"), ("UNWATCH",), ("MULTI",), ("SET", "w", "1"), ("EXEC",),
        ("SET", "a", "10"), ("INCR", "a"), ("INCRBY", "a", "5"), ("DECR", "a"), ("DECRBY", "a", "3"),
        ("INCRBYFLOAT", "a", "1.5"), ("APPEND", "a", "x"), ("INCR", "a"), ("STRLEN", "a"), ("GETRANGE", "a", "1", "-1"),
        ("SETRANGE", "sr", "5", "abc"), ("GET", "sr"), ("SETNX", "sr", "z"), ("MSETNX", "m1", "1", "sr", "2"),
        ("MSET", "m1", "1", "m2", "2"), ("MGET", "m1", "m2", "m3"), ("GETDEL", "m1"), ("GETDEL", "m1"),
        ("TYPE", "m2"), ("TYPE", "none"), ("PERSIST", "m2"), ("TTL", "m2"), ("PTTL", "none"),
        ("SET", "k", "v", "NX"), ("SET", "k", "w", "XX", "GET"), ("SET", "k", "x", "NX", "XX"),
        ("GETEX", "k", "PERSIST"), ("DEL", "k", "k"), ("RENAME", "none", "x"), ("EXISTS", "none"),
        ("DBSIZE",), ("PUBSUB", "CHANNELS"), ("PUBSUB", "NUMPAT"), ("PUBSUB", "NUMSUB", "c1"),
        ("CONFIG", "RESETSTAT"),
        ("NOSUCHCOMMAND",), ("GET",), ("SET", "onlykey"),
    ]
    for cmd in script:
        same(lv, rs, *cmd)
    same(lv, rs, "SET", "t", "v", "EX", "100")
    same(lv, rs, "TTL", "t", approx=ttl_close)
    # TIME: two integers as strings, seconds close to redis-server's.
    a, b = reply(lv, "TIME"), reply(rs, "TIME")
    assert len(a) == len(b) == 2 and abs(int(a[0]) - int(b[0])) <= 2 and 0 <= int(a[1]) < 1_000_000
    # CLIENT INFO: one line of the same fields.
    fields = lambda line: [kv.split("=")[0] for kv in line.decode().split()]  # noqa: E731
    assert {"id", "addr", "name", "db", "cmd"} <= set(fields(reply(lv, "CLIENT", "INFO")))
    # CLIENT SETINFO is Redis 7.2's (Debian 12 has 7.0): checked against 7.2's documented replies.
    assert reply(lv, "CLIENT", "SETINFO", "LIB-NAME", "difftest") == b"OK"
    assert reply(lv, "CLIENT", "SETINFO", "LIB-VER", "1.0") == b"OK"
    assert b"lib-name=difftest" in reply(lv, "CLIENT", "INFO") and b"lib-ver=1.0" in reply(lv, "CLIENT", "INFO")
    assert reply(lv, "CLIENT", "SETINFO", "LIB-NAME", "bad name")[0] == "error"
    assert reply(lv, "CLIENT", "SETINFO", "NOPE", "x")[0] == "error"


def test_scan_type_and_punsubscribe_answer_as_redis_does(pair):
    lv, rs = pair
    for c in (lv, rs):
        c.flushall()
        c.mset({f"s{i}": "x" for i in range(50)})
    for typ in ("string", "hash", "none"):
        got = []
        for c in (lv, rs):
            keys, cursor = set(), 0
            while True:
                cursor, batch = c.scan(cursor, match="s*", count=7, _type=typ)
                keys.update(batch)
                if cursor == 0:
                    break
            got.append(keys)
        assert got[0] == got[1], typ
    for c in (lv, rs):
        p, got = subscription_replies(c, "psubscribe", "punsubscribe", ("news.*", "sport.*"))
        assert got == [("psubscribe", b"news.*", 1), ("psubscribe", b"sport.*", 2), ("punsubscribe", b"sport.*", 1)]
        assert c.execute_command("PUBSUB", "NUMPAT") == 1
        p.close()


def subscription_replies(client, sub, unsub, names):
    """Subscribes to names, unsubscribes from the last; returns the pubsub
    and the three replies as (type, channel, count)."""
    p = client.pubsub()
    getattr(p, sub)(*names)
    getattr(p, unsub)(names[-1])
    msgs = []
    wait_until(lambda: (m := p.get_message(timeout=0.1)) and msgs.append(m) or len(msgs) >= 3, 10,
               what="three subscription replies")
    return p, [(m["type"], m["channel"], m["data"]) for m in msgs]


def raw(client, *cmd):
    """The reply as sent, without redis-py's parsing for the command."""
    conn = client.connection_pool.get_connection(cmd[0])
    try:
        conn.send_command(*cmd)
        return conn.read_response()
    finally:
        client.connection_pool.release(conn)


def test_command_list_covers_what_levee_claims(pair):
    lv, rs = pair
    ours = {c.decode().lower() for c in raw(lv, "COMMAND", "LIST")}
    theirs = {c.decode().lower() for c in raw(rs, "COMMAND", "LIST")}
    assert ours, "COMMAND LIST is empty"
    # Every command levee lists is a Redis command, or one of levee's own
    # (the BACKUP family; PKSCANRANGE/PKRSCANRANGE, Kvrocks' ordered scans).
    own = {"pkscanrange", "pkrscanrange"}
    assert {c for c in ours - theirs if not c.startswith("backup")} - own == set()
    for name in ("psetex", "substr", "unlink", "expireat", "unwatch", "echo", "time", "punsubscribe", "pubsub",
                 "scan", "shutdown", "client", "config"):
        assert name in ours


def test_randomized_string_commands_match_redis(pair):
    """Random sequences over a few keys: every reply the same."""
    lv, rs = pair
    for c in (lv, rs):
        c.flushall()
    rng = random.Random(2026)
    keys = [f"r{i}" for i in range(6)]
    vals = ["", "0", "7", "-3", "abc", "3.5", "99999999999999999999", "x" * 40]
    ops = [
        lambda: ("SET", rng.choice(keys), rng.choice(vals)),
        lambda: ("GET", rng.choice(keys)),
        lambda: ("APPEND", rng.choice(keys), rng.choice(vals)),
        lambda: ("INCR", rng.choice(keys)),
        lambda: ("INCRBY", rng.choice(keys), str(rng.randint(-100, 100))),
        lambda: ("DECR", rng.choice(keys)),
        lambda: ("STRLEN", rng.choice(keys)),
        lambda: ("GETRANGE", rng.choice(keys), str(rng.randint(-5, 5)), str(rng.randint(-5, 50))),
        lambda: ("SETRANGE", rng.choice(keys), str(rng.randint(0, 20)), rng.choice(vals)),
        lambda: ("DEL", rng.choice(keys), rng.choice(keys)),
        lambda: ("EXISTS", rng.choice(keys), rng.choice(keys)),
        lambda: ("MSETNX", rng.choice(keys), "1", rng.choice(keys), "2"),
        lambda: ("GETDEL", rng.choice(keys)),
        lambda: ("SETNX", rng.choice(keys), rng.choice(vals)),
        lambda: ("MGET",) + tuple(rng.sample(keys, 3)),
        lambda: ("TYPE", rng.choice(keys)),
        lambda: ("EXPIRE", rng.choice(keys), "1000"),
        lambda: ("PERSIST", rng.choice(keys)),
        lambda: ("RENAME", rng.choice(keys), rng.choice(keys)),
        lambda: ("SET", rng.choice(keys), rng.choice(vals), "GET"),
    ]
    for _ in range(3000):
        same(lv, rs, *rng.choice(ops)())
    same(lv, rs, "DBSIZE")


def start_redis(workdir):
    """Debian's redis-server with no persistence; SHUTDOWN SAVE still writes
    dump.rdb, so it runs in the test's own directory."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--bind", "127.0.0.1", "--dir", workdir], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    ref = redis.Redis(port=port, socket_timeout=10)
    wait_until(lambda: ref.ping(), 10, what="redis-server")
    return proc, ref


def test_shutdown_variants_answer_as_redis_does(pair, server_factory, tmpdir_path):
    """SHUTDOWN's refusals match; SHUTDOWN NOSAVE, SAVE, NOW and FORCE
    each stop both servers (the client sees the connection close) with
    exit status 0."""
    lv, rs = pair
    for cmd in (("SHUTDOWN", "ABORT"), ("SHUTDOWN", "BOGUS"), ("SHUTDOWN", "NOSAVE", "SAVE"),
                ("SHUTDOWN", "ABORT", "NOW")):
        same(lv, rs, *cmd)
    assert lv.ping() and rs.ping()
    for variant in (("NOSAVE",), ("SAVE",), ("NOW",), ("FORCE",), ("NOSAVE", "NOW", "FORCE")):
        s = server_factory()
        proc, ref = start_redis(tmpdir_path)
        try:
            for client, p in ((s.client(), s.proc), (ref, proc)):
                try:
                    client.execute_command("SHUTDOWN", *variant)
                except redis.ConnectionError:
                    pass  # the server closed the connection: it is going down
                assert p.wait(timeout=30) == 0, variant
        finally:
            terminate(proc)


def test_the_other_claimed_commands_answer_as_redis_does(pair):
    lv, rs = pair
    for c in (lv, rs):
        c.flushall()
    script = [
        ("PING",), ("PING", "hello"), ("SETEX", "sx", "100", "v"), ("SETEX", "sx", "0", "v"), ("SETEX", "sx", "x", "v"),
        ("GETSET", "gs", "1"), ("GETSET", "gs", "2"), ("RENAMENX", "gs", "sx"), ("RENAMENX", "gs", "gn"),
        ("RENAMENX", "none", "x"), ("PEXPIRE", "gn", "100000"), ("PEXPIRE", "none", "100"),
        ("PEXPIREAT", "gn", "4102444800000"), ("PEXPIRETIME", "gn"), ("EXPIRETIME", "gn"), ("EXPIRETIME", "none"),
        ("SET", "p", "v"), ("EXPIRETIME", "p"), ("PUBLISH", "chan", "msg"),
        ("MULTI",), ("SET", "d", "1"), ("DISCARD",), ("GET", "d"), ("DISCARD",),
        ("SELECT", "0"), ("WAIT", "0", "0"), ("SCRIPT", "FLUSH"), ("AUTH", "pw"), ("AUTH", "user", "pw"),
        ("REPLICAOF", "NO", "ONE"), ("SLAVEOF", "NO", "ONE"), ("SLOWLOG", "RESET"), ("SLOWLOG", "LEN"),
        ("FLUSHDB",), ("DBSIZE",), ("MSET", "k1", "1", "k2", "2", "x3", "3"), ("FLUSHALL", "SYNC"), ("DBSIZE",),
    ]
    for cmd in script:
        same(lv, rs, *cmd)
    same(lv, rs, "SETEX", "sx", "100", "v")
    same(lv, rs, "PEXPIRETIME", "sx", approx=lambda a, b: abs(a - b) <= 100)  # set a few ms apart
    for c in (lv, rs):
        c.mset({"k1": 1, "k2": 2, "x3": 3})
    assert sorted(lv.keys("k*")) == sorted(rs.keys("k*")) == [b"k1", b"k2"]
    assert reply(lv, "SELECT", "1")[0] == "error"  # DELIBERATE: one database
    # HELLO and ROLE: the same fields and kinds.
    h_lv, h_rs = lv.execute_command("HELLO", "2"), rs.execute_command("HELLO", "2")
    assert h_lv[0::2] == h_rs[0::2]
    assert reply(lv, "ROLE")[0] == reply(rs, "ROLE")[0] == b"master"
    for c in (lv, rs):
        p, got = subscription_replies(c, "subscribe", "unsubscribe", ("b", "a"))
        assert got == [("subscribe", b"b", 1), ("subscribe", b"a", 2), ("unsubscribe", b"a", 1)]
        assert c.publish("b", "x") == 1
        p.close()
    # QUIT: +OK, then the server closes the connection.
    for c in (lv, rs):
        conn = c.connection_pool.get_connection("QUIT")
        conn.send_command("QUIT")
        assert conn.read_response() == b"OK"
        with pytest.raises(redis.ConnectionError):
            conn.read_response()
        conn.disconnect()
