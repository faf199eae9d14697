"""A pod of the simulated cluster (kube_sim.py) and the kubelet that runs it.

A Pod is one object of a rendered manifest brought to life the way a node
does it:
- its own network namespace with its own address (new for every pod
  object, so a recreated pod comes back on a new IP), the pod's hostname,
  and the /etc/resolv.conf and /etc/hosts the kubelet writes (the cluster's
  DNS server, the namespace's search list, ndots:5);
- volumes: emptyDir (`medium: Memory` a tmpfs of its sizeLimit, as the
  kubelet mounts it), ConfigMap and Secret files (defaultMode, group-readable
  by fsGroup as the kubelet makes them), a persistent directory per
  volumeClaimTemplate that outlives the pod;
- each container in its own mount namespace: the host's root as the image's
  read-only lower layer (overlayfs), the image's own files (deploy/docker/
  Dockerfile's COPY lines) bound at their paths, the volumes at their
  mountPaths, a read-only root when the manifest says so, and the process
  run as the manifest's runAsUser/runAsGroup/fsGroup with only the env the
  manifest gives it ($(VAR) references, the downward API, secretKeyRef);
- init containers one after another, each until it exits 0, then the
  containers; a container that exits is restarted with a growing back-off;
  startup, liveness and readiness probes polled at the manifest's periods;
  deletion runs preStop, then SIGTERM, then SIGKILL at the grace period.

One kubelet thread per pod drives all of it; tests and the controllers read
`ready`, `phase` and `events` from other threads.
"""
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.request

from conftest import ROOT, SUDO, privileged

IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The kubelet's restart back-off starts at 10 s and doubles to 5 min; the
# simulation keeps the doubling but starts at 1 s and stops at 8 s so a
# scenario that waits for a retry does not take minutes.
BACKOFF_START, BACKOFF_MAX = 1.0, 8.0


def expand(text, env):
    """Kubernetes' $(VAR) expansion in command, args and env values: a
    defined variable is replaced, $$ escapes, anything else stays."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def send_signal(pid, sig):
    try:
        if SUDO:
            subprocess.run(SUDO + ["kill", f"-{int(sig)}", str(pid)], capture_output=True, timeout=10)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def set_owner(path, gid, mode):
    """root:gid and mode, as the kubelet (root) leaves a volume."""
    if SUDO:
        subprocess.run(SUDO + ["sh", "-c", f"chown 0:{gid} \"$1\" && chmod {mode:o} \"$1\"", "_", path], check=True)
    else:
        os.chown(path, 0, gid)
        os.chmod(path, mode)


def put_file(path, text, gid, mode):
    """A Secret or ConfigMap file the kubelet writes: owned by root."""
    if SUDO:
        subprocess.run(SUDO + ["install", "-o", "0", "-g", str(gid), "-m", f"{mode:o}", "/dev/stdin", path],
                       input=text.encode(), check=True)
    else:
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.chown(path + ".tmp", 0, gid)
        os.chmod(path + ".tmp", mode)
        os.rename(path + ".tmp", path)


class Container:
    """One container's process (or the last one that ran)."""

    def __init__(self, pod, spec, init=False):
        self.pod = pod
        self.spec = spec
        self.name = spec["name"]
        self.init = init
        self.proc = None
        self.pid = None
        self.restarts = 0
        self.dir = os.path.join(pod.dir, "containers", self.name)
        self.log_path = os.path.join(pod.dir, f"{self.name}.log")
        os.makedirs(self.dir, exist_ok=True)

    # --- environment -------------------------------------------------------------

    def environment(self):
        pod = self.pod
        env = {"PATH": IMAGE_PATH, "HOSTNAME": pod.hostname}
        for item in self.spec.get("env", []):
            if "value" in item:
                env[item["name"]] = pod.cluster.substitute(expand(item["value"], env))
                continue
            src = item["valueFrom"]
            if "fieldRef" in src:
                env[item["name"]] = pod.field(src["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in src:
                ref = src["secretKeyRef"]
                value = pod.cluster.secrets.get(ref["name"], {}).get(ref["key"])
                if value is None:
                    if ref.get("optional"):
                        continue
                    raise PodError(f"CreateContainerConfigError: secret \"{ref['name']}\" (key \"{ref['key']}\") "
                                   f"not found for container {self.name}")
                env[item["name"]] = value
            else:
                raise PodError(f"env {item['name']}: valueFrom {list(src)} is not simulated")
        return env

    def argv(self, env):
        image = self.pod.cluster.image(self.spec["image"])
        command = self.spec.get("command")
        args = self.spec.get("args")
        if command is None:
            command = list(image.entrypoint)
            if args is None:
                args = list(image.cmd)
        argv = [expand(a, env) for a in command + (args or [])]
        return image.rewrite(argv)

    def user(self):
        sc = dict(self.pod.spec.get("securityContext", {}))
        sc.update(self.spec.get("securityContext", {}))
        image = self.pod.cluster.image(self.spec["image"])
        uid = sc.get("runAsUser", image.uid)
        gid = sc.get("runAsGroup", image.gid if "runAsUser" not in sc else 0)
        if sc.get("runAsNonRoot") and uid == 0:
            raise PodError(f"CreateContainerConfigError: container {self.name} has runAsNonRoot and image will run as root")
        groups = [g for g in [self.pod.spec.get("securityContext", {}).get("fsGroup")] if g is not None]
        groups += self.pod.spec.get("securityContext", {}).get("supplementalGroups", [])
        return uid, gid, groups, sc.get("readOnlyRootFilesystem", False)

    # --- the container runtime --------------------------------------------------

    def script(self, env, argv):
        """The shell steps that build the container's root and exec it."""
        pod = self.pod
        fs, root = os.path.join(self.dir, "fs"), os.path.join(self.dir, "root")
        q = shlex.quote
        uid, gid, groups, read_only = self.user()
        # containerd gives containers 1048576 open files (its own limit);
        # where the machine's ceiling is lower, that ceiling.
        lines = ["set -e", f"echo $$ > {q(os.path.join(self.dir, 'pid'))}",
                 "ulimit -n 1048576 2>/dev/null || ulimit -n \"$(cat /proc/sys/fs/nr_open)\" 2>/dev/null || true",
                 f"mkdir -p {q(fs)} {q(root)}",
                 f"mount -t tmpfs -o size=64m tmpfs {q(fs)}", f"mkdir {q(fs)}/upper {q(fs)}/work",
                 f"mount -t overlay overlay -o lowerdir=/,upperdir={q(fs)}/upper,workdir={q(fs)}/work {q(root)}",
                 f"mount --rbind /dev {q(root)}/dev", f"mount -t proc proc {q(root)}/proc",
                 f"mount --rbind /sys {q(root)}/sys", f"mount -t tmpfs tmpfs {q(root)}/run",
                 f"mount -t tmpfs tmpfs {q(root)}/tmp"]

        def bind(src, dst, ro):
            target = root + dst
            if os.path.isdir(src):
                lines.append(f"mkdir -p {q(target)}")
            else:
                lines.append(f"mkdir -p {q(os.path.dirname(target))} && touch {q(target)}")
            lines.append(f"mount --bind {q(src)} {q(target)}")
            if ro:
                lines.append(f"mount -o remount,bind,ro {q(target)}")

        for dst, src in self.pod.cluster.image(self.spec["image"]).files.items():
            bind(src, dst, True)
        for m in self.spec.get("volumeMounts", []):
            src = pod.volume_dir(m["name"])
            if m.get("subPath"):
                src = os.path.join(src, m["subPath"])
            bind(src, m["mountPath"], m.get("readOnly", False))
        for dst, src in pod.cluster.shared_mounts.items():
            bind(src, dst, False)
        for f in ("resolv.conf", "hosts", "hostname"):
            bind(os.path.join(pod.dir, f), f"/etc/{f}", False)
        if read_only:
            lines += [f"mount -o remount,bind,ro {q(root)}", f"mount -o remount,bind,ro {q(root)}/run",
                      f"mount -o remount,bind,ro {q(root)}/tmp"]
        lines.append(f"hostname {q(pod.hostname)}")
        group_arg = f" --groups={','.join(map(str, groups))}" if groups else ""
        env_args = " ".join(q(f"{k}={v}") for k, v in env.items())
        lines.append(f"exec chroot --userspec={uid}:{gid}{group_arg} {q(root)} /usr/bin/env -i {env_args} "
                     + " ".join(q(a) for a in argv))
        path = os.path.join(self.dir, "start.sh")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self):
        env = self.env = self.environment()  # fixed for the container's life, as in Kubernetes
        argv = self.argv(env)
        script = self.script(env, argv)
        pidfile = os.path.join(self.dir, "pid")
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        log = open(self.log_path, "ab")
        log.write(f"--- {time.strftime('%H:%M:%S')} start {self.name} (restart {self.restarts})\n".encode())
        log.flush()
        self.proc = subprocess.Popen(privileged("nsenter", f"--net=/run/netns/{pod_netns(self.pod)}", "unshare",
                                                "--mount", "--uts", "/bin/sh", script),
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.pid = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with open(pidfile) as f:
                    self.pid = int(f.read())
                break
            except (OSError, ValueError):
                time.sleep(0.01)  # the start script writes its pid first

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            send_signal(self.pid or self.proc.pid, sig)

    def exec_in(self, command, timeout):
        """Runs command inside the container (exec probe, preStop hook): its
        namespaces, root, user and env. Returns (exit status, output)."""
        if not self.running() or self.pid is None:
            return 1, "container not running"
        uid, gid, _, _ = self.user()
        env = self.env
        argv = privileged("nsenter", "-t", str(self.pid), "-m", "-u", "-n", "-r", "-w", "-S", str(uid),
                          "-G", str(gid), "/usr/bin/env", "-i", *[f"{k}={v}" for k, v in env.items()], *command)
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return 1, f"timed out after {timeout}s"
        return out.returncode, out.stdout + out.stderr

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def quantity_bytes(q):
    """A Kubernetes quantity ("16Mi", "1G", "512") in bytes."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|k|M|G)?", str(q))
    if not m:
        raise PodError(f"quantity {q!r} is not simulated")
    unit = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 10**3, "M": 10**6, "G": 10**9, None: 1}[m.group(2)]
    return int(m.group(1)) * unit


class PodError(Exception):
    """Why the kubelet cannot start a pod (a missing Secret, say)."""


def pod_netns(pod):
    return f"{pod.cluster.tag}-{pod.uid}"


class Probe:
    """One probe of a container, as the kubelet runs it."""

    def __init__(self, container, spec):
        self.c = container
        self.spec = spec
        self.period = spec.get("periodSeconds", 10)
        self.timeout = spec.get("timeoutSeconds", 1)
        self.success_threshold = spec.get("successThreshold", 1)
        self.failure_threshold = spec.get("failureThreshold", 3)
        self.next = time.monotonic() + spec.get("initialDelaySeconds", 0)
        self.successes = self.failures = 0

    def port(self, p):
        if isinstance(p, int):
            return p
        for port in self.c.spec.get("ports", []):
            if port.get("name") == p:
                return port["containerPort"]
        raise PodError(f"probe names port {p!r} that container {self.c.name} does not declare")

    def once(self):
        ip = self.c.pod.ip
        s = self.spec
        try:
            if "httpGet" in s:
                url = f"http://{ip}:{self.port(s['httpGet']['port'])}{s['httpGet'].get('path', '/')}"
                with urllib.request.urlopen(url, timeout=self.timeout) as r:
                    return 200 <= r.status < 400
            if "tcpSocket" in s:
                with socket.create_connection((ip, self.port(s["tcpSocket"]["port"])), timeout=self.timeout):
                    return True
            if "exec" in s:
                return self.c.exec_in(s["exec"]["command"], self.timeout)[0] == 0
        except (OSError, ValueError):
            return False
        raise PodError(f"probe {s} is not simulated")

    def due(self, now):
        if now < self.next:
            return False
        self.next = now + self.period
        return True

    def record(self, ok):
        """Feeds one result; returns True (passing), False (failed) or None (no change)."""
        if ok:
            self.failures = 0
            self.successes += 1
            return True if self.successes >= self.success_threshold else None
        self.successes = 0
        self.failures += 1
        return False if self.failures >= self.failure_threshold else None


class Pod:
    """A pod object and the kubelet thread that runs it."""

    def __init__(self, cluster, name, template, owner, uid, ip, claims=()):
        self.cluster = cluster
        self.name = name
        self.uid = uid
        self.ip = ip
        self.owner = owner
        self.labels = dict(template["metadata"].get("labels", {}))
        self.spec = template["spec"]
        self.hostname = self.spec.get("hostname", name)
        self.subdomain = self.spec.get("subdomain")
        self.claims = dict(claims)  # claim name -> persistent host directory
        self.memory_volumes = []  # tmpfs mounts of emptyDir volumes with medium: Memory
        self.dir = os.path.join(cluster.root, "pods", f"{name}-{uid}")
        os.makedirs(self.dir)
        self.inits = [Container(self, c, init=True) for c in self.spec.get("initContainers", [])]
        self.containers = [Container(self, c) for c in self.spec["containers"]]
        self.phase = "Pending"
        self.ready = False
        self.started = {}
        self.events = []
        self.deleting = threading.Event()
        self.deleted = threading.Event()
        self.created_at = time.monotonic()
        self.ready_since = None
        self.thread = threading.Thread(target=self.kubelet, daemon=True, name=f"kubelet-{name}")

    def __repr__(self):
        return f"<Pod {self.name} {self.ip} {self.phase}{' ready' if self.ready else ''}>"

    def event(self, text):
        self.events.append((time.monotonic(), text))

    def field(self, path):
        values = {"metadata.name": self.name, "metadata.namespace": self.cluster.namespace,
                  "status.podIP": self.ip, "spec.nodeName": f"node-{self.name}",
                  "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
                  "metadata.uid": str(self.uid)}
        if path.startswith("metadata.labels['"):
            return self.labels.get(path[len("metadata.labels['"):-2], "")
        if path not in values:
            raise PodError(f"fieldRef {path} is not simulated")
        return values[path]

    # --- volumes ---------------------------------------------------------------------

    def volume_dir(self, name):
        if name in self.claims:
            return self.claims[name]
        return os.path.join(self.dir, "volumes", name)

    def make_volumes(self):
        """Fills every volume as the kubelet would before any container runs;
        a missing (non-optional) ConfigMap or Secret keeps the pod waiting."""
        fs_group = self.spec.get("securityContext", {}).get("fsGroup")
        for name, d in self.claims.items():
            os.makedirs(d, exist_ok=True)
            set_owner(d, fs_group or 0, 0o2775 if fs_group is not None else 0o755)
        for v in self.spec.get("volumes", []):
            d = self.volume_dir(v["name"])
            os.makedirs(d, exist_ok=True)
            if "emptyDir" in v:
                if v["emptyDir"].get("medium") == "Memory" and not os.path.ismount(d):
                    size = quantity_bytes(v["emptyDir"].get("sizeLimit", "64Mi"))
                    subprocess.run(privileged("mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", d),
                                   check=True, capture_output=True, timeout=30)
                    self.memory_volumes.append(d)
                set_owner(d, 0, 0o777)
                continue
            kinds = {"configMap": ("name", self.cluster.config_maps), "secret": ("secretName", self.cluster.secrets)}
            kind = next((k for k in kinds if k in v), None)
            if kind is None:
                raise PodError(f"volume {v['name']}: {sorted(set(v) - {'name'})} is not simulated")
            key, store = kinds[kind]
            data = store.get(v[kind][key])
            if data is None and not v[kind].get("optional"):
                raise PodError(f"MountVolume.SetUp failed for volume \"{v['name']}\": {kind.lower()} "
                               f"\"{v[kind][key]}\" not found")
            mode = v[kind].get("defaultMode", 0o644)
            for fname, text in (data or {}).items():
                # With an fsGroup the kubelet gives the group read access.
                put_file(os.path.join(d, fname), self.cluster.substitute(text) if "configMap" in v else text,
                         fs_group or 0, mode | (0o040 if fs_group is not None else 0))
            set_owner(d, 0, 0o755)

    def write_etc(self):
        c = self.cluster
        with open(os.path.join(self.dir, "resolv.conf"), "w") as f:
            f.write(f"search {c.namespace}.svc.{c.domain} svc.{c.domain} {c.domain}\n"
                    f"nameserver {c.dns_ip}\noptions ndots:5\n")
        fqdn = f"{self.hostname}.{self.subdomain}.{c.namespace}.svc.{c.domain}" if self.subdomain else ""
        with open(os.path.join(self.dir, "hosts"), "w") as f:
            f.write(f"127.0.0.1\tlocalhost\n::1\tlocalhost\n{self.ip}\t{fqdn}\t{self.hostname}\n".replace("\t\t", "\t"))
        with open(os.path.join(self.dir, "hostname"), "w") as f:
            f.write(self.hostname + "\n")

    # --- the kubelet -----------------------------------------------------------------

    def wait_backoff(self, delay):
        """True if the pod is being deleted before the back-off ends."""
        return self.deleting.wait(delay)

    def kubelet(self):
        try:
            self.run_pod()
        except PodError as e:
            self.event(str(e))
        finally:
            self.stop_all()
            for d in self.memory_volumes:  # the pod is gone: so is its memory
                subprocess.run(privileged("umount", "-l", d), capture_output=True, timeout=30)
            self.cluster.net.remove_pod(self)
            self.phase = "Gone"
            self.deleted.set()
            self.cluster.changed()

    def run_pod(self):
        delay = BACKOFF_START
        while True:  # volumes and env wait for their ConfigMaps and Secrets, as a real pod does
            try:
                self.make_volumes()
                for c in self.inits + self.containers:
                    c.environment()
                break
            except PodError as e:
                self.event(str(e))
                if self.wait_backoff(delay):
                    return
                delay = min(delay * 2, BACKOFF_MAX)
        self.cluster.net.add_pod(self)
        self.write_etc()
        self.phase = "Init"
        self.cluster.changed()
        for c in self.inits:
            delay = BACKOFF_START
            while True:
                # The kubelet keeps Secret and ConfigMap volumes in step with
                # their objects: a retry sees a Secret that was put right.
                self.make_volumes()
                c.start()
                while c.proc.poll() is None:
                    if self.deleting.wait(0.05):  # the init container's exit, polled
                        return
                if c.proc.returncode == 0:
                    break
                c.restarts += 1
                self.event(f"init container {c.name} exited {c.proc.returncode}")
                if self.wait_backoff(delay):
                    return
                delay = min(delay * 2, BACKOFF_MAX)
        self.phase = "Running"
        probes = {}
        for c in self.containers:
            c.start()
            probes[c.name] = {k: Probe(c, c.spec[k]) for k in ("startupProbe", "livenessProbe", "readinessProbe")
                              if k in c.spec}
            self.started[c.name] = "startupProbe" not in c.spec
        restart_at = {}
        ready = {c.name: False for c in self.containers}
        while not self.deleting.is_set():
            now = time.monotonic()
            for c in self.containers:
                p = probes[c.name]
                if not c.running():
                    if c.name not in restart_at:
                        c.restarts += 1
                        self.event(f"container {c.name} exited {c.proc.returncode if c.proc else '?'}")
                        ready[c.name] = False
                        restart_at[c.name] = now + min(BACKOFF_START * 2 ** (c.restarts - 1), BACKOFF_MAX)
                    elif now >= restart_at[c.name]:
                        del restart_at[c.name]
                        c.start()
                        p.update({k: Probe(c, c.spec[k]) for k in p})
                        self.started[c.name] = "startupProbe" not in c.spec
                    continue
                if not self.started[c.name]:
                    probe = p["startupProbe"]
                    if probe.due(now):
                        r = probe.record(probe.once())
                        if r is True:
                            self.started[c.name] = True
                        elif r is False:
                            self.event(f"startup probe of {c.name} failed; restarting it")
                            self.stop_container(c, self.spec.get("terminationGracePeriodSeconds", 30))
                    continue
                if "livenessProbe" in p and p["livenessProbe"].due(now):
                    if p["livenessProbe"].record(p["livenessProbe"].once()) is False:
                        self.event(f"liveness probe of {c.name} failed; restarting it")
                        self.stop_container(c, self.spec.get("terminationGracePeriodSeconds", 30))
                        continue
                if "readinessProbe" in p:
                    if p["readinessProbe"].due(now):
                        r = p["readinessProbe"].record(p["readinessProbe"].once())
                        if r is not None:
                            ready[c.name] = r
                else:
                    ready[c.name] = True
            now_ready = all(ready.values()) and not self.deleting.is_set()
            if now_ready != self.ready:
                self.ready = now_ready
                self.ready_since = time.monotonic() if now_ready else None
                self.event("ready" if now_ready else "not ready")
                self.cluster.changed()
            self.deleting.wait(0.1)  # the kubelet's loop tick; probes keep their own periods
        self.ready = False
        self.cluster.changed()
        self.terminate()

    def stop_container(self, c, grace):
        c.signal(signal.SIGTERM)
        try:
            c.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            c.signal(signal.SIGKILL)
            c.proc.wait()

    def terminate(self):
        """Graceful deletion: preStop hooks, then SIGTERM, SIGKILL at the grace period."""
        self.phase = "Terminating"
        grace = self.grace
        deadline = time.monotonic() + grace
        hooks = []
        for c in self.containers:
            hook = c.spec.get("lifecycle", {}).get("preStop", {}).get("exec")
            if hook and grace > 0:
                t = threading.Thread(target=lambda c=c, h=hook: self.event(
                    f"preStop {c.name}: " + repr(c.exec_in(h["command"], max(1, deadline - time.monotonic())))))
                t.start()
                hooks.append(t)
        for t in hooks:
            t.join(max(0, deadline - time.monotonic()))
        for c in self.containers:
            c.signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        for c in self.containers:
            if c.proc is None:
                continue
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.event(f"{c.name} did not stop within the grace period; SIGKILL")
                c.signal(signal.SIGKILL)
                c.proc.wait()

    def stop_all(self):
        for c in self.inits + self.containers:
            if c.running():
                c.signal(signal.SIGKILL)
                c.proc.wait()

    def delete(self, grace=None):
        """`kubectl delete pod`: grace defaults to the manifest's."""
        self.grace = self.spec.get("terminationGracePeriodSeconds", 30) if grace is None else grace
        self.deleting.set()
        # A pod being deleted leaves its Services' ready endpoints at once.
        self.ready = False
        self.cluster.changed()

    def container(self, name):
        return [c for c in self.containers + self.inits if c.name == name][0]

    def start(self):
        self.grace = self.spec.get("terminationGracePeriodSeconds", 30)
        self.thread.start()


def repo_path(*parts):
    return os.path.join(ROOT, *parts)
