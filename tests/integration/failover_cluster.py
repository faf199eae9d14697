"""A primary, two replicas and three real redis-sentinel processes on
loopback, plus a write load that records every acknowledged write.

Used by tests/integration/test_failover.py and bench/failover.py. The nodes
are levee servers or (for the benchmark's reference run) Debian's
redis-server, configured alike: fencing with min-replicas-to-write 1, and on
levee sync-class keys ("sync:" prefix) acknowledged only after one replica
has them. Every wait polls with a deadline."""
import os
import signal
import subprocess
import threading
import time

import redis

from conftest import LEVEE, as_this_user, free_port, privileged, terminate, wait_until

MASTER = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


class Node:
    """One levee or redis-server process with its own config file (Sentinel
    rewrites it with CONFIG REWRITE)."""

    def __init__(self, kind, root, index, replicaof=None, extra_config=None, password=None,
                 host="127.0.0.1", netns=None):
        """replicaof: "host:port" of the primary to follow at start, or None.
        host: where clients reach the node; netns: a network namespace to
        run it in (it then listens on every address)."""
        self.kind = kind
        self.index = index
        self.host = host
        self.netns = netns
        self.port = free_port()
        self.http_port = free_port()
        self.dir = os.path.join(root, f"node{index}")
        os.makedirs(self.dir, exist_ok=True)
        self.config_path = os.path.join(self.dir, "levee.yaml" if kind == "levee" else "redis.conf")
        self.log_path = os.path.join(self.dir, "out.log")
        self.password = password
        self.proc = None
        settings = {
            "min-replicas-to-write": "1",
            "min-replicas-max-lag": "2",
        }
        if kind == "levee":
            settings.update({
                "port": str(self.port), "http-port": str(self.http_port),
                "data-dir": os.path.join(self.dir, "data"), "io-threads": "2", "log-format": "json",
                "sync-replicas": "1", "sync-key-prefixes": '"sync:"', "sync-timeout-ms": "2000",
                "repl-timeout-ms": "3000",
            })
            if netns or host != "127.0.0.1":
                settings["bind"] = '"0.0.0.0"'
                if not password:  # peers in other namespaces are not on loopback
                    settings["protected-mode"] = "no"
            if replicaof:
                settings["replicaof"] = f'"{replicaof}"'
            if password:
                pw = os.path.join(self.dir, "password")
                with open(pw, "w") as f:
                    f.write(password + "\n")
                settings["requirepass-file"] = f'"{pw}"'
                settings["masterauth-file"] = f'"{pw}"'
            settings.update(extra_config or {})
            text = "# levee test node (CONFIG REWRITE edits this file)\n"
            text += "".join(f"{k}: {v}\n" for k, v in settings.items())
        else:
            settings.update({
                "port": str(self.port), "dir": self.dir, "appendonly": "yes", "appendfsync": "everysec",
                "save": '""', "bind": "127.0.0.1", "protected-mode": "no", "repl-diskless-sync": "no",
                "enable-debug-command": "yes",
            })
            if netns or host != "127.0.0.1":
                settings["bind"] = "0.0.0.0"
            if replicaof:
                settings["replicaof"] = replicaof.replace(":", " ")
            if password:
                settings["requirepass"] = password
                settings["masterauth"] = password
            settings.update(extra_config or {})
            text = "".join(f"{k} {v}\n" for k, v in settings.items())
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self):
        self.log = open(self.log_path, "ab")
        if self.kind == "levee":
            args = [LEVEE, "serve", "--config", self.config_path]
        else:
            args = ["redis-server", self.config_path]
        if self.netns:
            args = privileged("ip", "netns", "exec", self.netns) + as_this_user() + args
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.alive_and_answering(), 30, what=f"{self.kind} node {self.index} up")
        return self

    def alive_and_answering(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"node {self.index} exited with {self.proc.returncode}: {self.read_log()[-2000:]}")
        return self.client(socket_timeout=1).ping()

    def client(self, **kw):
        kw.setdefault("socket_timeout", 5)
        return redis.Redis(host=self.host, port=self.port, password=self.password, **kw)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self):
        terminate(self.proc)
        if getattr(self, "log", None) and not self.log.closed:
            self.log.close()

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def info(self, section="replication"):
        return self.client(socket_timeout=2).info(section)

    def role(self):
        return self.info()["role"]

    def digest(self):
        return self.client(socket_timeout=30).execute_command("DEBUG", "DIGEST")


class Sentinels:
    """Three redis-sentinel processes watching one master."""

    def __init__(self, root, master_port, password=None, count=3, host="127.0.0.1", netns=None,
                 master_host="127.0.0.1"):
        self.procs = []
        self.ports = []
        self.logs = []
        self.host = host
        for i in range(count):
            port = free_port()
            d = os.path.join(root, f"sentinel{i}")
            os.makedirs(d, exist_ok=True)
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind {'0.0.0.0' if netns else host}\nprotected-mode no\ndir {d}\n"
                        f"sentinel resolve-hostnames no\n"
                        f"sentinel monitor {MASTER} {master_host} {master_port} 2\n"
                        f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                        f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
                        f"sentinel parallel-syncs {MASTER} 2\n")
                if password:
                    f.write(f"sentinel auth-pass {MASTER} {password}\n")
            log = open(os.path.join(d, "sentinel.log"), "ab")
            cmd = ["redis-sentinel", conf]
            if netns:
                cmd = privileged("ip", "netns", "exec", netns) + as_this_user() + cmd
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
            self.ports.append(port)
            self.logs.append(log)
        for p in self.ports:
            wait_until(lambda p=p: redis.Redis(host=host, port=p, socket_timeout=1).ping(), 15,
                       what=f"sentinel on {p}")

    def client(self, i=0):
        return redis.Redis(host=self.host, port=self.ports[i], socket_timeout=2, decode_responses=True)

    def master_port(self):
        """The master's port as the majority of Sentinels report it (None if
        they disagree)."""
        seen = []
        for i in range(len(self.ports)):
            try:
                seen.append(int(self.client(i).execute_command("SENTINEL", "get-master-addr-by-name", MASTER)[1]))
            except Exception:  # noqa: BLE001 - a sentinel that can't answer has no vote
                pass
        for p in seen:
            if seen.count(p) * 2 > len(self.ports):
                return p
        return None

    def replicas_known(self):
        return self.client().execute_command("SENTINEL", "replicas", MASTER)

    def stop(self):
        for p in self.procs:
            terminate(p, timeout=10)
        for log in self.logs:
            log.close()


def follows(node, primary):
    """node is a replica of primary with its link up."""
    i = node.info()
    return i["role"] == "slave" and i.get("master_port") == primary.port and i.get("master_link_status") == "up"


class Cluster:
    """nodes[0] starts as the primary. With split=(netns, outside_ip,
    inside_ip), the primary runs here (reached at outside_ip) and the
    replicas and Sentinels run inside the namespace (reached at inside_ip),
    so a firewall rule in the namespace can cut the primary off from all of
    them while this process still talks to both sides."""

    def __init__(self, kind, root, extra_config=None, password=None, sentinels=True, split=None):
        self.kind = kind
        self.root = root
        self.password = password
        ns, out_ip, in_ip = split or (None, "127.0.0.1", "127.0.0.1")
        self.nodes = [Node(kind, root, 0, extra_config=extra_config, password=password, host=out_ip)]
        self.nodes[0].start()
        for i in (1, 2):
            self.nodes.append(Node(kind, root, i, replicaof=f"{out_ip}:{self.nodes[0].port}",
                                   extra_config=extra_config, password=password, host=in_ip, netns=ns).start())
        # Attached is not synced: a replica counts as connected from its PSYNC,
        # before its first full resync has given it the primary's history.
        wait_until(lambda: self.nodes[0].info().get("connected_slaves") == 2 and
                   all(follows(n, self.nodes[0]) for n in self.nodes[1:]), 30, what="both replicas in sync")
        self.sentinels = None
        if sentinels:
            self.sentinels = Sentinels(root, self.nodes[0].port, password=password, host=in_ip, netns=ns,
                                       master_host=out_ip)
            # Every sentinel knows both replicas (from the master's INFO).
            wait_until(lambda: all(
                len(self.sentinels.client(i).execute_command("SENTINEL", "replicas", MASTER)) == 2
                for i in range(3)), 30, what="sentinels discovered the replicas")

    def by_port(self, port):
        return next(n for n in self.nodes if n.port == port)

    def primary(self):
        return self.by_port(self.sentinels.master_port())

    def wait_new_primary(self, old_port, timeout=30):
        return wait_until(lambda: (self.sentinels.master_port() or old_port) != old_port and
                          self.by_port(self.sentinels.master_port()).role() == "master" and
                          self.sentinels.master_port(), timeout, interval=0.05, what="a new primary")

    def wait_converged(self, timeout=60, primary=None):
        """Every running node follows the Sentinels' primary (or the one
        given) with its link up, and all digests are equal."""
        def ok():
            p = primary or self.primary()
            if p.info().get("connected_slaves", 0) != sum(1 for n in self.nodes if n.running()) - 1:
                return False
            for n in self.nodes:
                if n is p or not n.running():
                    continue
                i = n.info()
                if i.get("master_port") != p.port or i.get("master_link_status") != "up":
                    return False
            digests = {n.digest() for n in self.nodes if n.running()}
            return len(digests) == 1
        wait_until(ok, timeout, interval=0.2, what="all nodes following one primary with equal digests")

    def failover_round(self, load, acks_before=100, acks_after=50):
        """kill -9 of the Sentinels' primary once a replica can take over,
        then the old one restarted (Sentinel demotes it). Returns (seconds to
        the Sentinels agreeing on a new primary, the load's failover gap)."""
        load.wait_acks(acks_before, timeout=60)
        old = self.primary()
        wait_until(lambda: any(n.running() and n is not old and follows(n, old) for n in self.nodes), 120,
                   interval=0.1, what="a replica in sync before the kill")
        killed_at = time.monotonic()
        old.kill9()
        new_port = self.wait_new_primary(old.port, timeout=60)
        promoted_at = time.monotonic()
        load.wait_acks(acks_after, timeout=60)
        gap = load.failover_gap(old.port, new_port, killed_at)
        old.start()
        return promoted_at - killed_at, gap

    def story(self, limit=60):
        """For a failure message: the replication events of every node and
        the Sentinels' switches, in time order (the last `limit`)."""
        import json
        import re
        names = {str(n.port): f"node{n.index}" for n in self.nodes}
        events = []
        keep = ("promoted", "following a primary", "full resync", "resyncs partially", "refusing",
                "took records", "ready to accept")
        for n in self.nodes:
            for line in n.read_log().splitlines():
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                msg = j.get("message", "")
                if any(k in msg or k in str(j.get("reason", "")) for k in keep):
                    extra = {k: v for k, v in j.items() if k in ("primary", "replica", "asked_offset", "last_sequence",
                                                                 "sequence", "second_offset", "records", "reason")}
                    events.append((j.get("time", "")[11:23], f"node{n.index}", f"{msg} {extra}"))
        for i, log in enumerate(self.sentinels.logs if self.sentinels else []):
            try:
                text = open(log.name, errors="replace").read()
            except OSError:
                continue
            for line in text.splitlines():
                m = re.match(r"\d+:X \d+ \w+ \d+ (\S+) . (.*)", line)
                if m and re.search(r"switch-master|fix-slave-config|selected-slave|failover-abort", m.group(2)):
                    events.append((m.group(1), f"sentinel{i}", m.group(2)))
        out = []
        for t, who, what in sorted(events)[-limit:]:
            for port, name in names.items():
                what = what.replace(port, name)
            out.append(f"{t} {who} {what[:200]}")
        return "\n".join(out)

    def stop(self):
        if self.sentinels:
            self.sentinels.stop()
        for n in self.nodes:
            n.stop()


# What a write may be answered during a failover: the old primary demoted
# (READONLY), too few replicas (NOREPLICAS), a replica cut off
# (MASTERDOWN), a resync installing (BUSY), a server going down, or a sync
# write not confirmed in time. Anything else is a defect the load keeps.
# redis-py strips the codes it knows ("ERR ", "READONLY ", "LOADING ") from
# the message and raises its own class instead, so both are looked at.
EXPECTED_REFUSALS = ("NOREPLICAS ", "MASTERDOWN ", "BUSY ", "server is shutting down", "sync replication timeout")


def expected_refusal(e):
    """True if a write's ResponseError is one a failover may cause."""
    return isinstance(e, (redis.ReadOnlyError, redis.BusyLoadingError)) or str(e).startswith(EXPECTED_REFUSALS)


class Load:
    """Writer threads that follow the Sentinels' primary and record every
    acknowledged write: (monotonic time, key, value, port). Connection
    failures and the refusals above are expected while nodes die; every
    other exception is kept in `unexpected` (the tests assert it is empty)."""

    def __init__(self, cluster, threads=4, classes=("sync", "async")):
        self.cluster = cluster
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.acked = []
        self.errors = 0
        self.unexpected = []
        self.threads = [threading.Thread(target=self.run, args=(t, classes), daemon=True) for t in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def run(self, tid, classes):
        port = None
        conn = None
        i = 0
        while not self.stop_flag.is_set():
            if conn is None:
                try:
                    port = self.cluster.sentinels.master_port()
                    if port is None:
                        raise redis.ConnectionError("no agreed primary")
                    conn = redis.Redis(host=self.cluster.by_port(port).host, port=port, password=self.cluster.password,
                                       socket_timeout=3, socket_connect_timeout=1)
                except Exception:  # noqa: BLE001 - retried below
                    conn = None
                    time.sleep(0.02)  # poll interval while no primary is known
                    continue
            cls = classes[i % len(classes)]
            key = f"{cls}:{tid}:{i}"
            i += 1
            try:
                reply = conn.set(key, str(i))
                if reply is not True:
                    raise AssertionError(f"SET {key} answered {reply!r}")
                with self.lock:
                    self.acked.append((time.monotonic(), key, str(i), port))
            except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
                self._failed(e)
                conn = None
            except redis.ResponseError as e:
                self._failed(e, expected=expected_refusal(e))
                conn = None
            except Exception as e:  # noqa: BLE001 - a defect, kept for the test
                self._failed(e, expected=False)
                conn = None

    def _failed(self, e, expected=True):
        """Not acknowledged: not counted; the thread finds the primary again."""
        with self.lock:
            self.errors += 1
            if not expected:
                self.unexpected.append(repr(e))
        time.sleep(0.01)  # poll interval while failing over

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=10)
            assert not t.is_alive(), "a load thread did not stop"
        assert not self.unexpected, f"writes failed in unexpected ways: {self.unexpected[:5]}"

    def count(self):
        with self.lock:
            return len(self.acked)

    def wait_acks(self, n, timeout=30):
        start = self.count()
        wait_until(lambda: self.count() >= start + n, timeout, what=f"{n} more acknowledged writes")

    def failover_gap(self, old_port, new_port, killed_at):
        """Seconds from the last write acknowledged by the old primary to the
        first acknowledged by the new one after the kill."""
        with self.lock:
            last_old = max((t for t, _, _, p in self.acked if p == old_port and t <= killed_at), default=None)
            first_new = min((t for t, _, _, p in self.acked if p == new_port and t > killed_at), default=None)
        if last_old is None or first_new is None:
            return None
        return first_new - last_old

    def lost_summary(self, node, limit=10):
        """For a failure message: the lost writes grouped by the port that
        acknowledged them, with the span of their ack times."""
        with self.lock:
            acked = list(self.acked)
        c = node.client(socket_timeout=30)
        groups = {}
        for start in range(0, len(acked), 1000):
            chunk = acked[start:start + 1000]
            for (t, key, value, port), v in zip(chunk, c.mget([k for _, k, _, _ in chunk])):
                if v is None or v.decode() != value:
                    g = groups.setdefault(port, [t, t, 0, key])
                    g[0], g[1], g[2] = min(g[0], t), max(g[1], t), g[2] + 1
        t0 = acked[0][0] if acked else 0
        return "; ".join(f"{n} acked by port {p} between {a - t0:.2f} s and {b - t0:.2f} s (e.g. {k})"
                         for p, (a, b, n, k) in list(groups.items())[:limit])

    def missing(self, node):
        """Acknowledged writes whose value is not on node, per class."""
        with self.lock:
            acked = list(self.acked)
        latest = {}
        for _, key, value, _ in acked:
            latest[key] = value  # keys are unique per write; kept general
        c = node.client(socket_timeout=30)
        keys = list(latest)
        lost = {}
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            for k, v in zip(chunk, c.mget(chunk)):
                if v is None or v.decode() != latest[k]:
                    cls = k.split(":", 1)[0]
                    lost[cls] = lost.get(cls, 0) + 1
        return lost, len(keys)


class HAProxy:
    """Debian's haproxy running deploy/haproxy/haproxy.cfg unchanged, with
    the nodes' addresses in its environment."""

    CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "deploy", "haproxy", "haproxy.cfg")

    def __init__(self, root, nodes, password=None):
        self.port = free_port()
        env = dict(os.environ, LEVEE_HAPROXY_BIND=f"127.0.0.1:{self.port}",
                   LEVEE_HAPROXY_STATS=f"127.0.0.1:{free_port()}", LEVEE_PASSWORD=password or "")
        for i, n in enumerate(nodes):
            env[f"LEVEE_NODE_{i}"] = f"{n.host}:{n.port}"
        self.log = open(os.path.join(root, "haproxy.log"), "ab")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.CONFIG], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.password = password

    def client(self, **kw):
        kw.setdefault("socket_timeout", 5)
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **kw)

    def stop(self):
        terminate(self.proc, timeout=10)
        self.log.close()
