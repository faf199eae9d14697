"""The row cache: reads of recently read keys answered without a LevelDB
lookup, never with a value older than LevelDB holds (storage/row_cache.h)."""

import threading
import time

import redis

from conftest import mem_total_bytes, serve_refused, wait_until


def rows(r):
    i = r.info("levee")
    return {k: i[k] for k in ("row_cache_max_bytes", "row_cache_bytes", "row_cache_hits", "row_cache_misses")}


def test_reads_are_served_from_the_row_cache_and_writes_are_seen_at_once(server_factory):
    s = server_factory(extra_args=["--row-cache-mb", "4"])
    r, other = s.client(), s.client()
    assert rows(r)["row_cache_max_bytes"] == 4 << 20
    r.set("k", "one")
    assert r.get("k") == b"one"  # a miss fills the cache
    before = rows(r)
    assert [r.get("k") for _ in range(10)] == [b"one"] * 10
    after = rows(r)
    assert after["row_cache_hits"] == before["row_cache_hits"] + 10
    assert after["row_cache_misses"] == before["row_cache_misses"]
    assert after["row_cache_bytes"] > 0

    # Every kind of write is seen by the next read, on any connection.
    other.set("k", "two")
    assert r.get("k") == b"two"
    other.append("k", "+")
    assert r.get("k") == b"two+"
    other.incr("n")
    assert r.get("n") == b"1"
    other.incr("n")
    assert r.get("n") == b"2"
    other.delete("k")
    assert r.get("k") is None and r.get("k") is None  # the second from the cache: absent
    other.set("k", "back")
    assert r.get("k") == b"back"
    other.rename("k", "k2")
    assert r.get("k") is None and r.get("k2") == b"back"
    # A large value: the cache keeps its reference, the blob cache its bytes.
    big = b"v" * 5000
    other.set("big", big)
    assert r.get("big") == big and r.get("big") == big
    other.set("big", b"w" * 5000)
    assert r.get("big") == b"w" * 5000
    # A cached value past its expiry is not served.
    other.set("short", "x", px=300)
    assert r.get("short") == b"x" and r.get("short") == b"x"
    wait_until(lambda: r.get("short") is None, timeout=5, what="the cached key to expire")
    # MULTI/EXEC and FLUSHALL.
    with other.pipeline(transaction=True) as p:
        p.set("m1", "a").set("n", "10").execute()
    assert r.mget("m1", "n") == [b"a", b"10"]
    other.flushall()
    assert rows(r)["row_cache_bytes"] == 0
    assert r.get("n") is None and r.get("m1") is None


def test_no_read_after_an_acknowledged_write_sees_an_older_value(server_factory):
    s = server_factory()
    writer = s.client()
    keys = [f"c{i}" for i in range(4)]  # few keys: reads and writes collide
    acked = {k: 0 for k in keys}
    stop = threading.Event()
    stale, reads, errors = [], [0], []

    def read(n):
        c = s.client()
        try:
            i = n
            while not stop.is_set():
                k = keys[i % len(keys)]
                i += 1
                floor = acked[k]
                got = c.get(k)
                value = int(got) if got is not None else 0
                if value < floor:
                    stale.append((k, floor, value))
                reads[0] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=read, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 4
    i = 0
    while time.monotonic() < deadline:
        k = keys[i % len(keys)]
        i += 1
        acked[k] = writer.incr(k)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert not stale, f"{len(stale)} stale reads of {reads[0]}, first: {stale[:3]}"
    assert reads[0] > 1000
    assert rows(writer)["row_cache_hits"] > 0


def test_the_row_cache_can_be_turned_off_and_auto_follows_memory(server_factory):
    off = server_factory(extra_args=["--row-cache-mb", "0"])
    r = off.client()
    r.set("a", "1")
    assert r.get("a") == b"1" and r.get("a") == b"1"
    assert rows(r) == {"row_cache_max_bytes": 0, "row_cache_bytes": 0, "row_cache_hits": 0,
                       "row_cache_misses": 0}
    auto = server_factory()
    ra = auto.client()
    assert 16 << 20 <= rows(ra)["row_cache_max_bytes"] <= max(16 << 20, mem_total_bytes() // 8)
    assert ra.config_get("row-cache-mb") == {"row-cache-mb": "auto"}
    try:
        ra.config_set("row-cache-mb", "64")
        raise AssertionError("row-cache-mb changed at run time")
    except redis.ResponseError as e:
        assert "row-cache-mb" in str(e) and "restart" in str(e), e


def test_a_bad_row_cache_size_stops_start_up_naming_the_setting(tmpdir_path):
    err = serve_refused(tmpdir_path, "--row-cache-mb", "-3")
    assert "'row-cache-mb'" in err and "or auto" in err, err
