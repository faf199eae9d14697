"""levee's Kubernetes overlays run in a simulated cluster (kube_sim.py): the
rendered objects, every pod with its own address and cluster DNS, the
StatefulSet controller's ordering, probes and preStop hooks, with the real
levee, redis-sentinel 7.0 and haproxy 2.6 inside.

Scenarios: first install of each overlay, the primary's pod killed, a
rolling upgrade, every Sentinel and every levee pod restarted, a second
region, a Sentinel cut off during a failover, and the bad inputs a first install meets (a missing Secret, a wrong
password, DNS that does not answer).
"""
import os
import re
import secrets
import threading
import time

import pytest
import redis

from conftest import SUDO, require, wait_until
from kube_sim import Cluster
from test_deploy import overlay

PASSWORD = "k8s-" + secrets.token_hex(8)
MASTER = "levee"
# GCS cannot run here: the bucket is a directory every pod sees at /cloud.
BUCKET = [("gs://BUCKET/levee", "file:///cloud/levee")]


def needs_root():
    require(os.geteuid() == 0 or SUDO is not None, "the simulated cluster needs root (network and mount namespaces)")


def default_secrets(password=PASSWORD):
    return {"levee-auth": {"password": password}, "levee-backup-key": {"key": secrets.token_hex(32)}}


@pytest.fixture
def start(tmp_path):
    """start(overlay name or objects, secrets=..., **kw) -> a running Cluster; all are closed after the test."""
    needs_root()
    made = []

    def make(objs, secrets_data=None, **kw):
        if isinstance(objs, str):
            objs = overlay(objs)
        cloud = kw.pop("cloud", None) or os.path.join(str(tmp_path), "cloud")
        os.makedirs(cloud, exist_ok=True)
        os.chmod(cloud, 0o777)
        c = Cluster(str(tmp_path), objs, default_secrets() if secrets_data is None else secrets_data,
                    substitutions=BUCKET, shared_mounts={"/cloud": cloud}, **kw)
        made.append(c)
        return c.apply()

    yield make
    for c in made:
        c.close()


def client(ip, port=6379, password=PASSWORD, **kw):
    kw.setdefault("socket_timeout", 5)
    kw.setdefault("socket_connect_timeout", 2)
    return redis.Redis(host=ip, port=port, password=password, **kw)


def role(pod, password=PASSWORD):
    try:
        return client(pod.ip, password=password, socket_timeout=2).execute_command("ROLE")[0].decode()
    except (redis.RedisError, OSError):
        return None


def primaries(c):
    return [p for p in c.workload("levee").pods() if p is not None and p.ready and role(p) == "master"]


def sentinel_opinions(c, password=PASSWORD):
    """(host, port) each ready Sentinel names as the primary."""
    out = []
    for p in c.workload("levee-sentinel").pods():
        if p is None or not p.ready:
            continue
        try:
            out.append(tuple(client(p.ip, 26379, password=password, socket_timeout=2).execute_command(
                "SENTINEL", "get-master-addr-by-name", MASTER)))
        except (redis.RedisError, OSError):
            out.append(None)
    return out


def wait_for(c, predicate, timeout, what):
    """wait_until, with the cluster's state when it gives up."""
    try:
        return wait_until(predicate, timeout, interval=0.2, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{c.describe()}") from None


def healthy_replicas(c, sentinel):
    """The replicas this Sentinel could promote: known, up, linked."""
    out = []
    for r in client(sentinel.ip, 26379, socket_timeout=2).execute_command("SENTINEL", "REPLICAS", MASTER):
        d = dict(zip(r[::2], r[1::2]))
        if d[b"flags"] == b"slave" and d[b"master-link-status"] == b"ok":
            out.append(d[b"ip"].decode())
    return out


def fqdn(c, pod_name):
    return f"{pod_name}.levee-headless.{c.namespace}.svc.{c.domain}"


def wait_replicated_up(c, timeout=180):
    """One primary, two ready replicas, three Sentinels agreeing on it, and
    both HAProxy endpoints answering; returns the primary pod."""
    def up():
        levee = c.workload("levee").pods()
        if not all(p is not None and p.ready for p in levee):
            return None
        prim = primaries(c)
        if len(prim) != 1:
            return None
        ops = sentinel_opinions(c)
        want = (fqdn(c, prim[0].name).encode(), b"6379")
        if len(ops) != 3 or any(o != want for o in ops):
            return None
        if any(sorted(healthy_replicas(c, p)) != sorted(fqdn(c, q.name) for q in levee if q is not prim[0])
               for p in c.workload("levee-sentinel").pods()):
            return None  # a Sentinel that cannot promote anyone yet
        if len([p for p in c.workload("levee-haproxy").pods() if p.ready]) < 2:
            return None
        try:  # the endpoint has the primary up
            if endpoint(c, socket_timeout=2).execute_command("ROLE")[0] != b"master":
                return None
        except (redis.RedisError, OSError, IndexError):
            return None
        return prim[0]
    return wait_for(c, up, timeout, "one primary, Sentinels agreeing, endpoints up")


def endpoint(c, service="levee", **kw):
    ip, port = c.endpoint(service)
    return client(ip, port, **kw)


class EndpointLoad:
    """Writes through the `levee` Service as a plain client would: each
    write on a connection it reopens after an error, every acknowledged
    write recorded with its time."""

    def __init__(self, c, prefix="w"):
        self.c = c
        self.prefix = prefix
        self.acked = []
        self.errors = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def run(self):
        i = 0
        conn = None
        while not self.stop_flag.is_set():
            try:
                if conn is None:
                    conn = endpoint(self.c, socket_timeout=3)
                key = f"{self.prefix}:{i}"
                assert conn.set(key, str(i)) is True
                self.acked.append((time.monotonic(), key, str(i)))
                i += 1
            except (redis.RedisError, OSError, IndexError) as e:
                self.errors.append((time.monotonic(), repr(e)))
                conn = None
                self.stop_flag.wait(0.05)  # poll interval while the endpoint has no primary

    def stop(self):
        self.stop_flag.set()
        self.thread.join(15)
        assert not self.thread.is_alive()

    def wait_acks(self, n, timeout=60):
        start = len(self.acked)
        wait_for(self.c, lambda: len(self.acked) >= start + n, timeout, f"{n} more writes through the endpoint "
                 f"(errors so far: {len(self.errors)})")

    def longest_pause(self, since):
        times = [t for t, _, _ in self.acked if t >= since]
        return max((b - a for a, b in zip(times, times[1:])), default=None)

    def missing(self, pod):
        conn = client(pod.ip, socket_timeout=30)
        lost = []
        for start in range(0, len(self.acked), 1000):
            chunk = self.acked[start:start + 1000]
            for (_, k, v), got in zip(chunk, conn.mget([k for _, k, _ in chunk])):
                if got is None or got.decode() != v:
                    lost.append(k)
        return lost


# --- first installs ------------------------------------------------------------------

def test_single_first_install_serves_through_its_service_name(start):
    c = start("single")
    pod = wait_for(c, lambda: (p := c.pod("levee-0")) and p.ready and p, 60, "levee-0 ready")
    assert c.dns.records[fqdn(c, "levee-0")] == [pod.ip]
    conn = endpoint(c)
    assert conn.set("k", "v") and conn.get("k") == b"v"
    assert role(pod) == "master"


def test_cluster_dns_answers_fully_qualified_names_only(start):
    """The simulation's DNS is as strict as CoreDNS: short names exist only
    through a pod's search list, so a config that leans on them fails here."""
    import dns.message
    import dns.query
    import dns.rcode
    c = start("single")
    pod = wait_for(c, lambda: (p := c.pod("levee-0")) and p.ready and p, 60, "levee-0 ready")

    def ask(name):
        r = dns.query.udp(dns.message.make_query(name, "A"), c.dns_ip, timeout=2)
        return dns.rcode.to_text(r.rcode()), [i.address for a in r.answer for i in a]

    assert ask(fqdn(c, "levee-0")) == ("NOERROR", [pod.ip])
    assert ask("levee-0.levee-headless")[0] == "NXDOMAIN"
    assert ask(f"levee-0.levee-headless.{c.namespace}")[0] == "NXDOMAIN"
    # Inside the pod, libc applies the search list (ndots:5).
    status, out = pod.container("levee").exec_in(["getent", "hosts", "levee-0.levee-headless"], 5)
    assert status == 0 and pod.ip in out, out


def test_replicated_first_install_gets_one_primary_and_endpoints_that_stay_up(start):
    c = start("replicated")
    prim = wait_replicated_up(c)
    assert prim.name == "levee-0"
    assert sorted(role(p) for p in c.workload("levee").pods()) == ["master", "slave", "slave"]
    conn = endpoint(c)
    assert conn.set("first", "1") is True
    assert conn.info("server")["tcp_port"] == 6379 and conn.execute_command("ROLE")[0] == b"master"
    wait_until(lambda: endpoint(c, "levee-read").get("first") == b"1", 30, what="the read endpoint serving the write")
    # The endpoints keep working past HAProxy's resolver hold periods
    # (hold nx is 30 s: short names would have put every server in
    # maintenance by now).
    deadline = time.monotonic() + 40
    n = 0
    while time.monotonic() < deadline:
        assert endpoint(c).set(f"steady:{n}", n) is True, c.describe()
        assert endpoint(c, "levee-read").ping()
        n += 1
        time.sleep(1)  # one check a second over the 40 s the defect needed to show
    assert n >= 30


def report(name, value):
    """Figures for docs/benchmarks.md: printed, and appended to $KUBE_REPORT."""
    print(f"\n{name}: {value}")
    path = os.environ.get("KUBE_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(f"{name}: {value}\n")


def sentinel_tilts(c):
    """TILT episodes the Sentinels logged: each stalls a failover 30 s."""
    return sum(p.container("sentinel").log().count("+tilt") for p in c.workload("levee-sentinel").pods())


def config_epoch(c):
    """Sentinel's config epoch for the primary: one more per failover."""
    for p in c.workload("levee-sentinel").pods():
        try:
            info = client(p.ip, 26379, socket_timeout=2).execute_command("SENTINEL", "MASTER", MASTER)
            fields = dict(zip(info[::2], info[1::2])) if isinstance(info, list) else info
            return int(fields[b"config-epoch"] if b"config-epoch" in fields else fields["config-epoch"])
        except (redis.RedisError, OSError, AttributeError):
            continue
    raise AssertionError("no Sentinel answered SENTINEL MASTER")


# --- failures and operations ------------------------------------------------------------

def test_primary_pod_lost_sentinel_promotes_endpoint_follows_and_pod_rejoins_on_a_new_address(start):
    c = start("replicated")
    old = wait_replicated_up(c)
    sts = c.workload("levee")
    load = EndpointLoad(c).start()
    load.wait_acks(300)
    # The primary's node is lost: the pod dies at once (no preStop, no
    # SIGTERM) and the StatefulSet cannot recreate it until it is evicted.
    sts.paused.set()
    lost_at = time.monotonic()
    old.delete(grace=0)
    new = wait_for(c, lambda: (p := primaries(c)) and p[0].name != old.name and p[0], 60,
                   "Sentinel promoting a replica")
    load.wait_acks(300, 60)
    gap = load.longest_pause(lost_at - 1)
    sts.paused.clear()  # evicted: the StatefulSet recreates levee-N elsewhere
    back = wait_for(c, lambda: (p := c.pod(old.name)) is not old and p is not None and p.ready and p, 120,
                    f"{old.name} recreated and ready")
    assert back.ip != old.ip, "the pod came back on the same address; the test proves nothing about following it"
    assert role(back) == "slave"
    assert wait_replicated_up(c) is new
    load.wait_acks(100)
    load.stop()
    assert load.missing(new) == [], "acknowledged writes lost"
    report("kill primary pod: longest write pause through the levee Service (s)", f"{gap:.2f}")
    tilts = sentinel_tilts(c)
    report("kill primary pod: Sentinel TILT episodes", tilts)
    assert gap < (45 if tilts else 30)


def test_rolling_upgrade_switches_the_primary_over_once_and_loses_nothing(start):
    c = start("replicated")
    wait_replicated_up(c)
    epoch = config_epoch(c)
    load = EndpointLoad(c).start()
    load.wait_acks(300)
    began = time.monotonic()
    times = c.workload("levee").rollout(
        lambda t: t["metadata"].setdefault("annotations", {}).update({"kubectl.kubernetes.io/restartedAt": "now"}))
    load.wait_acks(300)
    pause = load.longest_pause(began)
    print(c.describe())  # shown when the test fails
    prim = wait_replicated_up(c)
    load.stop()
    promotions = config_epoch(c) - epoch
    assert promotions <= 1, f"{promotions} promotions in one rolling upgrade"
    assert load.missing(prim) == [], "acknowledged writes lost"
    report("rolling upgrade: promotions", promotions)
    report("rolling upgrade: longest write pause through the levee Service (s)", f"{pause:.2f}")
    report("rolling upgrade: seconds per pod from delete to ready", ", ".join(f"{n} {s:.1f}" for n, s in times))
    # A Sentinel in TILT mode (its timer stalled over 2 s: seen here under
    # CPU pressure while pods restart) ignores requests for 30 s; the
    # switchover then waits it out (the hook allows 45 s).
    tilts = sentinel_tilts(c)
    report("rolling upgrade: Sentinel TILT episodes", tilts)
    assert pause < (45 if tilts else 15)


def test_every_sentinel_restarted_at_once_finds_the_current_primary(start):
    c = start("replicated")
    wait_replicated_up(c)
    # Move the primary off levee-0 first, so "the first" would be wrong.
    sentinel = c.workload("levee-sentinel").pods()[0]
    assert client(sentinel.ip, 26379).execute_command("SENTINEL", "FAILOVER", MASTER) in (b"OK", "OK", True)
    moved = wait_for(c, lambda: (p := primaries(c)) and p[0].name != "levee-0" and p[0], 60, "the switchover")
    wait_replicated_up(c)
    olds = c.workload("levee-sentinel").pods()
    for p in olds:
        p.delete()
    wait_for(c, lambda: all((n := c.pod(p.name)) is not p and n is not None and n.ready for p in olds), 120,
             "every Sentinel recreated and ready")
    assert wait_replicated_up(c) is moved
    assert endpoint(c).set("after-sentinels", "1") is True


def test_every_levee_pod_restarted_at_once_comes_back_with_one_primary(start):
    c = start("replicated")
    wait_replicated_up(c)
    load = EndpointLoad(c).start()
    load.wait_acks(300)
    load.stop()
    olds = c.workload("levee").pods()
    for p in olds:
        p.delete()
    prim = wait_replicated_up(c, timeout=240)
    assert all(c.pod(p.name) is not p for p in olds)
    assert load.missing(prim) == [], "acknowledged writes lost"
    assert endpoint(c).set("after-restart", "1") is True


def first_region_objects(tmp_path):
    """The replicated overlay with the region-endpoint component, as
    docs/kubernetes.md tells a user to build the first region."""
    import subprocess
    d = tmp_path / "first-region"
    d.mkdir()
    rel = os.path.relpath(os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "kubernetes"), d)
    (d / "kustomization.yaml").write_text(f"resources: [{rel}/overlays/replicated]\n"
                                          f"components: [{rel}/components/region-endpoint]\n")
    out = subprocess.run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(d)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import yaml
    return [o for o in yaml.safe_load_all(out.stdout) if o]


def env_of(objs, kind, name, key):
    o = [x for x in objs if x["kind"] == kind and x["metadata"]["name"] == name][0]
    return {e["name"]: e.get("value") for c in o["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}[key]


def test_second_region_replicates_through_the_region_endpoint_and_follows_a_failover(start, tmp_path):
    from test_deploy import make_certs
    first_objs, second_objs = first_region_objects(tmp_path), overlay("second-region")
    lb_name = env_of(second_objs, "Deployment", "levee-upstream", "LEVEE_REGION_NAME")
    lb_host, lb_port = env_of(second_objs, "Deployment", "levee-upstream", "LEVEE_REGION_ADDR").rsplit(":", 1)
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certs(str(certs), server_name=lb_name)

    def tls(side):
        return {f: (certs / side / f).read_text() for f in ("tls.pem", "ca.crt")}

    s1 = dict(default_secrets(), **{"levee-region-tls": tls("region")})
    s2 = dict(default_secrets(), **{"levee-region-tls": tls("upstream")})
    r1 = start(first_objs, s1, namespace="levee")
    r2 = start(second_objs, s2, namespace="levee")
    r1.publish("levee-region-endpoint", lb_host, r2)
    wait_replicated_up(r1)
    assert c_port(r1, "levee-region-endpoint") == int(lb_port)
    def second_ready():
        pods = r2.workload("levee").pods()
        return all(p is not None and p.ready for p in pods) and pods
    second = wait_for(r2, second_ready, 180, "the second region's levee pods ready")
    assert endpoint(r1).set("cross", "1") is True
    for p in second:
        wait_for(r2, lambda p=p: client(p.ip).get("cross") == b"1", 30, f"{p.name} receiving the first region's write")
        assert client(p.ip).info("replication")["slave_priority"] == 0
    # The first region's Sentinels know exactly its own two replicas, under
    # its own names: the second region's (levee-N.<its headless Service>)
    # are neither mistaken for them nor promotable.
    own = sorted(fqdn(r1, p.name) for p in r1.workload("levee").pods() if role(p) == "slave")
    theirs = sorted(f"{p.name}.{r2.workload('levee').obj['spec']['serviceName']}.levee.svc.cluster.local"
                    for p in second if p.name.endswith("-0"))  # the one replicating across
    for sp in r1.workload("levee-sentinel").pods():
        listed = [dict(zip(r[::2], r[1::2])) for r in client(sp.ip, 26379).execute_command("SENTINEL", "REPLICAS", MASTER)]
        assert sorted(d[b"ip"].decode() for d in listed) == sorted(own + theirs), listed
        for d in listed:
            if d[b"ip"].decode() in theirs:  # unreachable from here and never a candidate
                assert re.search(rb"s_down|disconnected", d[b"flags"]) or d[b"slave-priority"] == b"0", d
    assert sorted(healthy_replicas(r1, r1.workload("levee-sentinel").pods()[0])) == own

    # The first region's primary is lost; the region endpoint follows the
    # promotion and the pod's new address.
    old = primaries(r1)[0]
    sts = r1.workload("levee")
    sts.paused.set()
    old.delete(grace=0)
    wait_for(r1, lambda: (p := primaries(r1)) and p[0].name != old.name, 60, "Sentinel promoting a replica")
    sts.paused.clear()
    wait_for(r1, lambda: (p := r1.pod(old.name)) is not old and p is not None and p.ready, 120,
             f"{old.name} back on a new address")
    wait_replicated_up(r1)
    wait_for(r1, lambda: endpoint(r1).set("after-failover", "2"), 30, "writes in the first region")
    for p in second:
        wait_for(r2, lambda p=p: client(p.ip).get("after-failover") == b"2", 60,
                 f"{p.name} following the new primary through the region endpoint")


def c_port(c, service):
    return [s for s in c.services if s["metadata"]["name"] == service][0]["spec"]["ports"][0]["port"]


# --- bad input ---------------------------------------------------------------------

def test_missing_secret_holds_every_pod_until_it_exists_then_one_primary(start):
    s = default_secrets()
    auth = s.pop("levee-auth")
    c = start("replicated", s)
    pod = wait_for(c, lambda: (p := c.pod("levee-0")) and any('secret "levee-auth" not found' in e for _, e in p.events)
                   and p, 30, "levee-0 waiting for its Secret")
    assert pod.phase == "Pending" and not any(ct.proc for ct in pod.inits + pod.containers)
    for sp in c.workload("levee-sentinel").pods():
        assert sp.phase == "Pending"
    c.secrets["levee-auth"] = auth  # kubectl create secret ...
    first = wait_for(c, lambda: (p := c.pod("levee-0")).ready and p, 90, "levee-0 started once the Secret exists")
    assert role(first) == "master" and primaries(c) == [first]


def test_wrong_password_stops_the_init_step_and_never_makes_a_second_primary(start):
    c = start("replicated")
    old = wait_replicated_up(c)
    # The Secret now holds a password the running Sentinels do not know.
    c.secrets["levee-auth"] = {"password": "not-the-one-sentinel-has"}
    sts = c.workload("levee")
    sts.paused.set()
    old.delete(grace=0)
    new = wait_for(c, lambda: (p := primaries(c)) and p[0].name != old.name and p[0], 60, "a promoted replica")
    sts.paused.clear()
    back = wait_for(c, lambda: (p := c.pod(old.name)) is not old and p is not None and p.container("configure").restarts
                    >= 2 and p, 60, f"{old.name}'s init step failing")
    log = back.container("configure").log()
    assert "no Sentinel named the primary" in log and "WRONGPASS" in log, log
    assert not back.ready and not any(ct.proc for ct in back.containers), "levee started without a role"
    assert [p.name for p in primaries(c)] == [new.name]
    c.secrets["levee-auth"] = {"password": PASSWORD}  # put right: the next retry starts it as a replica
    wait_for(c, lambda: (p := c.pod(old.name)).ready and role(p) == "slave", 60, f"{old.name} rejoining")



def cut_off(pod, others):
    """Drops every packet between pod and the others (a partition inside the
    cluster network); the node and pods created later still reach it.
    Returns the function that heals it."""
    from kube_pod import pod_netns
    from kube_sim import sh
    rules = [r for o in others for r in (("INPUT", "-s", o.ip, "-j", "DROP"), ("OUTPUT", "-d", o.ip, "-j", "DROP"))]
    for r in rules:
        sh("ip", "netns", "exec", pod_netns(pod), "iptables", "-A", *r)
    return lambda: [sh("ip", "netns", "exec", pod_netns(pod), "iptables", "-D", *r) for r in rules]


SENTINEL_ALERTS = ("LeveeSentinelDown", "LeveeSentinelCannotFailOver", "LeveeSentinelsDisagree",
                   "LeveeSentinelNoReplicaToPromote", "LeveeSentinelTilt")


def test_a_sentinel_that_missed_the_failover_does_not_make_the_old_primary_a_second_one(start, tmp_path):
    """The old primary's pod comes back while the first Sentinel it asks was
    cut off during the failover and still names it: the init step goes by
    the newest configuration and starts it as a replica. A real Prometheus
    scraping the Sentinels' exporters (the PodMonitor's targets) with the
    PrometheusRule's alerts shows the partition."""
    from kube_prom import Prometheus
    c = start("replicated")
    old = wait_replicated_up(c)
    prom = Prometheus(c, str(tmp_path), ["levee-sentinel"])
    try:
        sentinel_alerts_healthy_then_partitioned(c, prom, old)
    finally:
        prom.close()


def sentinel_alerts_healthy_then_partitioned(c, prom, old):
    primary = f"{fqdn(c, old.name)}:6379"
    wait_for(c, lambda: sorted(m["pod"] for m, v in prom.query(
        f'redis_sentinel_master_status{{master_address="{primary}"}} == 1')) ==
        [p.name for p in c.workload("levee-sentinel").pods()], 30, "every Sentinel's exporter naming the primary")
    assert prom.query('redis_sentinel_master_ok_slaves') and all(v == 2 for _, v in prom.query(
        'redis_sentinel_master_ok_slaves'))
    # LeveeSentinelTilt aside: a TILT here (the simulation's pod churn on two
    # cores) is real, and with `for:` dropped its alert fires at once.
    assert not set(prom.alerts()) & (set(SENTINEL_ALERTS) - {"LeveeSentinelTilt"}), prom.alerts()
    stale = c.pod("levee-sentinel-0")  # first in LEVEE_SENTINELS: the one configure.sh asks first
    heal = cut_off(stale, [p for p in c.workload("levee").pods() + c.workload("levee-sentinel").pods()
                           if p is not stale])
    try:
        sts = c.workload("levee")
        sts.paused.set()
        old.delete(grace=0)
        new = wait_for(c, lambda: (p := primaries(c)) and p[0].name != old.name and p[0], 60, "a promoted replica")
        others = [p for p in c.workload("levee-sentinel").pods() if p is not stale]
        want = [fqdn(c, new.name).encode(), b"6379"]
        wait_for(c, lambda: all(client(p.ip, 26379, socket_timeout=2).execute_command(
            "SENTINEL", "get-master-addr-by-name", MASTER) == want for p in others), 60, "the majority naming it")
        assert client(stale.ip, 26379).execute_command("SENTINEL", "get-master-addr-by-name", MASTER)[0] == \
            fqdn(c, old.name).encode(), "the cut-off Sentinel should still name the old primary"
        sts.paused.clear()
        back = wait_for(c, lambda: (p := c.pod(old.name)) is not old and p is not None and p.ready and p, 90,
                        f"{old.name} back")
        assert role(back) == "slave", back.container("configure").log()
        assert [p.name for p in primaries(c)] == [new.name]
        assert f"names {fqdn(c, old.name)}:6379 (config epoch 0)" in back.container("configure").log()
        wait_for(c, lambda: endpoint(c).set("after-failover", "1"), 30, "writes through the endpoint")
        wait_for(c, lambda: client(back.ip).get("after-failover") == b"1", 30, f"{old.name} following the new primary")
        # What the operator is shown meanwhile.
        firing = wait_for(c, lambda: (a := prom.alerts()) and "LeveeSentinelsDisagree" in a and
                          "LeveeSentinelCannotFailOver" in a and a, 30, "the partition's alerts")
        assert [a["namespace"] for a in firing["LeveeSentinelsDisagree"]] == [c.namespace]
        assert [a["pod"] for a in firing["LeveeSentinelCannotFailOver"]] == [stale.name], firing
    finally:
        heal()
    wait_for(c, lambda: not set(prom.alerts()) & {"LeveeSentinelsDisagree", "LeveeSentinelCannotFailOver"}, 60,
             "the alerts clearing once the partition heals")


def test_the_sentinel_leading_a_failover_cut_off_midway_the_others_finish_it(start):
    """The primary's pod is lost, and the Sentinel that starts the failover
    is cut off from every pod as it starts (its node fails, or it stalls in
    TILT): the promotion it may have sent is never confirmed. The other two
    Sentinels start their own failover after twice failover-timeout and
    finish it: one primary they both name, under a newer config epoch, with
    the other replica following it. With failover-timeout at Redis' usual
    minute this takes over two minutes, during which no Sentinel names a
    primary that is up."""
    c = start("replicated")
    old = wait_replicated_up(c)
    sentinels = c.workload("levee-sentinel").pods()
    marks = {p.name: len(p.container("sentinel").log()) for p in sentinels}
    sts = c.workload("levee")
    sts.paused.set()
    lost_at = time.monotonic()
    old.delete(grace=0)

    def first_to_try():
        for p in sentinels:
            if "+try-failover" in p.container("sentinel").log()[marks[p.name]:]:
                return p
        return None
    leader = wait_until(first_to_try, 60, interval=0.02, what="a Sentinel starting the failover")
    heal = cut_off(leader, [p for p in c.workload("levee").pods() + sentinels if p is not leader and p is not old])
    try:
        others = [p for p in sentinels if p is not leader]
        levee = [p for p in c.workload("levee").pods() if p is not None and p is not old]

        def finished():
            views = [dict(zip(*[iter(client(p.ip, 26379, socket_timeout=2).execute_command(
                "SENTINEL", "MASTER", MASTER))] * 2)) for p in others]
            names = {(v[b"ip"].decode(), int(v[b"config-epoch"])) for v in views}
            if len(names) != 1:
                return None
            (name, epoch), = names
            prim = [p for p in levee if fqdn(c, p.name) == name]
            if epoch < 1 or not prim or role(prim[0]) != "master":
                return None
            rest = [p for p in levee if p is not prim[0]]
            if not all(client(p.ip).info("replication").get("master_host") == name and
                       client(p.ip).info("replication").get("master_link_status") == "up" for p in rest):
                return None
            return prim[0]
        new = wait_for(c, finished, 90, "the other Sentinels finishing the failover, the other replica following")
        took = time.monotonic() - lost_at
        wait_for(c, lambda: [p.name for p in primaries(c)] == [new.name], 30, f"{new.name} the one ready primary")
        report("failover whose leading Sentinel is cut off: primary lost to a confirmed new one (s)", f"{took:.1f}")
    finally:
        heal()
    sts.paused.clear()
    assert wait_replicated_up(c) is new


def test_dns_not_answering_stops_the_init_steps_and_the_install_completes_when_it_does(start):
    c = start("replicated")
    c.dns.pause()  # the cluster DNS answers nothing
    try:
        # Each lookup waits out the resolver's timeouts (5 s, two tries) for
        # each Sentinel in turn before the step gives up.
        pod = wait_for(c, lambda: (p := c.pod("levee-0")) and p.inits and p.inits[0].restarts >= 1 and p, 180,
                       "levee-0's init step failing without DNS")
        log = pod.container("configure").log()
        assert "no Sentinel named the primary" in log and "levee-sentinel-0" in log, log
        assert not any(ct.proc for ct in pod.containers) and primaries(c) == []
    finally:
        c.dns.resume()
    first = wait_for(c, lambda: (p := c.pod("levee-0")).ready and p, 120, "levee-0 started once DNS answers")
    assert role(first) == "master" and primaries(c) == [first]
