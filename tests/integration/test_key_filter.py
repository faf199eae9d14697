"""The key filter: reads of missing keys and writes of new keys answered
without a LevelDB lookup, never "absent" for a key that exists
(storage/key_filter.h)."""

import os
import threading

from conftest import serve_refused, wait_until


def kf(r):
    i = r.info("levee")
    return {k: i[k] for k in ("key_filter_ready", "key_filter_bytes", "key_filter_capacity", "key_filter_absent",
                              "key_filter_scans")}


def test_keys_on_disk_are_found_after_a_restart_and_missing_ones_are_answered_by_the_filter(server_factory,
                                                                                         tmpdir_path):
    data = os.path.join(tmpdir_path, "kf")
    s = server_factory(data_dir=data, extra_args=["--row-cache-mb", "0"])
    r = s.client()
    pipe = r.pipeline(transaction=False)
    for i in range(20000):
        pipe.set(f"disk:{i}", i)
    pipe.set("big", b"x" * 5000)  # a blob value: its key is in LevelDB like any other
    pipe.execute()
    s.stop()

    s = server_factory(data_dir=data, extra_args=["--row-cache-mb", "0"])
    r = s.client()
    wait_until(lambda: kf(r)["key_filter_ready"] == 1, timeout=30, what="the key filter's scan")
    state = kf(r)
    assert state["key_filter_scans"] == 1
    assert state["key_filter_capacity"] == 1 << 20  # at least a million keys
    assert state["key_filter_bytes"] == (1 << 20) * 10 // 8
    # Every key on disk is found (no false "absent"), in one pipeline.
    pipe = r.pipeline(transaction=False)
    for i in range(20000):
        pipe.get(f"disk:{i}")
    assert pipe.execute() == [str(i).encode() for i in range(20000)]
    assert r.get("big") == b"x" * 5000
    # Missing keys: nil, and nearly all of them without LevelDB.
    before = kf(r)["key_filter_absent"]
    pipe = r.pipeline(transaction=False)
    for i in range(5000):
        pipe.get(f"missing:{i}")
    assert pipe.execute() == [None] * 5000
    assert kf(r)["key_filter_absent"] - before > 4800  # 1% at 10 bits per key
    # New keys are counted exactly, with overwrites and deletes mixed in.
    r.set("fresh", 1)
    r.set("disk:1", "again")
    r.delete("disk:2")
    assert r.setnx("fresh2", 1) is True
    assert r.incr("counter") == 1
    assert r.dbsize() == 20000 + 1 - 1 + 3
    assert r.get("disk:2") is None and r.get("fresh") == b"1" and r.get("counter") == b"1"
    # FLUSHALL forgets every key: the old ones are absent from the filter.
    r.flushall()
    before = kf(r)["key_filter_absent"]
    assert r.get("disk:3") is None
    assert kf(r)["key_filter_absent"] == before + 1
    r.set("after", "1")
    assert r.get("after") == b"1" and r.dbsize() == 1


def test_no_acknowledged_write_is_missed_by_a_read_that_follows_it(server_factory, tmpdir_path):
    # The restart makes the first scan run while this test writes and reads.
    data = os.path.join(tmpdir_path, "race")
    s = server_factory(data_dir=data)
    pipe = s.client().pipeline(transaction=False)
    for i in range(100000):
        pipe.set(f"pre:{i}", "v")
    pipe.execute()
    s.stop()
    s = server_factory(data_dir=data)
    writer = s.client()
    acked = [0]
    stop = threading.Event()
    missed, reads, errors = [], [0], []

    def read(n):
        c = s.client()
        try:
            i = n
            while not stop.is_set():
                top = acked[0]
                if top:
                    k = f"new:{i % top}"
                    if c.get(k) is None:
                        missed.append(k)
                    reads[0] += 1
                i += 7
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=read, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    n = 0
    while n < 3000 or kf(writer)["key_filter_ready"] == 0:
        writer.set(f"new:{n}", "v")
        n += 1
        acked[0] = n
        assert n < 1_000_000, "the key filter's scan never finished"
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert not missed, f"{len(missed)} acknowledged keys read as missing, first: {missed[:3]}"
    assert reads[0] > 1000
    assert writer.get("pre:99999") == b"v"


def test_the_filter_can_be_turned_off_and_a_bad_size_stops_start_up(server_factory, tmpdir_path):
    off = server_factory(extra_args=["--key-filter-bits-per-key", "0"])
    r = off.client()
    r.set("a", "1")
    assert r.get("a") == b"1" and r.get("b") is None
    assert kf(r) == {"key_filter_ready": 0, "key_filter_bytes": 0, "key_filter_capacity": 0,
                     "key_filter_absent": 0, "key_filter_scans": 0}
    err = serve_refused(os.path.join(tmpdir_path, "bad"), "--key-filter-bits-per-key", "33")
    assert "'key-filter-bits-per-key'" in err and "0 to 32" in err, err
