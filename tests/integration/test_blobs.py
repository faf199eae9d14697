"""Large values in blob files (docs/formats/blob.md): what clients see is the
same as with every value inside LevelDB; restarts, kill -9, the collector and
damage on disk."""
import glob
import json
import os
import random
import time

import pytest
import redis

from conftest import mem_total_bytes, run_levee, serve_refused, wait_until


def info_levee(r):
    return r.info("levee")


EXPIRE_AT = int(time.time()) + 3600


def workload(r, rng):
    """The same commands against any server."""
    r.set("edge-inline", b"i" * 1023)  # one byte under blob-min-bytes
    r.set("edge-blob", b"b" * 1024)
    r.set("big", rng.randbytes(100_000))
    r.set("huge", rng.randbytes(2_000_000))
    r.set("grows", b"s" * 1000)
    r.append("grows", b"t" * 100)  # crosses into a blob
    r.setrange("big", 50_000, b"PATCH")
    r.set("ttl", b"e" * 5000, exat=EXPIRE_AT)  # absolute: the same on both servers
    r.set("gone", b"g" * 5000)
    assert r.getdel("gone") == b"g" * 5000
    r.mset({f"m{i}": bytes([65 + i]) * (900 + 100 * i) for i in range(6)})
    r.set("over", b"1" * 3000)
    r.set("over", b"2" * 4000)  # the first copy is dead
    r.incr("counter")


def check_values(r):
    assert r.get("edge-inline") == b"i" * 1023
    assert r.get("edge-blob") == b"b" * 1024
    assert r.strlen("big") == 100_000
    assert r.getrange("big", 50_000, 50_004) == b"PATCH"
    assert r.strlen("huge") == 2_000_000
    assert r.get("grows") == b"s" * 1000 + b"t" * 100
    assert 3500 < r.ttl("ttl") <= 3600
    assert r.get("gone") is None
    assert r.mget([f"m{i}" for i in range(6)]) == [bytes([65 + i]) * (900 + 100 * i) for i in range(6)]
    assert r.get("over") == b"2" * 4000
    assert r.get("counter") == b"1"


def test_large_values_read_back_the_same_across_restarts_and_digest_like_inline_ones(server_factory):
    srv = server_factory()
    inline = server_factory(extra_args=["--blob-min-bytes", "0"])
    r, ri = srv.client(), inline.client()
    workload(r, random.Random(7))
    workload(ri, random.Random(7))
    check_values(r)
    check_values(ri)
    info = info_levee(r)
    assert info["blob_files"] == 1 and info["blob_bytes"] > 2_100_000, info
    assert info_levee(ri)["blob_files"] == 0
    # The digest covers the data, not where it is kept.
    digest = r.execute_command("DEBUG", "DIGEST")
    assert digest == ri.execute_command("DEBUG", "DIGEST")
    assert r.execute_command("DEBUG", "DIGEST-VALUE", "huge") == ri.execute_command("DEBUG", "DIGEST-VALUE", "huge")
    assert sorted(r.scan_iter(count=3)) == sorted(ri.scan_iter(count=3))
    assert sorted(r.keys("*")) == sorted(ri.keys("*"))
    # Range scans with values read the large ones from their blob file.
    for cmd in ("PKSCANRANGE", "PKRSCANRANGE"):
        got = r.execute_command(cmd, "string_with_value", "", "", "LIMIT", 100)
        assert got == ri.execute_command(cmd, "string_with_value", "", "", "LIMIT", 100)
        assert len(got[1]) == 2 * r.dbsize() and b"huge" in got[1]

    srv.kill9()
    srv.start()
    r = srv.client()
    check_values(r)
    assert r.execute_command("DEBUG", "DIGEST") == digest
    srv.stop()
    rep = run_levee("check", "--data-dir", srv.data_dir, "--json")
    report = json.loads(rep.stdout)
    assert rep.returncode == 0, report
    # edge-blob, big, huge, grows, ttl, over and m2..m5 are in the blob file
    # (m0 and m1 are under 1024 bytes).
    assert report["blob_values"] == 10, report


def test_collector_reclaims_overwritten_values_and_keeps_live_ones(server_factory):
    srv = server_factory(extra_args=["--blob-file-mb", "1"])
    r = srv.client()
    rng = random.Random(3)
    expect = {}
    for rnd in range(3):
        p = r.pipeline(transaction=False)
        for i in range(1000):
            if rnd > 0 and i % 10 == 0:
                continue  # a tenth keep their first value, spread over the old files
            v = rng.randbytes(4000)
            expect[f"k{i}"] = v
            p.set(f"k{i}", v)
        p.execute()
    digest = r.execute_command("DEBUG", "DIGEST")
    written = info_levee(r)["blob_bytes"]
    assert written > 10_000_000

    def reclaimed():
        info = info_levee(r)
        return info["blob_gc_files_removed"] >= 5 and info["blob_bytes"] < 0.6 * written and info

    info = wait_until(reclaimed, timeout=60, what="the collector to remove mostly-dead blob files")
    assert info["blob_gc_bytes_relocated"] > 0, info  # the first values were copied forward
    got = r.mget(list(expect))
    bad = [k for k, v in zip(expect, got) if v != expect[k]]
    assert not bad, f"{len(bad)} values wrong after collection, e.g. {bad[:3]}"
    assert r.execute_command("DEBUG", "DIGEST") == digest
    srv.stop()
    srv.start()
    r = srv.client()
    assert r.execute_command("DEBUG", "DIGEST") == digest


def test_garbage_estimates_survive_a_restart_so_old_files_need_no_survey(server_factory, tmpdir_path):
    data = os.path.join(tmpdir_path, "est")
    # 100%: nothing is collected, the estimates only grow.
    args = ["--blob-file-mb", "1", "--blob-gc-garbage-percent", "100"]
    srv = server_factory(data_dir=data, extra_args=args)
    r = srv.client()
    rng = random.Random(5)
    for rnd in range(2):
        p = r.pipeline(transaction=False)
        for i in range(3000 if rnd == 0 else 1000):
            p.set(f"k{i}", rng.randbytes(4000))
        p.execute()
    before = info_levee(r)["blob_garbage_bytes"]
    assert before > 3_500_000, before  # 1000 overwritten 4 KB values
    srv.stop()  # a clean stop saves the estimates

    srv = server_factory(data_dir=data, extra_args=args)
    r = srv.client()
    info = info_levee(r)
    # Known at once (a survey takes a pass of a second per file, a dozen here).
    assert info["blob_garbage_bytes"] >= 0.9 * before, (info["blob_garbage_bytes"], before)
    assert info["blob_gc_surveys"] == 0, info
    srv.stop()

    # Without the file, old files are surveyed, as before.
    os.remove(os.path.join(data, "db", "BLOB-GARBAGE"))
    srv = server_factory(data_dir=data, extra_args=args)
    r = srv.client()
    assert info_levee(r)["blob_garbage_bytes"] < 0.5 * before
    wait_until(lambda: info_levee(r)["blob_gc_surveys"] >= 3, timeout=30, what="surveys of old blob files")


def test_a_damaged_blob_value_is_refused_with_its_file_and_check_names_it(server_factory):
    # Only wholly dead files are collected here, so the damaged file stays.
    srv = server_factory(extra_args=["--blob-gc-garbage-percent", "100"])
    r = srv.client()
    r.set("first", b"a" * 5000)
    r.set("second", b"b" * 5000)
    r.set("small", b"fine")
    srv.stop()
    (blob,) = glob.glob(os.path.join(srv.data_dir, "db", "vlog-*.blob"))
    with open(blob, "r+b") as f:  # a byte inside the first record's value
        f.seek(100)
        c = f.read(1)
        f.seek(100)
        f.write(bytes([c[0] ^ 0xFF]))
    srv.start()
    r = srv.client()
    with pytest.raises(redis.ResponseError) as e:
        r.get("first")
    assert "checksum" in str(e.value) and os.path.basename(blob) in str(e.value), str(e.value)
    assert r.get("second") == b"b" * 5000
    assert r.get("small") == b"fine"
    # The key can be repaired by writing it.
    r.set("first", b"c" * 5000)
    assert r.get("first") == b"c" * 5000
    r.set("first", b"a" * 5000)  # damage it again for check: an older record is not read
    srv.stop()
    with open(blob, "r+b") as f:
        f.seek(100)
        c = f.read(1)
        f.seek(100)
        f.write(bytes([c[0] ^ 0xFF]))
    rep = run_levee("check", "--data-dir", srv.data_dir, "--json")
    report = json.loads(rep.stdout)
    assert rep.returncode == 0, report  # the damaged record is dead: first now points elsewhere
    # Damage to a live record is a failed check that names the key.
    files = sorted(glob.glob(os.path.join(srv.data_dir, "db", "vlog-*.blob")))
    newest = files[-1]
    size = os.path.getsize(newest)
    with open(newest, "r+b") as f:
        f.seek(size - 10)
        f.write(b"XXXXXXXXXX")
    rep = run_levee("check", "--data-dir", srv.data_dir, "--json")
    report = json.loads(rep.stdout)
    assert rep.returncode == 1, report
    assert any("'first'" in p and "checksum" in p for p in report["problems"]), report


def test_blob_min_bytes_changes_at_run_time_and_old_values_stay_readable(server):
    r = server.client()
    r.set("a", b"x" * 4000)
    assert r.config_set("blob-min-bytes", "0")
    r.set("b", b"y" * 4000)
    before = info_levee(r)["blob_bytes"]
    r.set("c", b"z" * 4000)
    assert info_levee(r)["blob_bytes"] == before  # inline now
    assert r.get("a") == b"x" * 4000 and r.get("b") == b"y" * 4000
    with pytest.raises(redis.ResponseError) as e:
        r.config_set("blob-gc-garbage-percent", "0")
    assert "blob-gc-garbage-percent" in str(e.value)


def test_replicas_keep_their_own_blob_files_and_converge_through_collection(server_factory):
    small = ["--blob-file-mb", "1"]
    p = server_factory(small)
    r1 = server_factory(small + ["--replicaof", f"127.0.0.1:{p.port}"])
    c = p.client()
    rng = random.Random(11)
    for rnd in range(3):
        pipe = c.pipeline(transaction=False)
        for i in range(600):
            if rnd == 0 or i % 4:
                pipe.set(f"k{i}", rng.randbytes(3000))
        pipe.execute()
    pipe = c.pipeline(transaction=False)
    for i in range(0, 600, 7):
        pipe.delete(f"k{i}")
    pipe.execute()

    def collected(s):
        return lambda: s.client().info("levee")["blob_gc_files_removed"] >= 2

    wait_until(collected(p), timeout=60, what="the primary's collector")
    wait_until(collected(r1), timeout=60, what="the replica's collector")

    def same(*servers):
        ds = [s.client().execute_command("DEBUG", "DIGEST") for s in servers]
        return all(d == ds[0] for d in ds)

    wait_until(lambda: same(p, r1), timeout=30, what="replica 1 to hold the primary's data")
    # A replica that joins now gets the checkpoint: blob files included.
    r2 = server_factory(small + ["--replicaof", f"127.0.0.1:{p.port}"])
    wait_until(lambda: same(p, r2), timeout=30, what="replica 2 (full resync) to hold the primary's data")
    assert glob.glob(os.path.join(r2.data_dir, "db", "vlog-*.blob"))
    assert r2.client().get("k1") == c.get("k1")


def test_the_value_cache_serves_large_values_within_its_size_and_can_be_turned_off(server_factory):
    values = {f"v{i}": random.Random(i).randbytes(4096) for i in range(600)}  # about 2.5 MB
    small = server_factory(extra_args=["--blob-cache-mb", "1"])
    r = small.client()
    r.mset(values)
    # Newest first: the newest are still in the 1 MiB cache, the oldest have
    # left it and come from their file (and go back in).
    for k in reversed(list(values)):
        assert r.get(k) == values[k], k
    info = info_levee(r)
    assert info["blob_cache_max_bytes"] == 1 << 20
    assert 0 < info["blob_cache_bytes"] <= 1 << 20
    assert info["blob_cache_hits"] > 0 and info["blob_cache_misses"] > 0, info
    # What was read last is served from memory: reading it again only hits.
    last = list(values)[:50]
    hits, misses = info["blob_cache_hits"], info["blob_cache_misses"]
    assert r.mget(last) == [values[k] for k in last]
    info = info_levee(r)
    assert (info["blob_cache_hits"], info["blob_cache_misses"]) == (hits + len(last), misses)
    r.flushall()  # the values are dead: their memory comes back
    assert info_levee(r)["blob_cache_bytes"] == 0

    # auto: a quarter of what levee may use (the cgroup limit, else RAM).
    auto = server_factory()
    ra = auto.client()
    assert 16 << 20 <= info_levee(ra)["blob_cache_max_bytes"] <= max(16 << 20, mem_total_bytes() // 4)
    assert ra.config_get("blob-cache-mb") == {"blob-cache-mb": "auto"}
    # Writes can leave the cache alone; reads still fill it.
    assert ra.config_set("blob-cache-on-write", "no")
    ra.set("bulk", b"w" * 8000)
    info = info_levee(ra)
    assert info["blob_cache_bytes"] == 0
    assert ra.get("bulk") == b"w" * 8000 and ra.get("bulk") == b"w" * 8000
    after = info_levee(ra)
    assert (after["blob_cache_misses"], after["blob_cache_hits"]) == (info["blob_cache_misses"] + 1,
                                                                      info["blob_cache_hits"] + 1)
    assert after["blob_cache_bytes"] > 8000

    off = server_factory(extra_args=["--blob-cache-mb", "0"])
    ro = off.client()
    ro.mset(values)
    assert ro.mget(list(values)) == list(values.values())
    info = info_levee(ro)
    assert info["blob_cache_max_bytes"] == 0 and info["blob_cache_bytes"] == 0
    assert info["blob_cache_hits"] == 0 and info["blob_cache_misses"] == 0


def test_a_bad_blob_cache_size_stops_start_up_naming_the_setting(tmpdir_path):
    err = serve_refused(tmpdir_path, "--blob-cache-mb", "lots")
    assert "'blob-cache-mb'" in err and "or auto" in err, err
