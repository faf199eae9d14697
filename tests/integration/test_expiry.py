"""Expiry: lazy on read, a background expirer that deletes (and logs) keys."""
from conftest import wait_until


def test_background_expirer_removes_keys_and_counts_them(server):
    r = server.client()
    p = r.pipeline(transaction=False)
    for i in range(2000):
        p.set(f"e{i}", i, px=50)
    p.set("keep", 1)
    p.execute()
    assert r.info("keyspace")["db0"]["expires"] == 2000
    wait_until(lambda: r.dbsize() == 1, what="the expirer to delete 2000 keys")
    assert r.info("stats")["expired_keys"] == 2000
    assert r.info("keyspace")["db0"] == {"keys": 1, "expires": 0, "avg_ttl": 0}


def test_expired_keys_stay_gone_after_restart(server_factory):
    srv = server_factory(extra_args=["--fsync", "always"])
    r = srv.client()
    for i in range(100):
        r.set(f"x{i}", i, px=30)
    r.set("forever", 1)
    wait_until(lambda: r.dbsize() == 1, what="expiry")
    srv.kill9()
    srv.start()
    r = srv.client()
    assert r.dbsize() == 1 and r.keys("*") == [b"forever"]


def test_overwritten_key_is_not_expired_by_its_old_ttl(server):
    r = server.client()
    r.set("k", "old", px=50)
    r.set("k", "new")  # no TTL now
    r.set("probe", 1, px=60)
    wait_until(lambda: not r.exists("probe"), what="a later key to expire")
    wait_until(lambda: r.info("stats")["expired_keys"] >= 1, what="expirer pass")
    assert r.get("k") == b"new"


def test_key_and_expiry_counts_stay_exact_under_overwrites(server):
    import random
    r = server.client()
    rng = random.Random(7)
    for round_ in range(5):
        p = r.pipeline(transaction=False)
        for _ in range(3000):
            k = f"k{rng.randrange(2000)}"
            op = rng.randrange(6)
            if op == 0:
                p.set(k, "v")
            elif op == 1:
                p.set(k, "v", ex=1000)
            elif op == 2:
                p.mset({k: "v", f"m{rng.randrange(500)}": "w"})
            elif op == 3:
                p.setex(k, 1000, "v")
            elif op == 4:
                p.delete(k)
            else:
                p.persist(k)
        p.execute()
        if round_ == 2:
            r.flushall()
        keys = r.keys("*")
        with_ttl = sum(1 for k in keys if r.ttl(k) > 0)
        assert r.dbsize() == len(keys)  # DBSIZE waits for the counter; INFO after it sees the same
        assert r.info("keyspace").get("db0", {"keys": 0, "expires": 0})["keys"] == len(keys)
        assert r.info("keyspace").get("db0", {"expires": 0})["expires"] == with_ttl
