"""Black-box test harness: starts the real levee binary on free ports in a
temp dir, waits for it by polling (never fixed sleeps), and stops only the
processes it started."""
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEVEE = os.environ.get("TEST_LEVEE_BIN", os.path.join(ROOT, "build", "levee"))


_given_ports = set()


def free_port():
    """A port no one listens on, below the kernel's ephemeral range: a port
    the kernel hands out (bind to 0) can be taken by any outgoing connection
    (a client, a replica, a Sentinel) before the server we give it to binds
    it, which made starts fail now and then with "Address already in use"."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral_low = int(f.read().split()[0])
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(10000, ephemeral_low)
        if port in _given_ports:
            continue
        try:
            for host in ("0.0.0.0", "127.0.0.1"):
                with socket.socket() as s:
                    s.bind((host, port))
        except OSError:
            continue
        _given_ports.add(port)
        return port
    raise AssertionError("no free port below the ephemeral range")


def require(condition, reason):
    """Skips a test whose tool or privilege is missing, with the reason; when
    CI is set (GitHub Actions and .ci/run set it) the test fails instead, so
    a CI run never passes by skipping."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing tool or privilege fails the run instead of skipping)",
                    pytrace=False)
    pytest.skip(reason)


def _sudo_prefix():
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


SUDO = _sudo_prefix()


def privileged(*cmd):
    """cmd as root: as it is when the tests run as root, through sudo -n when
    they run as a user who may (README: the suite may run that way)."""
    require(SUDO is not None, f"{cmd[0]} needs root: run the tests as root or as a user with passwordless sudo")
    return SUDO + list(cmd)


def as_this_user():
    """Put after `ip netns exec NS` run through sudo: drops back to the test's
    own user, so the processes it starts are ours to signal."""
    if not SUDO:
        return []
    return ["setpriv", f"--reuid={os.getuid()}", f"--regid={os.getgid()}", "--clear-groups"]


def raise_open_files(n):
    """Lets this process hold n descriptors: raises the soft limit up to the
    hard one (a user's login shell often starts at 1024)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        require(hard == resource.RLIM_INFINITY or hard >= n, f"needs {n} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Polls predicate until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = predicate()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last_exc = e
        time.sleep(interval)  # the poll interval, bounded by the deadline above
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


def terminate(proc, timeout=20):
    """SIGTERM, then SIGKILL if it does not exit within timeout."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Levee:
    def __init__(self, data_dir, extra_args=(), env=None, port=None, password=None, prefix=(), io_threads=2):
        """prefix: a command that starts levee (taskset, a cgroup join);
        io_threads: --io-threads, 0 for levee's own choice."""
        self.data_dir = data_dir
        self.prefix = list(prefix)
        self.io_threads = io_threads
        self.password = password
        self.port = port or free_port()
        self.http_port = free_port()
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(data_dir), f"levee-{self.port}.log")

    def args(self):
        return self.prefix + [LEVEE, "serve", "--port", str(self.port), "--http-port", str(self.http_port),
                              "--data-dir", self.data_dir, "--io-threads", str(self.io_threads)] + self.extra_args

    def start(self, wait=True):
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"levee exited with {self.proc.returncode}: {self.read_log()[-2000:]}")
            return self.client().ping()
        wait_until(up, timeout, what=f"levee on port {self.port}")

    def client(self, parser_class=None, **kw):
        kw.setdefault("socket_timeout", 10)
        if self.password is not None:
            kw.setdefault("password", self.password)
        if parser_class is not None:  # redis-py 4.3 takes it on the pool
            pool = redis.ConnectionPool(host="127.0.0.1", port=self.port, parser_class=parser_class, **kw)
            return redis.Redis(connection_pool=pool)
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        terminate(self.proc)
        if getattr(self, "log", None):
            self.log.close()
        return self.proc.returncode if self.proc else None

    def run_cli(self, *args, input=None):
        return subprocess.run(["redis-cli", "-p", str(self.port)] + list(args), input=input,
                              capture_output=True, timeout=30)


@pytest.fixture
def tmpdir_path():
    d = tempfile.mkdtemp(prefix="levee-it-")
    yield d
    if os.environ.get("KEEP_TEST_DIRS"):  # logs and data kept for a post-mortem
        print(f"\nkept {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def server_factory(tmpdir_path):
    started = []

    def make(extra_args=(), env=None, data_dir=None, start=True, port=None, password=None):
        s = Levee(data_dir or os.path.join(tmpdir_path, f"data{len(started)}"), extra_args, env, port, password)
        started.append(s)
        if start:
            s.start()
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def server(server_factory):
    return server_factory()


def run_levee(*args, timeout=60, env=None):
    return subprocess.run([LEVEE] + list(args), capture_output=True, timeout=timeout, env=env)


def serve_refused(data_dir, *flags):
    """Starts `levee serve` with flags that must stop start-up; returns its stderr."""
    rep = run_levee("serve", "--data-dir", data_dir, "--port", "0", "--http-port", "0", *flags, timeout=20)
    assert rep.returncode == 2, rep
    return rep.stderr.decode()


def mem_total_bytes():
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) * 1024


@pytest.fixture
def netns_pair():
    """A namespace joined to this one by a veth pair: 10.213.7.1 here,
    10.213.7.2 inside. Removed afterwards."""
    require(shutil.which("ip") and shutil.which("iptables"), "needs iproute2 and iptables to build a network namespace")
    tag = f"{os.getpid() % 10000}"
    ns, host_if, ns_if = f"lvr{tag}", f"lvh{tag}", f"lvn{tag}"

    def sh(*cmd):
        subprocess.run(privileged(*cmd), check=True, capture_output=True, timeout=30)

    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", ns)
        sh("ip", "addr", "add", "10.213.7.1/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", "10.213.7.2/30", "dev", ns_if)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, sh
    finally:
        subprocess.run(privileged("ip", "link", "del", host_if), capture_output=True, timeout=30)
        subprocess.run(privileged("ip", "netns", "del", ns), capture_output=True, timeout=30)
