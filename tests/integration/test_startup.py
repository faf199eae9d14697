"""Configuration from file, environment and flags; start-up errors; logs."""
import json
import os

import pytest

from conftest import ROOT, run_levee, wait_until


def test_sample_config_starts_and_flags_beat_env_beat_file(server_factory, tmpdir_path):
    cfg = os.path.join(tmpdir_path, "levee.yaml")
    with open(os.path.join(ROOT, "levee.yaml")) as f:
        text = f.read()
    # The sample itself, with a different maxclients and fsync.
    text = text.replace("maxclients: 10000", "maxclients: 111").replace("fsync: everysec", "fsync: no")
    with open(cfg, "w") as f:
        f.write(text)
    srv = server_factory(extra_args=["--config", cfg, "--fsync", "always"],
                         env={"LEVEE_FSYNC": "everysec", "LEVEE_MAXCLIENTS": "222"})
    r = srv.client()
    assert r.config_get("fsync") == {"fsync": "always"}          # flag beats env and file
    assert r.config_get("maxclients") == {"maxclients": "222"}   # env beats file
    assert r.config_get("block-cache-mb") == {"block-cache-mb": "128"}  # file (= default)
    assert r.info("server")["config_file"] == cfg


@pytest.mark.parametrize("yaml_text,args,env,message", [
    ("prot: 7000\n", [], {}, "unknown setting 'prot'"),
    ("port: seventy\n", [], {}, "invalid value 'seventy' for 'port'"),
    ("", ["--fsync", "sometimes"], {}, "expected one of always, everysec, no"),
    ("", [], {"LEVEE_MAXCLIENTS": "0"}, "LEVEE_MAXCLIENTS"),
], ids=["unknown-key", "wrong-type", "bad-enum-flag", "env-out-of-range"])
def test_bad_configuration_stops_startup_with_a_message(tmpdir_path, yaml_text, args, env, message):
    cfg = os.path.join(tmpdir_path, "bad.yaml")
    with open(cfg, "w") as f:
        f.write(yaml_text)
    full_env = dict(os.environ)
    full_env.update(env)
    out = run_levee("serve", "--config", cfg, "--data-dir", os.path.join(tmpdir_path, "d"), "--port", "0",
                    "--http-port", "0", *args, env=full_env, timeout=20)
    assert out.returncode == 2
    assert message in out.stderr.decode(), out.stderr


def test_kubernetes_service_link_variables_do_not_stop_startup(server_factory):
    # A Service called "levee" makes Kubernetes inject these into every pod.
    srv = server_factory(env={"LEVEE_PORT": "tcp://10.96.0.12:6379", "LEVEE_SERVICE_HOST": "10.96.0.12",
                              "LEVEE_PORT_6379_TCP_ADDR": "10.96.0.12"})
    assert srv.client().ping()
    log = srv.read_log()
    assert "looks like a Kubernetes service link" in log and "levee has no setting 'service-host'" in log


def test_version_and_help():
    out = run_levee("version")
    assert out.returncode == 0 and out.stdout.startswith(b"levee 0.")
    out = run_levee("serve", "--help")
    assert out.returncode == 0 and b"--fsync" in out.stdout and b"--requirepass-file" in out.stdout


def test_port_in_use_is_reported(server_factory):
    first = server_factory()
    second = server_factory(port=first.port, start=False)
    second.start(wait=False)
    wait_until(lambda: second.proc.poll() is not None, what="levee to exit")
    assert "cannot listen on 127.0.0.1:%d" % first.port in second.read_log()


def test_logs_are_cloud_logging_json(server_factory):
    srv = server_factory()
    r = srv.client()
    r.set("k", "secret-value-bytes")
    s = __import__("socket").create_connection(("127.0.0.1", srv.port))
    s.sendall(b"*1\r\nfoo\r\n")  # a protocol error gets logged
    s.recv(100)
    srv.stop()
    lines = [l for l in srv.read_log().splitlines() if l.strip()]
    assert len(lines) >= 4
    for line in lines:
        obj = json.loads(line)
        assert obj["severity"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        assert obj["message"]
        assert obj["time"].endswith("Z") and "T" in obj["time"]
        assert "component" in obj
    assert "secret-value-bytes" not in srv.read_log()
    assert any(json.loads(l)["message"].startswith("protocol error") for l in lines)


def test_healthz_and_readyz(server):
    import urllib.request
    base = f"http://127.0.0.1:{server.http_port}"
    assert urllib.request.urlopen(base + "/healthz", timeout=5).read() == b"ok\n"
    assert urllib.request.urlopen(base + "/readyz", timeout=5).read() == b"ready\n"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/nope", timeout=5)
    assert e.value.code == 404
    req = urllib.request.Request(base + "/healthz", method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405


def test_shutdown_stops_gracefully_keeping_every_write_and_abort_is_refused(server_factory):
    # fsync no: only the graceful stop makes the writes durable.
    srv = server_factory(extra_args=["--fsync", "no"])
    r = srv.client()
    r.mset({f"k{i}": f"v{i}" for i in range(1000)})
    r.set("large", b"L" * 50_000)
    import redis
    with pytest.raises(redis.ResponseError, match="No shutdown in progress"):
        r.execute_command("SHUTDOWN", "ABORT")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("SHUTDOWN", "LATER")
    r.shutdown(nosave=True)  # redis-py: success is the connection closing
    assert srv.proc.wait(timeout=30) == 0
    assert "SHUTDOWN requested by a client" in srv.read_log()
    srv.start()
    r = srv.client()
    assert r.dbsize() == 1001 and r.get("k999") == b"v999" and r.strlen("large") == 50_000
    # redis-cli's shutdown too: it prints nothing and the server exits.
    out = srv.run_cli("shutdown")
    assert srv.proc.wait(timeout=30) == 0, out


def test_threads_are_named_for_top_and_profilers(server_factory):
    # A small memtable so that LevelDB's background thread flushes soon.
    s = server_factory(["--write-buffer-mb", "1"])
    c = s.client()
    pipe = c.pipeline(transaction=False)
    for i in range(20000):
        pipe.set(f"k{i}", "v" * 200)  # small values stay in LevelDB: 4 MB through a 1 MB memtable
        if i % 1000 == 999:
            pipe.execute()

    def names():
        task = f"/proc/{s.proc.pid}/task"
        return sorted(open(os.path.join(task, t, "comm")).read().strip() for t in os.listdir(task))

    wait_until(lambda: "leveldb-bg" in names(), 30, what="LevelDB's background thread to run, named")
    got = names()
    for name in ("levee-writer", "levee-io-0", "levee-io-1", "levee-syncer", "levee-blob-gc", "levee-keyscan"):
        assert name in got, got
    # The flush thread no longer takes the name of the thread that first
    # scheduled it.
    assert got.count("levee-writer") == 1, got
