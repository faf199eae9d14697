"""Real clients against the real binary: redis-py (pure-Python and hiredis
parsers), redis-cli, redis-benchmark, and raw RESP3."""
import socket
import subprocess

import pytest
import redis
from redis.connection import HiredisParser, PythonParser

from conftest import wait_until


@pytest.mark.parametrize("parser", [PythonParser, HiredisParser], ids=["python-parser", "hiredis"])
def test_redis_py_strings_keys_and_binary_values(server, parser):
    r = server.client(parser_class=parser)
    binary = b"a\r\nb\x00c" * 1000
    assert r.set("bin", binary)
    assert r.get("bin") == binary
    assert r.set("n", 10) and r.incrby("n", 5) == 15
    assert r.incrbyfloat("n", 0.5) == 15.5
    assert r.mset({"k1": "v1", "k2": "v2"})
    assert r.mget("k1", "missing", "k2") == [b"v1", None, b"v2"]
    assert r.set("t", "x", ex=100) and 99 <= r.ttl("t") <= 100
    assert r.expire("k1", 50) and r.persist("k1") and r.ttl("k1") == -1
    assert r.getrange("k2", 0, 0) == b"v"
    assert r.append("k2", "!") == 3
    assert r.exists("k1", "k2", "nope") == 2
    assert r.delete("k1", "nope") == 1
    assert r.type("k2") == b"string"
    assert r.rename("k2", "k3") and r.get("k3") == b"v2!"
    assert r.dbsize() == 4
    assert sorted(r.keys("*")) == [b"bin", b"k3", b"n", b"t"]
    assert sorted(r.scan_iter(match="k*", count=1)) == [b"k3"]
    assert r.getdel("k3") == b"v2!" and r.get("k3") is None


def test_pipeline_and_transaction(server):
    r = server.client()
    p = r.pipeline(transaction=False)
    for i in range(500):
        p.set(f"p{i}", i)
        p.incr(f"p{i}")
        p.get(f"p{i}")
    out = p.execute()
    assert out[2::3] == [str(i + 1).encode() for i in range(500)]
    p = r.pipeline(transaction=True)
    p.set("tx", 1).incr("tx").get("tx")
    assert p.execute() == [True, 2, b"2"]


def test_watch_makes_concurrent_increments_exact(server):
    r1, r2 = server.client(), server.client()
    r1.set("counter", 0)

    def incr(client):
        def txn(pipe):
            v = int(pipe.get("counter"))
            pipe.multi()
            pipe.set("counter", v + 1)
        client.transaction(txn, "counter")

    for _ in range(100):
        incr(r1)
        incr(r2)
    assert int(r1.get("counter")) == 200


def test_watch_aborts_when_another_client_writes(server):
    r, other = server.client(), server.client()
    r.set("w", "a")
    with r.pipeline() as p:
        p.watch("w")
        other.set("w", "b")
        p.multi()
        p.set("w", "c")
        with pytest.raises(redis.WatchError):
            p.execute()
    assert r.get("w") == b"b"


def test_info_client_list_and_config_as_tools_read_them(server):
    r = server.client()
    r.client_setname("tester")
    info = r.info()
    assert info["role"] == "master"
    assert info["redis_version"] == "7.0.0"
    assert info["connected_clients"] >= 1
    assert "applied_sequence" in r.info("levee")
    other = server.client()
    other.client_setname("other")
    other.incr("counted")  # redis-py sends INCRBY counted 1
    clients = r.client_list()
    assert any(c["name"] == "tester" and c["cmd"] == "client" for c in clients), clients
    assert any(c["name"] == "other" and c["cmd"] == "incrby" for c in clients), clients
    assert r.config_get("maxclients") == {"maxclients": "10000"}
    assert r.config_set("maxclients", 500)
    assert r.config_get("maxclients") == {"maxclients": "500"}
    with pytest.raises(redis.ResponseError, match="can't be changed at run time"):
        r.config_set("port", 1)
    assert r.command_count() >= 60
    table = r.command()  # redis-py parses COMMAND's reply shape
    assert table["get"]["arity"] == 2 and "readonly" in table["get"]["flags"]
    assert table["set"]["arity"] == -3 and "write" in table["set"]["flags"]


def test_client_kill_closes_the_other_connection(server):
    r, victim = server.client(), server.client()
    victim.client_setname("victim")
    vid = victim.client_id()
    assert r.execute_command("CLIENT", "KILL", "ID", vid) == 1
    wait_until(lambda: not any(c["name"] == "victim" for c in r.client_list()), what="victim gone")


def test_resp3_hello_over_a_raw_socket(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"HELLO 3\r\nSET k v\r\nGET nothing\r\nCONFIG GET maxclients\r\n")
    data = b""
    expected_tail = b"%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"
    while not data.endswith(expected_tail):
        chunk = s.recv(65536)
        assert chunk, f"connection closed early; got {data!r}"
        data += chunk
    assert data.startswith(b"%7\r\n")
    assert b"+OK\r\n_\r\n%1\r\n" in data
    s.close()


def test_redis_cli(server):
    assert server.run_cli("PING").stdout == b"PONG\n"
    assert server.run_cli("SET", "cli", "hello world").stdout == b"OK\n"
    assert server.run_cli("GET", "cli").stdout == b"hello world\n"
    assert server.run_cli("INCR", "nope-int").stdout == b"1\n"
    # Commands from standard input, as scripts use redis-cli.
    out = server.run_cli(input=b"SET a 1\nINCRBY a 41\nGET a\n").stdout
    assert out.split() == [b"OK", b"42", b"42"]
    for i in range(30):
        server.client().set(f"scan:{i}", i)
    keys = server.run_cli("--scan", "--pattern", "scan:*").stdout.split()
    assert len(keys) == 30
    assert b"redis_version:7.0.0" in server.run_cli("INFO", "server").stdout
    err = server.run_cli("NOSUCHCOMMAND", "x")
    assert b"ERR unknown command 'NOSUCHCOMMAND'" in err.stdout


def test_redis_cli_pipe_mode_mass_insert(server):
    proto = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nv\r\n" % (len(k), k)
                     for k in (f"mass:{i}".encode() for i in range(20000)))
    out = server.run_cli("--pipe", input=proto)
    assert out.returncode == 0, out.stderr
    assert b"errors: 0, replies: 20000" in out.stdout
    assert server.client().dbsize() == 20000


def test_redis_benchmark_runs_unchanged(server):
    out = subprocess.run(["redis-benchmark", "-p", str(server.port), "-n", "3000", "-c", "10", "-P", "16",
                          "-r", "1000", "-t", "ping,set,get,incr,mset", "-q"], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    for name in ["PING_INLINE:", "PING_MBULK:", "SET:", "GET:", "INCR:", "MSET (10 keys):"]:
        assert name in text, text
    assert "requests per second" in text
    assert server.client().dbsize() > 0


def test_read_modify_write_commands_are_atomic_under_concurrency(server):
    import threading
    clients = [server.client() for _ in range(4)]

    def work(r, i):
        p = r.pipeline(transaction=False)
        for _ in range(500):
            p.incr("counter")
            p.append("log", "x")
            p.incrbyfloat("float", 0.5)
            p.setnx(f"once:{_ % 50}", i)
        p.execute()

    threads = [threading.Thread(target=work, args=(r, i)) for i, r in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r = clients[0]
    assert int(r.get("counter")) == 2000
    assert r.strlen("log") == 2000
    assert float(r.get("float")) == 1000.0
    assert len(r.keys("once:*")) == 50


def test_interactive_redis_cli_shows_argument_hints(server):
    # A person at a terminal: redis-cli in tmux, typing a command.
    import shutil
    assert shutil.which("tmux"), "tmux is installed by scripts/install-deps.sh"
    session = f"levee-hints-{server.port}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "10",
                    f"redis-cli -p {server.port}"], check=True)
    try:
        def pane():
            return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True,
                                  text=True).stdout
        wait_until(lambda: f"127.0.0.1:{server.port}>" in pane(), what="the redis-cli prompt")
        subprocess.run(["tmux", "send-keys", "-t", session, "SET mykey "], check=True)
        wait_until(lambda: "SET mykey value [NX|XX] [GET] [EX seconds|PX milliseconds" in pane(),
                   what="redis-cli to show SET's hint")
        subprocess.run(["tmux", "send-keys", "-t", session, "C-u", "PKSCANRANGE "], check=True)
        wait_until(lambda: "PKSCANRANGE type start end [MATCH pattern] [LIMIT limit]" in pane(),
                   what="redis-cli to show PKSCANRANGE's hint")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_exec_is_one_log_record_and_noop_writes_log_nothing(server):
    r = server.client()
    before = r.info("levee")["write_records"]
    p = r.pipeline(transaction=True)
    p.set("a", 1).incr("a").mset({"b": 2, "c": 3}).delete("b")
    p.execute()
    assert r.info("levee")["write_records"] == before + 1
    r.set("a", 5, nx=True)   # changes nothing: no record
    r.delete("missing")      # likewise
    assert r.info("levee")["write_records"] == before + 1
    r.set("z", 1)
    assert r.info("levee")["write_records"] == before + 2
