"""Power cuts for tests: a levee data directory on powercut_fs.py (a FUSE
filesystem that keeps unsynced data volatile), clients that remember what
they were told, and a check of what survived.

Disk mounts the filesystem, cuts the power (processes killed, every
operation failing, the durable tree dumped) and boots again from what
survived. Ledger records, per key, the value a client was last told is
stored and the values sent without an answer (those may or may not have
landed); Writers drive it from threads and keep every exception they hit.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time

import redis

from conftest import SUDO, privileged, require, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
FS = os.path.join(HERE, "powercut_fs.py")
PYTHON = "/usr/bin/python3"  # Debian's, which has python3-fusepy


def require_fuse():
    require(SUDO is not None, "the power-cut tests mount a FUSE filesystem: run them as root or with passwordless sudo")
    require(os.path.exists("/dev/fuse"), "the power-cut tests need /dev/fuse")
    rep = subprocess.run([PYTHON, "-c", "import fusepy"], capture_output=True)
    require(rep.returncode == 0, "the power-cut tests need Debian's python3-fusepy (scripts/install-deps.sh)")


class Disk:
    """A powercut_fs mount at base/mnt. Threads: the test's own."""

    def __init__(self, base):
        self.base = base
        self.mnt = os.path.join(base, "mnt")
        self.sock = os.path.join(base, "ctl.sock")
        self.proc = None
        self.boots = 0
        self.servers = []  # processes using the mount: killed before it goes, whatever the test did
        os.makedirs(self.mnt, exist_ok=True)

    def mount(self, image=None):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.log = open(os.path.join(self.base, f"fs-{self.boots}.log"), "ab")
        owner = [] if os.geteuid() == 0 else ["--owner", f"{os.getuid()}:{os.getgid()}"]
        self.proc = subprocess.Popen(privileged(PYTHON, FS, self.mnt, self.sock, *owner) + ([image] if image else []),
                                     stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            assert self.proc.poll() is None, f"powercut_fs exited: {self.fs_log()}"
            return os.path.ismount(self.mnt) and os.path.exists(self.sock)
        wait_until(up, 20, what="the power-cut filesystem to mount")
        self.boots += 1
        return self

    def fs_log(self):
        with open(os.path.join(self.base, f"fs-{self.boots}.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def ctl(self, **req):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(120)
            s.connect(self.sock)
            s.sendall((json.dumps(req) + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                assert chunk, "powercut_fs closed the control socket"
                buf += chunk
        reply = json.loads(buf)
        assert "error" not in reply, reply
        return reply

    def mkdir_durable(self, name):
        """A directory that exists durably, as a volume's does before the server starts."""
        path = os.path.join(self.mnt, name)
        os.makedirs(path, exist_ok=True)
        for d in (self.mnt, path):
            fd = os.open(d, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        return path

    def cut(self, procs, mode="strict", seed=0):
        """Power off at the moment of the freeze (now, or a trigger's),
        kill procs with it, and boot from what was durable."""
        self.ctl(op="freeze")
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        image = os.path.join(self.base, f"image-{self.boots}")
        info = self.ctl(op="cut", mode=mode, seed=seed, image=image)
        for p in procs:
            p.wait(timeout=30)
        self.unmount()
        self.mount(image)
        shutil.rmtree(image)
        return info

    def unmount(self):
        if self.proc is None:
            return

        def done():
            if os.path.ismount(self.mnt):
                subprocess.run(privileged("umount", self.mnt), capture_output=True, timeout=30)
            return not os.path.ismount(self.mnt)
        try:
            wait_until(done, 30, interval=0.1, what=f"{self.mnt} to unmount")
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
            self.proc.wait(timeout=30)
            self.log.close()
            self.proc = None

    def close(self):
        for p in self.servers:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        if self.proc is not None and os.path.ismount(self.mnt):
            subprocess.run(privileged("umount", "-l", self.mnt), capture_output=True, timeout=30)
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


class Ledger:
    """What clients were told. Per key: the value last acknowledged (None:
    absent) and the values sent since without an answer. Thread-safe."""

    def __init__(self):
        self.mu = threading.Lock()
        self.acked = {}
        self.maybe = {}
        self.ack_time = {}
        self.history = {}
        self.pairs = []

    def sending(self, key, value):
        with self.mu:
            self.acked.setdefault(key, None)
            self.maybe.setdefault(key, []).append(value)

    def acknowledged(self, key, value):
        with self.mu:
            self.acked[key] = value
            self.maybe[key] = []
            self.ack_time[key] = time.time()
            self.history.setdefault(key, set()).add(value)

    def check(self, client, strict=True):
        """Reads every key back. Returns the keys whose acknowledged value
        is gone (with its ack time); a value that is neither the
        acknowledged one nor one sent since (a torn or foreign value) is
        always a failure. strict: assert nothing acknowledged was lost."""
        with self.mu:
            keys = sorted(self.acked)
        lost, wrong = [], []
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            for key, got in zip(chunk, client.mget(chunk)):
                got = None if got is None else got.decode()
                want = self.acked[key]
                if got == want:
                    pass
                elif got in self.maybe.get(key, []):
                    pass
                elif want is not None and (got is None or got in self.history.get(key, ())):
                    lost.append((key, want, got, self.ack_time.get(key)))
                else:
                    wrong.append((key, want, self.maybe.get(key), got))
                self.acked[key] = got
                self.maybe[key] = []
        assert not wrong, f"{len(wrong)} keys hold a value no client wrote last: {wrong[:5]}"
        for ka, kb in self.pairs:
            assert self.acked[ka] == self.acked[kb], f"a transaction half applied: {ka}={self.acked[ka]} {kb}={self.acked[kb]}"
        if strict:
            assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
        return lost


class Writers:
    """Client threads writing until stopped or their server goes away. Every
    exception other than a lost connection is kept in errors, for the test
    to assert on; a reply that is an error counts as not acknowledged and
    is kept too unless tolerate_replies."""

    def __init__(self, port, ledger, tag, threads=6, blob_bytes=0, tolerate_replies=False):
        self.port, self.ledger, self.tag = port, ledger, tag
        self.blob_bytes = blob_bytes
        self.tolerate_replies = tolerate_replies
        self.stop_flag = threading.Event()
        self.errors = []
        self.replies = []
        self.acks = 0
        self.mu = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self, timeout=30):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout)
            assert not t.is_alive(), "a writer thread did not stop"

    def _run(self, i):
        rng = random.Random(f"{self.tag}-{i}")
        c = redis.Redis(port=self.port, socket_timeout=60, single_connection_client=True)
        n = 0
        try:
            while not self.stop_flag.is_set():
                n += 1
                kind = i % 3
                if kind == 0:  # a new key each time
                    key, value = f"{self.tag}:u{i}:{n}", f"{self.tag}:{i}:{n}"
                    self._one(key, value, lambda: c.set(key, value))
                elif kind == 1:  # two keys in one transaction: both or neither
                    ka, kb, value = f"{self.tag}:ma{i}:{n}", f"{self.tag}:mb{i}:{n}", f"{self.tag}:{i}:{n}"
                    self.ledger.sending(kb, value)
                    with self.ledger.mu:
                        self.ledger.pairs.append((ka, kb))

                    def txn():
                        p = c.pipeline(transaction=True)
                        p.set(ka, value).set(kb, value)
                        return p.execute()
                    if self._one(ka, value, txn):
                        self.ledger.acknowledged(kb, value)
                else:  # overwrites of a few keys; large ones go to blob files
                    key = f"{self.tag}:o{i}:{rng.randrange(20)}"
                    size = self.blob_bytes + rng.randrange(2048) if self.blob_bytes else rng.randrange(8, 200)
                    head = f"{self.tag}:{i}:{n}:"
                    value = head + "x" * max(0, size - len(head))
                    self._one(key, value, lambda: c.set(key, value))
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError):
            pass  # the power went
        except Exception as e:  # noqa: BLE001 - kept for the test to assert on
            with self.mu:
                self.errors.append(repr(e))
        finally:
            c.close()

    def _one(self, key, value, call):
        self.ledger.sending(key, value)
        try:
            call()
        except redis.ResponseError as e:
            with self.mu:
                (self.replies if self.tolerate_replies else self.errors).append(str(e))
            return False
        self.ledger.acknowledged(key, value)
        with self.mu:
            self.acks += 1
        return True
