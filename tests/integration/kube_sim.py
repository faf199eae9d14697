"""A simulated Kubernetes cluster that runs levee's rendered manifests.

What a cluster does and the manifests depend on, built from real parts:
- the objects come from `kubectl kustomize` of an overlay, never from values
  copied into the tests;
- the pod network: a network namespace holding a bridge; every pod is a
  network namespace with its own address on it (kube_pod.py); the test
  process reaches pods from the node, as the kubelet's probes do;
- cluster DNS: Debian's dnsmasq answering like CoreDNS, with fully
  qualified records only: `<svc>.<ns>.svc.<domain>` and, for a headless
  Service, `<hostname>.<svc>.<ns>.svc.<domain>` per pod (not-ready pods only
  with publishNotReadyAddresses); other names get NXDOMAIN; TTL 5 s;
- controllers: StatefulSet (OrderedReady or Parallel, pods recreated under
  the same name, rolling updates from the highest ordinal, each waiting for
  the last to be ready), Deployment (pods under generated names);
- Services with a cluster IP are not given a virtual IP (there is no
  kube-proxy): their name resolves to the addresses of their ready
  endpoints, which is where kube-proxy would send the connection.

Two clusters can be joined (a second region): their pod networks route to
each other and each may answer names of the other's load balancers.

Only the test's thread calls the public methods; kubelet threads call
changed().
"""
import itertools
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time

import yaml

from conftest import LEVEE, ROOT, privileged, require, wait_until
from kube_pod import Pod, send_signal

DEPLOY = os.path.join(ROOT, "deploy")
_net_index = itertools.count(1)


def sh(*cmd):
    out = subprocess.run(privileged(*cmd), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"{' '.join(cmd)}: {out.stderr}"
    return out.stdout


class Image:
    """What a container image provides: entrypoint/cmd, its user and its own
    files (bound over the host's root at their paths)."""

    def __init__(self, entrypoint=(), cmd=(), uid=0, gid=0, files=None, haproxy=False):
        self.entrypoint, self.cmd, self.uid, self.gid = list(entrypoint), list(cmd), uid, gid
        self.files = files or {}
        self.haproxy = haproxy

    def rewrite(self, argv):
        """What the image's docker-entrypoint.sh does to its arguments (the
        official haproxy image: "-f x" becomes "haproxy -W -db -f x")."""
        if not argv or argv[0] != "docker-entrypoint.sh":
            return argv
        argv = argv[1:]
        if self.haproxy:
            if argv and argv[0].startswith("-"):
                argv = ["haproxy"] + argv
            if argv and argv[0] == "haproxy":
                argv = ["haproxy", "-W", "-db"] + argv[1:]
        return argv


def levee_image():
    """The levee image from deploy/docker/Dockerfile: its COPY lines into the
    runtime stage, its USER, ENTRYPOINT and CMD."""
    text = open(os.path.join(DEPLOY, "docker", "Dockerfile")).read()
    runtime = text[text.rindex("\nFROM "):]
    files = {}
    for src, dst in re.findall(r"^COPY (?:--from=\S+ )?(\S+) (\S+)$", runtime, re.M):
        if src == "/src/build/levee":
            files[dst] = LEVEE
        elif src.endswith("/"):
            files[dst.rstrip("/")] = os.path.join(ROOT, src.rstrip("/"))
        else:
            files[dst] = os.path.join(ROOT, src)
    user = re.search(r"^USER (\d+):(\d+)$", runtime, re.M)
    entry = yaml.safe_load(re.search(r"^ENTRYPOINT (.*)$", runtime, re.M).group(1))
    cmd = yaml.safe_load(re.search(r"^CMD (.*)$", runtime, re.M).group(1))
    return Image(entry, cmd, int(user.group(1)), int(user.group(2)), files)


class Net:
    """The pod network of one cluster: a namespace with a bridge, a link
    from the node (this process), and pod namespaces joined to the bridge."""

    def __init__(self, cluster):
        self.cluster = cluster
        # A /16 no route of this host covers yet (a cluster another run left
        # behind would take its packets).
        routed = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
        while True:
            self.index = next(_net_index)
            self.prefix = f"10.{230 + self.index % 20}"
            if f"{self.prefix}.0.0/16" not in routed or self.index > 40:
                break
        self.ns = f"{cluster.tag}-net"
        self.host_if = f"{cluster.tag}h"
        self.gateway = f"{self.prefix}.0.1"
        self.hosts = itertools.count(1)
        self.lock = threading.Lock()
        self.dead = []  # namespaces of pods that are gone, deleted at close()
        sh("ip", "netns", "add", self.ns)
        self.up = True
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.ns, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.ns, "addr", "add", f"{self.gateway}/16", "dev", "br0")
        sh("ip", "-n", self.ns, "link", "set", "br0", "up")
        sh("ip", "-n", self.ns, "addr", "add", f"{self.prefix}.0.10/32", "dev", "lo")
        sh("ip", "netns", "exec", self.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "node", "netns", self.ns)
        sh("ip", "-n", self.ns, "link", "set", "node", "master", "br0", "up")
        sh("ip", "addr", "add", f"{self.prefix}.0.2/16", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")

    def next_ip(self):
        n = next(self.hosts)
        return f"{self.prefix}.{1 + n // 250}.{n % 250 + 1}"

    def add_pod(self, pod):
        ns = f"{self.cluster.tag}-{pod.uid}"
        with self.lock:
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", self.ns, "link", "add", f"p{pod.uid}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.ns, "link", "set", f"p{pod.uid}", "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{pod.ip}/16", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", self.gateway)
        pod.has_net = True

    def remove_pod(self, pod):
        """The pod's address goes away at once (its link down: as from a
        vanished pod, connections to it get no answer); the namespace itself
        is deleted with the cluster. Tearing a namespace down holds the
        kernel's network lock for seconds, which stalls every process that
        resolves a name meanwhile (glibc asks the kernel for the interfaces)
        and sent Sentinel into TILT mode; a real node tears down the pods of
        other nodes never."""
        if getattr(pod, "has_net", False):
            with self.lock:
                subprocess.run(privileged("ip", "-n", self.ns, "link", "set", f"p{pod.uid}", "down"),
                               capture_output=True, timeout=30)
                self.dead.append(f"{self.cluster.tag}-{pod.uid}")
            pod.has_net = False

    def join(self, other):
        """Routes between two clusters' pod networks (another region's VPC)."""
        a, b = f"{self.cluster.tag}x", f"{other.cluster.tag}x"
        sh("ip", "-n", self.ns, "link", "add", a, "type", "veth", "peer", "name", b, "netns", other.ns)
        link = f"10.229.{self.index % 250}"
        sh("ip", "-n", self.ns, "addr", "add", f"{link}.1/30", "dev", a)
        sh("ip", "-n", other.ns, "addr", "add", f"{link}.2/30", "dev", b)
        sh("ip", "-n", self.ns, "link", "set", a, "up")
        sh("ip", "-n", other.ns, "link", "set", b, "up")
        sh("ip", "-n", self.ns, "route", "add", f"{other.prefix}.0.0/16", "via", f"{link}.2")
        sh("ip", "-n", other.ns, "route", "add", f"{self.prefix}.0.0/16", "via", f"{link}.1")

    def close(self):
        for ns in self.dead:
            subprocess.run(privileged("ip", "netns", "del", ns), capture_output=True, timeout=30)
        self.dead = []
        if self.up:
            subprocess.run(privileged("ip", "netns", "del", self.ns), capture_output=True, timeout=30)
            subprocess.run(privileged("ip", "link", "del", self.host_if), capture_output=True, timeout=30)
            self.up = False
        # The kernel tears the namespaces down in the background, holding its
        # network lock: wait until a link query answers promptly again, so
        # the next cluster does not start inside that stall.
        quick, deadline = 0, time.monotonic() + 60
        while quick < 3 and time.monotonic() < deadline:
            t = time.monotonic()
            subprocess.run(["ip", "-o", "link", "show", "lo"], capture_output=True, timeout=60)
            quick = quick + 1 if time.monotonic() - t < 0.05 else 0
            time.sleep(0.1)  # poll interval while the kernel cleans up


class Dns:
    """The cluster's DNS server (dnsmasq) and its records, rewritten whole on
    every change; dnsmasq rereads the file (inotify) on its own."""

    def __init__(self, cluster):
        require(shutil.which("dnsmasq") is not None, "dnsmasq (Debian's dnsmasq-base) is not installed")
        self.cluster = cluster
        self.dir = os.path.join(cluster.root, "dns")
        os.makedirs(self.dir)
        self.records = {}
        self.write()
        log = open(os.path.join(cluster.root, "dnsmasq.log"), "ab")
        self.proc = subprocess.Popen(privileged(
            "ip", "netns", "exec", cluster.net.ns, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
            "--bind-interfaces", f"--listen-address={cluster.dns_ip}", f"--hostsdir={self.dir}", "--local=/#/",
            "--local-ttl=5", "--neg-ttl=5", "--user=root", "--pid-file=", "--log-facility=-",
            # Every query logged to a file on disk: for debugging only (a
            # write that waits behind the disk stalls the cluster's DNS).
            *(["--log-queries"] if os.environ.get("KUBE_SIM_DNS_LOG") else [])),
            stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def pause(self):
        """The cluster DNS stops answering: its queries are dropped (as from a
        CoreDNS that is down or cut off; stopping dnsmasq itself would, through
        sudo, stop and then lose the sudo process wrapping it)."""
        for proto in ("udp", "tcp"):
            sh("ip", "netns", "exec", self.cluster.net.ns, "iptables", "-I", "INPUT", "-p", proto, "-d",
               self.cluster.dns_ip, "--dport", "53", "-j", "DROP")

    def resume(self):
        for proto in ("udp", "tcp"):
            sh("ip", "netns", "exec", self.cluster.net.ns, "iptables", "-D", "INPUT", "-p", proto, "-d",
               self.cluster.dns_ip, "--dport", "53", "-j", "DROP")

    def write(self):
        tmp = os.path.join(self.cluster.root, "dns.tmp")
        with open(tmp, "w") as f:
            for name, ips in sorted(self.records.items()):
                for ip in ips:
                    f.write(f"{ip} {name}\n")
        os.rename(tmp, os.path.join(self.dir, "records"))

    def set(self, records):
        if records != self.records:
            self.records = records
            self.write()

    def close(self):
        if self.proc.poll() is None:
            send_signal(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)


class Cluster:
    """One simulated cluster running the objects of one rendered overlay."""

    def __init__(self, root, objs, secrets_data, namespace="levee", domain="cluster.local",
                 substitutions=(), shared_mounts=None):
        require(shutil.which("kubectl") is not None, "kubectl is not installed: the manifests cannot be rendered")
        self.tag = "lk" + secrets.token_hex(2)
        self.root = os.path.join(root, self.tag)
        os.makedirs(os.path.join(self.root, "pods"))
        self.objs = objs
        self.namespace = namespace
        self.domain = domain
        self.secrets = dict(secrets_data)
        self.substitutions = list(substitutions)
        self.shared_mounts = dict(shared_mounts or {})
        self.config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}
        self.services = [o for o in objs if o["kind"] == "Service"]
        self.external = {}  # name -> function returning addresses (another region's load balancer)
        self.peers = []  # clusters whose DNS answers names of this one (external)
        self.images = {}
        self.pods = {}  # name -> Pod (the current object under that name)
        self.all_pods = []
        self.uids = itertools.count(1)
        self.lock = threading.RLock()
        self.net = Net(self)
        self.dns_ip = f"{self.net.prefix}.0.10"
        self.dns = Dns(self)
        self.controllers = []
        self.stopping = threading.Event()
        self.claims_dir = os.path.join(self.root, "claims")

    # --- used by pods ---------------------------------------------------------------

    def substitute(self, text):
        for a, b in self.substitutions:
            text = text.replace(a, b)
        return text

    def image(self, ref):
        name = ref.split("@")[0].rsplit(":", 1)[0]
        if name not in self.images:
            if name.endswith("/levee") or name == "levee":
                self.images[name] = levee_image()
            elif name == "haproxy":
                require(shutil.which("haproxy") is not None, "haproxy is not installed")
                self.images[name] = Image(["docker-entrypoint.sh"], ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"],
                                          uid=99, gid=99, haproxy=True)
            elif name == "redis":
                require(shutil.which("redis-sentinel") is not None, "redis-sentinel is not installed")
                self.images[name] = Image(["docker-entrypoint.sh"], ["redis-server"], uid=999, gid=999)
            elif name.endswith("/redis_exporter"):
                # oliver006/redis_exporter: the binary at /redis_exporter, USER 59000:59000.
                exporter = shutil.which("prometheus-redis-exporter")
                require(exporter is not None, "prometheus-redis-exporter is not installed")
                self.images[name] = Image(["/redis_exporter"], uid=59000, gid=59000, files={"/redis_exporter": exporter})
            else:
                raise AssertionError(f"image {ref} is not simulated")
        return self.images[name]

    def changed(self):
        """A pod's address or readiness changed: DNS follows."""
        with self.lock:
            records = {}
            live = [p for p in self.pods.values() if getattr(p, "has_net", False) and p.phase != "Gone"]
            for svc in self.services:
                sel = svc["spec"].get("selector") or {}
                if not sel:
                    continue
                name = svc["metadata"]["name"]
                headless = svc["spec"].get("clusterIP") == "None"
                not_ready_ok = headless and svc["spec"].get("publishNotReadyAddresses", False)
                fq = f"{name}.{self.namespace}.svc.{self.domain}"
                for p in live:
                    if any(p.labels.get(k) != v for k, v in sel.items()):
                        continue
                    if not (p.ready or not_ready_ok):
                        continue
                    records.setdefault(fq, []).append(p.ip)
                    if headless and p.subdomain == name:
                        records.setdefault(f"{p.hostname}.{fq}", []).append(p.ip)
            for ext, addresses in self.external.items():
                ips = addresses()
                if ips:
                    records[ext] = ips
            self.dns.set(records)
        for peer in self.peers:
            peer.changed()

    def publish(self, service, name, other):
        """Another cluster (region) resolves `name` to this cluster's ready
        endpoints of `service` (an internal load balancer in the VPC's DNS);
        the two pod networks are joined."""
        self.net.join(other.net)
        other.external[name] = lambda: self.service_ips(service)
        self.peers.append(other)
        self.changed()

    def service_ips(self, name):
        with self.lock:
            return list(self.dns.records.get(f"{name}.{self.namespace}.svc.{self.domain}", []))

    def endpoint(self, service, port_index=0):
        """Where a connection to the Service's port lands: a ready endpoint's
        address and the container port its targetPort names. IndexError when
        the Service has no ready endpoint (a refused connection)."""
        svc = [s for s in self.services if s["metadata"]["name"] == service][0]
        sp = svc["spec"]["ports"][port_index]
        with self.lock:
            ready = [p for p in self.pods.values() if p.ready and p.ip in self.service_ips(service)]
        pod = ready[0]
        target = sp.get("targetPort", sp["port"])
        if isinstance(target, int):
            return pod.ip, target
        for c in pod.containers:
            for cp in c.spec.get("ports", []):
                if cp.get("name") == target:
                    return pod.ip, cp["containerPort"]
        raise AssertionError(f"Service {service}: targetPort {target} is not a port of {pod.name}")

    # --- controllers --------------------------------------------------------------

    def create_pod(self, name, template, owner, claims=()):
        uid = next(self.uids)
        pod = Pod(self, name, template, owner, uid, self.net.next_ip(), claims)
        with self.lock:
            self.pods[name] = pod
            self.all_pods.append(pod)
        pod.start()
        return pod

    def apply(self):
        """`kubectl apply`: the workloads' controllers start."""
        for o in self.objs:
            if o["kind"] == "StatefulSet":
                self.controllers.append(StatefulSet(self, o))
            elif o["kind"] == "Deployment":
                self.controllers.append(Deployment(self, o))
        for c in self.controllers:
            c.thread.start()
        return self

    def workload(self, name):
        return [c for c in self.controllers if c.name == name][0]

    def pod(self, name):
        with self.lock:
            return self.pods.get(name)

    def ready_pods(self, prefix):
        with self.lock:
            return sorted((p for n, p in self.pods.items() if n.startswith(prefix) and p.ready), key=lambda p: p.name)

    def describe(self):
        """What `kubectl get pods` and `describe` would show, for failure messages."""
        lines = []
        with self.lock:
            pods = list(self.pods.values())
            gone = [p for p in self.all_pods if p not in pods]
        for p in gone:  # what their preStop hooks said
            lines += [f"(deleted {p.name}) {e[:400]!r}" for _, e in p.events if e.startswith("preStop")]
        for p in pods:
            lines.append(f"{p!r} restarts={[c.restarts for c in p.inits + p.containers]} "
                         f"events={[e for _, e in p.events[-4:]]}")
            for c in p.inits + p.containers:
                if os.environ.get("KUBE_SIM_LOGS"):  # every container's last lines, when debugging
                    lines += [f"    {c.name}: {ln[:300]}" for ln in c.log().splitlines()[-int(os.environ["KUBE_SIM_LOGS"]):]]
                elif c.restarts:
                    tail = [ln for ln in c.log().splitlines() if not ln.startswith("--- ")][-3:]
                    lines += [f"    {c.name}: {ln[:300]}" for ln in tail]
                elif c.name == "sentinel":  # its failover events (+sdown, +elected-leader, -failover-abort…)
                    events = [ln for ln in c.log().splitlines() if re.search(r" [#*] [-+]", ln)][-25:]
                    lines += [f"    {c.name}: {ln[:300]}" for ln in events]
        return "\n".join(lines)

    def logs(self, pod_name, container):
        return self.pod(pod_name).container(container).log()

    def close(self):
        self.stopping.set()
        for c in self.controllers:
            c.thread.join(timeout=5)
        with self.lock:
            pods = list(self.all_pods)
        for p in pods:
            p.delete(grace=0)
        for p in pods:
            if p.thread.is_alive() or p.thread.ident is not None:
                p.deleted.wait(30)
        self.dns.close()
        self.net.close()


class StatefulSet:
    """The StatefulSet controller for one object."""

    def __init__(self, cluster, obj):
        self.cluster = cluster
        self.obj = obj
        self.name = obj["metadata"]["name"]
        self.replicas = obj["spec"].get("replicas", 1)
        self.ordered = obj["spec"].get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        self.template = obj["spec"]["template"]
        self.revision = 0
        self.pod_revision = {}
        self.paused = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, name=f"sts-{self.name}")

    def make_template(self, ordinal):
        t = yaml.safe_load(yaml.safe_dump(self.template))
        t["spec"]["hostname"] = f"{self.name}-{ordinal}"
        t["spec"]["subdomain"] = self.obj["spec"]["serviceName"]
        t["metadata"].setdefault("labels", {})["statefulset.kubernetes.io/pod-name"] = f"{self.name}-{ordinal}"
        return t

    def claims(self, pod_name):
        return {c["metadata"]["name"]: os.path.join(self.cluster.claims_dir, f"{c['metadata']['name']}-{pod_name}")
                for c in self.obj["spec"].get("volumeClaimTemplates", [])}

    def run(self):
        while not self.cluster.stopping.is_set():
            if not self.paused.is_set():
                self.reconcile()
            self.cluster.stopping.wait(0.1)  # the controller's resync tick

    def reconcile(self):
        for i in range(self.replicas):
            name = f"{self.name}-{i}"
            pod = self.cluster.pod(name)
            if pod is None or pod.deleted.is_set():
                self.pod_revision[name] = self.revision
                self.cluster.create_pod(name, self.make_template(i), self, self.claims(name))
                if self.ordered:
                    return
            elif self.ordered and not pod.ready:
                return  # OrderedReady: the next ordinal waits for this one

    def pods(self):
        return [self.cluster.pod(f"{self.name}-{i}") for i in range(self.replicas)]

    def rollout(self, mutate, timeout=300):
        """A rolling update: the template changes; pods are deleted from the
        highest ordinal down, each replacement must be ready before the next
        goes. Returns [(pod name, seconds from delete to ready)]."""
        mutate(self.template)
        self.revision += 1
        times = []
        for i in reversed(range(self.replicas)):
            name = f"{self.name}-{i}"
            old = self.cluster.pod(name)
            start = time.monotonic()
            old.delete()
            old.deleted.wait(timeout)
            assert old.deleted.is_set(), f"{name} did not terminate"
            new = wait_until(lambda: (p := self.cluster.pod(name)) is not old and p is not None and p.ready and p,
                             timeout, what=f"{name} recreated and ready\n{self.cluster.describe()}")
            times.append((name, new.ready_since - start))
        return times


class Deployment:
    """The Deployment controller: replicas under generated names."""

    def __init__(self, cluster, obj):
        self.cluster = cluster
        self.obj = obj
        self.name = obj["metadata"]["name"]
        self.replicas = obj["spec"].get("replicas", 1)
        self.hash = secrets.token_hex(5)[:9]
        self.thread = threading.Thread(target=self.run, daemon=True, name=f"deploy-{self.name}")

    def run(self):
        while not self.cluster.stopping.is_set():
            with self.cluster.lock:
                live = [p for n, p in self.cluster.pods.items()
                        if p.owner is self and not p.deleted.is_set() and not p.deleting.is_set()]
            for _ in range(self.replicas - len(live)):
                name = f"{self.name}-{self.hash}-{secrets.token_hex(3)[:5]}"
                self.cluster.create_pod(name, yaml.safe_load(yaml.safe_dump(self.obj["spec"]["template"])), self)
            self.cluster.stopping.wait(0.1)  # the controller's resync tick

    def pods(self):
        with self.cluster.lock:
            return [p for p in self.cluster.pods.values() if p.owner is self and not p.deleted.is_set()]
