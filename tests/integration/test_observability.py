"""Metrics, health and readiness, SLOWLOG and INFO sections, against the
real binary; /metrics validated by Debian's promtool."""
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request

import pytest
import redis

from conftest import ROOT, wait_until


def http_get(port, path, accept=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def sample(text, name, **labels):
    """The value of one sample in Prometheus text, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted(m.group(3).split(","))) if m.group(3) else ""
        if got == want:
            return float(m.group(4))
    return None


def metrics(srv):
    status, ctype, body = http_get(srv.http_port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    return body


def test_metrics_pass_promtool_after_a_mixed_workload(server):
    r = server.client()
    for i in range(100):
        r.set(f"k{i}", i, ex=100 if i % 2 else None)
    r.get("k1")
    r.mget("k1", "k2", "nope")
    with pytest.raises(redis.ResponseError):
        r.execute_command("INCR", "k1", "extra")
    with pytest.raises(redis.ResponseError):
        r.execute_command("NOSUCH")
    body = metrics(server)
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by scripts/install-deps.sh (Debian's prometheus package)"
    check = subprocess.run([promtool, "check", "metrics"], input=body.encode(), capture_output=True)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_counters_move_by_the_expected_amounts(server):
    r = server.client()
    before = metrics(server)
    base_set = sample(before, "levee_commands_total", command="set") or 0
    for i in range(250):
        r.set(f"c{i}", "v")
    r.set("t", "v", px=20)
    for _ in range(3):
        with pytest.raises(redis.ResponseError):
            r.execute_command("GET")  # wrong arity: refused
    wait_until(lambda: r.dbsize() == 250, what="expiry")
    after = metrics(server)
    assert sample(after, "levee_commands_total", command="set") == base_set + 251
    assert sample(after, "levee_command_errors_total", command="get") == 3
    assert sample(after, "levee_error_replies_total", code="ERR") >= 3
    assert sample(after, "levee_keys") == 250
    assert sample(after, "levee_expired_keys_total") == 1
    assert sample(after, "levee_command_duration_seconds_count", command="set") == base_set + 251
    assert sample(after, "levee_connected_clients") >= 1
    assert sample(after, "levee_applied_sequence") == r.info("levee")["applied_sequence"]
    assert sample(after, "levee_ready") == 1
    assert sample(after, "process_resident_memory_bytes") > 1e6
    assert sample(after, "levee_leveldb_block_cache_hits_total") is not None
    info = r.info("commandstats")
    assert info["cmdstat_set"]["calls"] == base_set + 251
    assert info["cmdstat_get"]["rejected_calls"] == 3
    # redis-py keeps a lone "count=N" as a string; Redis prints the same format.
    assert int(str(r.info("errorstats")["errorstat_ERR"]).split("=")[1]) >= 3


def test_memory_is_the_allocators_count_and_follows_what_levee_keeps(server):
    r = server.client()
    before = r.info("memory")
    assert before["mem_allocator"].startswith("jemalloc-5."), before["mem_allocator"]
    # 2,000 values of 10 KB stay in the blob value cache: about 20 MB that the
    # allocator hands out, which used_memory must show.
    value = os.urandom(10_000)
    pipe = r.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(f"mem:{i}", value)
    pipe.execute()
    # Request buffers and the group's copies are freed once the writes are
    # answered; what the caches keep stays.
    text = metrics(server)
    after = r.info("memory")
    for m in (sample(text, "levee_allocator_bytes", state="allocated"), after["used_memory"]):
        assert 18e6 < m - before["used_memory"] < 120e6, (m, before["used_memory"])
    assert after["used_memory"] == after["allocator_allocated"]
    assert after["allocator_allocated"] <= after["allocator_active"] <= after["allocator_resident"]
    assert after["mem_fragmentation_ratio"] > 0
    assert sample(text, "levee_allocator_bytes", state="resident") >= sample(text, "levee_allocator_bytes",
                                                                             state="allocated")


def test_openmetrics_when_asked(server):
    status, ctype, body = http_get(server.http_port, "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert status == 200
    assert ctype.startswith("application/openmetrics-text; version=1.0.0")
    assert "# TYPE levee_commands counter" in body
    assert body.endswith("# EOF\n")


def test_http_errors(server):
    assert http_get(server.http_port, "/nope")[0] == 404
    req = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405
    # A client that sends half a request and stalls does not block others.
    import socket
    stalled = socket.create_connection(("127.0.0.1", server.http_port))
    stalled.sendall(b"GET /metr")
    assert http_get(server.http_port, "/healthz")[0] == 200
    assert server.client().ping()
    stalled.close()


def test_healthz_turns_red_while_the_writer_is_stalled(server_factory):
    srv = server_factory(extra_args=["--liveness-timeout-ms", "300", "--enable-debug-command", "local"])
    assert http_get(srv.http_port, "/healthz")[0] == 200
    stall = threading.Thread(target=lambda: srv.client(socket_timeout=30).execute_command("DEBUG", "SLEEP", "2"))
    stall.start()
    status = wait_until(lambda: (s := http_get(srv.http_port, "/healthz"))[0] == 503 and s, what="healthz 503")
    assert "writer thread has not answered" in status[2]
    stall.join()
    wait_until(lambda: http_get(srv.http_port, "/healthz")[0] == 200, what="healthz back to 200")


def test_readyz_is_503_while_the_log_replays_and_healthz_stays_green(server_factory):
    srv = server_factory(extra_args=["--wal-keep-segments", "1000"])
    r = srv.client()
    p = r.pipeline(transaction=False)
    for i in range(300_000):
        p.set(f"key:{i}", "v" * 20)
        if i % 10_000 == 9_999:
            p.execute()
    p.execute()
    srv.stop()
    # Rebuild LevelDB from the log: every record gets replayed at start-up.
    shutil.rmtree(os.path.join(srv.data_dir, "db"))
    srv.start(wait=False)
    seen = wait_until(lambda: (s := http_get(srv.http_port, "/readyz"))[0] == 503 and s, timeout=20,
                      what="readyz 503 during replay")
    assert "replaying the write-ahead log" in seen[2]
    assert http_get(srv.http_port, "/healthz")[0] == 200
    wait_until(lambda: http_get(srv.http_port, "/readyz")[0] == 200, timeout=60, what="readyz 200")
    srv.wait_ready()
    assert srv.client().dbsize() == 300_000


def test_slowlog(server_factory):
    r = server_factory(extra_args=["--enable-debug-command", "local"]).client()
    r.config_set("slowlog-log-slower-than", 0)
    r.set("slow", "x" * 300)
    entries = r.slowlog_get(5)
    assert any(e["command"].startswith(b"SET slow") for e in entries), entries
    assert r.slowlog_len() >= 1
    assert r.slowlog_reset()
    r.config_set("slowlog-log-slower-than", -1)
    r.set("x", 1)
    # As Redis: the RESET itself is logged into the fresh log (threshold 0).
    assert [e["command"] for e in r.slowlog_get(10)] == [b"SLOWLOG RESET"]
    r.config_set("slowlog-log-slower-than", 500_000)
    r.execute_command("DEBUG", "SLEEP", "0.6")
    assert r.slowlog_get(1)[0]["duration"] >= 600_000


def test_passwords_never_reach_the_slow_log(server_factory, tmpdir_path):
    pw = os.path.join(tmpdir_path, "pw")
    with open(pw, "w") as f:
        f.write("sl0wlog-secret\n")
    srv = server_factory(extra_args=["--requirepass-file", pw, "--slowlog-log-slower-than", "0"],
                         password="sl0wlog-secret")
    r = srv.client()
    r.execute_command("HELLO", "2", "AUTH", "default", "sl0wlog-secret")
    r.execute_command("AUTH", "sl0wlog-secret")
    entries = r.slowlog_get(100)
    assert entries and not any(b"sl0wlog-secret" in e["command"] for e in entries), entries


def test_docs_list_exactly_the_metrics_the_server_exposes(server):
    body = metrics(server)
    exposed = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        documented = dict(re.findall(r"^\| `([a-z_]+)` \| (counter|gauge|histogram) \|", f.read(), re.M))
    assert exposed == documented, (
        f"only exposed: {sorted(set(exposed) - set(documented))}; "
        f"only documented: {sorted(set(documented) - set(exposed))}; "
        f"type differs: {sorted(k for k in exposed if k in documented and exposed[k] != documented[k])}")
