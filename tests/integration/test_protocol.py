"""Malformed and hostile input over raw sockets (Redis' tests/unit/protocol.tcl
and more): a clear error, the connection closed, the server unharmed."""
import socket
import time

import pytest

from conftest import wait_until


def connect(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def read_until_closed(s, limit=1 << 20):
    data = b""
    while len(data) < limit:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


BAD = [
    (b"*20000000\r\n", b"invalid multibulk length"),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", b"expected '$', got 'f'"),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", b"invalid bulk length"),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n", b"invalid bulk length"),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n", b"invalid bulk length"),
    (b"*1\r\nfoo\r\n", b"expected '$', got 'f'"),
    (b"set k \"open\r\n", b"unbalanced quotes in request"),
]


@pytest.mark.parametrize("payload,message", BAD, ids=[m.decode() for _, m in BAD])
def test_protocol_error_is_answered_and_closes(server, payload, message):
    s = connect(server)
    s.sendall(payload)
    data = read_until_closed(s)
    assert data == b"-ERR Protocol error: " + message + b"\r\n"
    assert server.client().ping()


@pytest.mark.parametrize("prefix", [b"\x00", b"*\x00", b"$\x00"], ids=["nul", "star-nul", "dollar-nul"])
def test_protocol_desync_is_detected(server, prefix):
    # Redis' "Protocol desync regression test": no newline ever comes.
    s = connect(server)
    s.sendall(prefix)
    payload = b"A" * 1024
    sent = 0
    try:
        while sent < 10 << 20:
            s.sendall(payload)
            sent += len(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = read_until_closed(s)
    assert b"Protocol error" in data
    assert sent < 10 << 20, "server did not close the connection"


def test_commands_before_a_protocol_error_still_run_in_order(server):
    s = connect(server)
    s.sendall(b"SET a 1\r\nINCR a\r\n*1\r\nfoo\r\n")
    assert read_until_closed(s) == b"+OK\r\n:2\r\n-ERR Protocol error: expected '$', got 'f'\r\n"


def test_empty_query_and_negative_multibulk_are_ignored(server):
    s = connect(server)
    s.sendall(b"\r\n*-10\r\n*0\r\nPING\r\n")
    assert s.recv(100) == b"+PONG\r\n"


def test_big_pipeline_in_one_write_keeps_reply_order(server):
    s = connect(server)
    cmds = b"".join(b"SET k%d %d\r\nGET k%d\r\nINCR c\r\n" % (i, i, i) for i in range(2000))
    s.sendall(cmds)
    expected = b"".join(b"+OK\r\n$%d\r\n%d\r\n:%d\r\n" % (len(str(i)), i, i + 1) for i in range(2000))
    data = b""
    while len(data) < len(expected):
        chunk = s.recv(1 << 20)
        assert chunk
        data += chunk
    assert data == expected


def test_wrong_arity_and_unknown_commands(server):
    r = server.client()
    import redis
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get' command"):
        r.execute_command("GET")
    with pytest.raises(redis.ResponseError, match="unknown command 'FOO', with args beginning with: 'bar'"):
        r.execute_command("FOO", "bar")


def test_large_values_round_trip(server):
    r = server.client()
    big = b"x" * (20 << 20)
    assert r.set("big", big)
    assert r.get("big") == big
    assert r.strlen("big") == len(big)


def test_bulk_length_limit_is_enforced(server):
    server.client().config_set("proto-max-bulk-len", "1mb")
    s = connect(server)
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % ((1 << 20) + 1))
    assert read_until_closed(s) == b"-ERR Protocol error: invalid bulk length\r\n"


def test_client_that_stops_reading_is_disconnected(server):
    r = server.client()
    r.config_set("client-output-buffer-limit", "1mb")
    r.set("v", b"x" * 100_000)
    s = connect(server)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # 2000 GETs of 100 KB without reading a byte of the 200 MB of replies.
    try:
        for _ in range(20):
            s.sendall(b"GET v\r\n" * 100)
    except (BrokenPipeError, ConnectionResetError):
        pass
    wait_until(lambda: r.info("stats")["client_output_buffer_limit_disconnections"] >= 1,
               what="the output buffer limit to disconnect the client")
    assert r.ping()


def test_query_buffer_limit_disconnects(server):
    r = server.client()
    r.config_set("client-query-buffer-limit", "1mb")
    s = connect(server)
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (100 << 20))
    try:
        for _ in range(64):
            s.sendall(b"y" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    wait_until(lambda: r.info("stats")["client_query_buffer_limit_disconnections"] >= 1,
               what="the query buffer limit to disconnect the client")


def test_maxclients_rejects_with_redis_error(server):
    r = server.client()
    r.config_set("maxclients", 3)
    held = [server.client() for _ in range(2)]
    for h in held:
        h.ping()
    s = connect(server)
    assert read_until_closed(s) == b"-ERR max number of clients reached\r\n"
    assert r.info("stats")["rejected_connections"] >= 1


def test_password_limits_unauthenticated_clients(server_factory, tmpdir_path):
    import os
    import redis
    pw = os.path.join(tmpdir_path, "pw")
    with open(pw, "w") as f:
        f.write("hunter2-secret\n")
    srv = server_factory(extra_args=["--requirepass-file", pw], password="hunter2-secret")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=srv.port).get("x")
    with pytest.raises(redis.ResponseError, match="WRONGPASS invalid username-password pair"):
        srv.client(password="wrong").ping()
    assert srv.client(password="hunter2-secret").set("x", 1)
    s = connect(srv)
    s.sendall(b"*11\r\n")
    assert read_until_closed(s) == b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    s = connect(srv)
    s.sendall(b"*2\r\n$4\r\nAUTH\r\n$100000\r\n")
    assert read_until_closed(s) == b"-ERR Protocol error: unauthenticated bulk length\r\n"
    s = connect(srv)
    s.sendall(b"GET x\r\nAUTH hunter2-secret\r\nGET x\r\n")
    data = b""
    while not data.endswith(b"$1\r\n1\r\n"):
        chunk = s.recv(1000)
        assert chunk
        data += chunk
    assert data == b"-NOAUTH Authentication required.\r\n+OK\r\n$1\r\n1\r\n"
    srv.stop()
    assert "hunter2-secret" not in srv.read_log()
