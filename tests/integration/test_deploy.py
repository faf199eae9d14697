"""The deployment files (deploy/, .github/), checked offline as far as this
machine allows: no cluster and no Docker engine here.

- kustomize renders every overlay (kubectl kustomize), the objects validate
  against the Kubernetes schemas (npm's kubernetes-models) and have no field
  the Kubernetes API doesn't know (python3-kubernetes' models), plus levee's
  own checks: ports against levee's settings, probes, selectors, mounts,
  security.
- A "pod run": the single overlay's StatefulSet is run as local processes,
  init containers first, with its command, args, env and mounts (ConfigMaps
  and Secrets written to a temp dir), probed as its probes say, and stopped
  with SIGTERM inside terminationGracePeriodSeconds.
- The init scripts against a real redis-sentinel, the HAProxy configs with
  real haproxy (the cross-region path over mutual TLS with a real levee
  replica behind it), the alerts with promtool, Terraform with terraform fmt
  and npm's @cdktf/hcl2json, the Dockerfile and the CI workflow.
"""
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest
import redis
import yaml

from conftest import LEVEE, ROOT, free_port, require, terminate, wait_until

DEPLOY = os.path.join(ROOT, "deploy")
K8S = os.path.join(DEPLOY, "kubernetes")
SCRIPTS = os.path.join(K8S, "base", "scripts")
TOOLS = os.path.join(ROOT, "tests", "tools")
OVERLAYS = ["single", "replicated", "second-region"]
NODE = shutil.which("node")


# --- rendering ------------------------------------------------------------------

_rendered = {}


def render(path):
    """kubectl kustomize PATH -> (text, [objects])."""
    require(shutil.which("kubectl") is not None, "kubectl is not installed on this machine: kustomize rendering skipped")
    if path not in _rendered:
        out = subprocess.run(["kubectl", "kustomize", path], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"kubectl kustomize {path}: {out.stderr}"
        _rendered[path] = (out.stdout, [d for d in yaml.safe_load_all(out.stdout) if d])
    return _rendered[path]


def overlay(name):
    return render(os.path.join(K8S, "overlays", name))[1]


def find(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert found, f"no {kind} {name or ''} in the rendered manifests"
    return found


def config_map(objs, prefix):
    """A generated ConfigMap by its name before kustomize's hash suffix."""
    found = [o for o in objs if o["kind"] == "ConfigMap" and re.fullmatch(prefix + r"(-[a-z0-9]{10})?", o["metadata"]["name"])]
    assert len(found) == 1, f"ConfigMap {prefix}: {[o['metadata']['name'] for o in found]}"
    return found[0]


def workloads(objs):
    return [o for o in objs if o["kind"] in ("StatefulSet", "Deployment")]


def containers(workload, init=True):
    spec = workload["spec"]["template"]["spec"]
    return (spec.get("initContainers", []) if init else []) + spec["containers"]


def levee_settings():
    """Every setting name levee serve accepts (from its --help)."""
    out = subprocess.run([LEVEE, "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    return set(re.findall(r"^\s+--([a-z0-9-]+)", out, re.M)) - {"help", "config"}


# --- schemas ---------------------------------------------------------------------

# Kinds with no published schema: Gatekeeper's (levee's own checks and the
# Rego below cover them) and GKE Managed Prometheus' (test_gmp_monitoring...).
UNSCHEMED = ("ConstraintTemplate", "LeveeRequireNonRootLimits", "PodMonitoring", "Rules")


@pytest.mark.parametrize("path", [f"overlays/{o}" for o in OVERLAYS] +
                         ["monitoring", "monitoring-gmp", "policy", "policy/constraints"])
def test_manifests_render_and_validate_against_the_kubernetes_schemas(path):
    text, objs = render(os.path.join(K8S, path))
    assert objs
    require(NODE is not None, "node is not installed: the kubernetes-models schema check needs it")
    allow = [a for k in UNSCHEMED for a in ("--allow-kind", k)]
    out = subprocess.run([NODE, os.path.join(TOOLS, "validate-manifests.mjs"), *allow], input=text,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("\nok ") + out.stdout.startswith("ok ") >= len(
        [o for o in objs if o["kind"] not in UNSCHEMED])


def test_schema_check_catches_a_wrong_type():
    """The validator is not a no-op: a string port fails it."""
    require(NODE is not None, "node is not installed")
    text, _ = render(os.path.join(K8S, "overlays", "single"))
    broken = text.replace("containerPort: 6379", "containerPort: \"6379x\"", 1)
    out = subprocess.run([NODE, os.path.join(TOOLS, "validate-manifests.mjs")], input=broken, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1 and "containerPort must be integer" in out.stdout


def unknown_fields(obj):
    """Fields the Kubernetes API (python3-kubernetes' models) doesn't have:
    misspellings that schema validation lets through."""
    import kubernetes.client as kc

    problems = []

    def walk(value, type_name, path):
        if type_name.startswith("list["):
            for i, v in enumerate(value or []):
                walk(v, type_name[5:-1], f"{path}[{i}]")
            return
        if type_name.startswith("dict(") or type_name in ("str", "int", "bool", "float", "object", "datetime"):
            return
        cls = getattr(kc, type_name)
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a {type_name} object")
            return
        by_json = {v: k for k, v in cls.attribute_map.items()}
        for key, v in value.items():
            if key not in by_json:
                problems.append(f"{path}.{key}: not a field of {type_name}")
            else:
                walk(v, cls.openapi_types[by_json[key]], f"{path}.{key}")

    walk(obj, "V1" + obj["kind"], f"{obj['kind']}/{obj['metadata']['name']}")
    return problems


CORE_API = {"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1", "storage.k8s.io/v1"}


@pytest.mark.parametrize("name", OVERLAYS)
def test_no_misspelled_fields(name):
    require(importlib.util.find_spec("kubernetes") is not None, "Debian's python3-kubernetes is not installed")
    objs = [o for o in overlay(name) if o["apiVersion"] in CORE_API]
    assert objs
    problems = [p for o in objs for p in unknown_fields(o)]
    assert problems == []
    # ... and the check does find one.
    sts = json.loads(json.dumps(find(objs, "StatefulSet", "levee")[0]))
    sts["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert unknown_fields(sts) == ["StatefulSet/levee.spec.template.spec.containers[0].readinesProbe: "
                                   "not a field of V1Container"]


# --- levee's own checks --------------------------------------------------------------

def port_numbers(container):
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


@pytest.mark.parametrize("name", OVERLAYS)
def test_ports_probes_and_settings_match_the_server(name):
    objs = overlay(name)
    sts = find(objs, "StatefulSet", "levee")[0]
    levee_c = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "levee"][0]
    settings = yaml.safe_load(config_map(objs, "levee-config")["data"]["levee.yaml"])
    known = levee_settings()
    assert set(settings) <= known, f"unknown levee settings: {set(settings) - known}"
    # Settings given as LEVEE_* variables are levee settings too.
    for c in containers(sts):
        if c["name"] != "levee":
            continue
        for e in c.get("env", []):
            if e["name"].startswith("LEVEE_"):
                assert e["name"][6:].lower().replace("_", "-") in known, e["name"]
    ports = port_numbers(levee_c)
    assert ports == {"resp": settings["port"], "http": settings["http-port"]}
    assert settings["bind"] == "0.0.0.0"
    assert levee_c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert levee_c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert levee_c["startupProbe"]["httpGet"]["port"] == "http"
    startup = levee_c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "a long log replay needs minutes"
    # Every file levee reads is under one of the levee container's mounts.
    mounts = [m["mountPath"] for m in levee_c["volumeMounts"]]
    for key in ("data-dir", "requirepass-file", "masterauth-file", "backup-key-file"):
        assert any(settings[key].startswith(m + "/") for m in mounts), (key, settings[key], mounts)
    assert levee_c["args"][levee_c["args"].index("--config") + 1].startswith("/run/levee/")
    assert sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


@pytest.mark.parametrize("name", OVERLAYS)
def test_services_volumes_and_references_resolve(name):
    objs = overlay(name)
    pods = [(w, w["spec"]["template"]["metadata"]["labels"]) for w in workloads(objs)]
    for svc in find(objs, "Service"):
        sel = svc["spec"]["selector"]
        matched = [w for w, labels in pods if all(labels.get(k) == v for k, v in sel.items())]
        assert matched, f"Service {svc['metadata']['name']} selects no pods"
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            for w in matched:
                named = {n: v for c in containers(w, init=False) for n, v in port_numbers(c).items()}
                assert target in named or target in named.values(), (svc["metadata"]["name"], target, named)
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    documented = open(os.path.join(ROOT, "docs", "kubernetes.md")).read()
    for w in workloads(objs):
        spec = w["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in w["spec"].get("volumeClaimTemplates", [])}
        for c in containers(w):
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes or m["name"] in claims, (w["metadata"]["name"], c["name"], m["name"])
        for v in volumes.values():
            if "configMap" in v:
                assert ("ConfigMap", v["configMap"]["name"]) in names, v
            if "secret" in v:
                # Secrets are the user's to create: each one is in the docs.
                assert f"`{v['secret']['secretName']}`" in documented, v["secret"]["secretName"]
        if w["kind"] == "StatefulSet":
            for c in w["spec"].get("volumeClaimTemplates", []):
                assert ("StorageClass", c["spec"]["storageClassName"]) in names
    selectors = [o["spec"]["selector"]["matchLabels"] for o in objs if o["kind"] == "PodDisruptionBudget"]
    for w in workloads(objs):
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert any(all(labels.get(k) == v for k, v in s.items()) for s in selectors), \
            f"{w['metadata']['name']} has no PodDisruptionBudget"


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_container_is_locked_down(name):
    """What the example Gatekeeper constraint demands, and more."""
    for w in workloads(overlay(name)):
        spec = w["spec"]["template"]["spec"]
        where = w["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        for c in containers(w):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, (where, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (where, c["name"])
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), (where, c["name"])
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), (where, c["name"])


def test_overlay_specifics():
    single, rep, second = overlay("single"), overlay("replicated"), overlay("second-region")
    sts = find(rep, "StatefulSet", "levee")[0]
    assert sts["spec"]["replicas"] == 3 and sts["spec"]["podManagementPolicy"] in ("OrderedReady", "Parallel")
    spread = sts["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [(t["topologyKey"], t["maxSkew"]) for t in spread] == [("topology.kubernetes.io/zone", 1)]
    assert spread[0]["labelSelector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    env = {e["name"]: e.get("value") for e in containers(sts)[0]["env"]}
    sentinels = find(rep, "StatefulSet", "levee-sentinel")[0]
    expected = [f"levee-sentinel-{i}.{sentinels['spec']['serviceName']}:26379" for i in range(sentinels["spec"]["replicas"])]
    assert env["LEVEE_SENTINELS"].split() == expected
    assert sentinels["spec"]["replicas"] == 3
    haproxy = config_map(rep, "levee-haproxy")["data"]["haproxy.cfg"]
    # HAProxy's runtime resolver applies no search list: full names only.
    for i in range(3):
        assert f'server levee-{i} "levee-{i}.levee-headless.${{POD_NAMESPACE}}.svc.${{LEVEE_CLUSTER_DOMAIN}}:6379" check' \
            in haproxy
    # The client Service goes through HAProxy in the replicated overlay.
    assert find(rep, "Service", "levee")[0]["spec"]["selector"]["app.kubernetes.io/component"] == "haproxy"
    assert find(single, "Service", "levee")[0]["spec"]["selector"]["app.kubernetes.io/component"] == "server"
    # Second region: replicas of the first, never promoted by its Sentinels,
    # under names of their own.
    sts2 = find(second, "StatefulSet", "levee")[0]
    env2 = {e["name"]: e.get("value") for e in containers(sts2)[0]["env"]}
    assert env2["LEVEE_UPSTREAM"] == "levee-upstream:6379" and env2["LEVEE_REPLICA_PRIORITY"] == "0"
    assert env2["LEVEE_HEADLESS_SERVICE"] == sts2["spec"]["serviceName"] != sts["spec"]["serviceName"]
    assert find(second, "Service", sts2["spec"]["serviceName"])[0]["spec"]["clusterIP"] == "None"
    # restore-on-empty reads the repository the server writes.
    for objs in (single, rep):
        s = find(objs, "StatefulSet", "levee")[0]
        restore = [c for c in containers(s) if c["name"] == "restore-on-empty"][0]
        repo = {e["name"]: e.get("value") for e in restore["env"]}["LEVEE_BACKUP_REPO"]
        assert repo == yaml.safe_load(config_map(objs, "levee-config")["data"]["levee.yaml"])["backup-repo"]
        assert [c["name"] for c in containers(s)][:2] == ["configure", "restore-on-empty"]
    # The VPA targets the StatefulSet's levee container.
    vpa = find(single, "VerticalPodAutoscaler", "levee")[0]
    assert vpa["spec"]["targetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "levee"}
    assert vpa["spec"]["updatePolicy"]["updateMode"] in ("Off", "Initial", "Recreate", "Auto")


def test_velero_hooks_component_renders_and_stays_off_by_default(tmp_path):
    for name in OVERLAYS:
        sts = find(overlay(name), "StatefulSet", "levee")[0]
        assert not any(k.startswith(("pre.hook", "post.hook"))
                       for k in sts["spec"]["template"]["metadata"].get("annotations", {}))
    k = tmp_path / "kustomization.yaml"
    rel = os.path.relpath(K8S, tmp_path)
    k.write_text(f"resources: [{rel}/overlays/single]\ncomponents: [{rel}/components/velero-hooks]\n")
    require(shutil.which("kubectl") is not None, "kubectl is not installed")
    out = subprocess.run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    sts = [o for o in yaml.safe_load_all(out.stdout) if o and o["kind"] == "StatefulSet"][0]
    ann = sts["spec"]["template"]["metadata"]["annotations"]
    cmd = json.loads(ann["pre.hook.backup.velero.io/command"])
    settings = yaml.safe_load(config_map(overlay("single"), "levee-config")["data"]["levee.yaml"])
    assert cmd[cmd.index("--password-file") + 1] == settings["requirepass-file"]
    assert cmd[cmd.index("--server") + 1] == f"127.0.0.1:{settings['port']}"


# --- the pod run ----------------------------------------------------------------------

class PodRun:
    """Runs a StatefulSet pod's containers as local processes: each mount
    is a temp directory (ConfigMaps and Secrets written into it), the
    image's paths map to this checkout (from the Dockerfile's COPY lines),
    fieldRef env comes from the pod's identity."""

    def __init__(self, root, objs, sts, secret_data, replace=()):
        self.root = root
        self.objs = objs
        self.sts = sts
        self.spec = sts["spec"]["template"]["spec"]
        self.pod = f"{sts['metadata']['name']}-0"
        self.paths = {}  # container path -> host path
        self.replace = list(replace)  # (from, to) in ConfigMap contents, e.g. gs:// -> file://
        self.secret_data = secret_data
        image = image_paths()
        for c in containers(sts):
            for m in c.get("volumeMounts", []):
                self.paths.setdefault(m["mountPath"], os.path.join(root, "volumes", m["name"]))
        self.paths.update(image)
        self.volumes = {v["name"]: v for v in self.spec["volumes"]}
        for name in {m["name"] for c in containers(sts) for m in c.get("volumeMounts", [])}:
            self.fill_volume(name, os.path.join(root, "volumes", name))

    def fill_volume(self, name, d):
        os.makedirs(d, exist_ok=True)
        v = self.volumes.get(name)
        if v is None:  # a volumeClaimTemplate: an empty disk
            return
        if "configMap" in v:
            cm = [o for o in self.objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == v["configMap"]["name"]][0]
            for fname, text in cm["data"].items():
                for a, b in self.replace:
                    text = text.replace(a, b)
                with open(os.path.join(d, fname), "w") as f:
                    f.write(self.map_text(text))
        if "secret" in v:
            data = self.secret_data.get(v["secret"]["secretName"])
            assert data is not None or v["secret"].get("optional"), f"Secret {v['secret']['secretName']} is required"
            for fname, text in (data or {}).items():
                p = os.path.join(d, fname)
                with open(p, "w") as f:
                    f.write(text)
                os.chmod(p, v["secret"].get("defaultMode", 0o644))

    def map_text(self, s):
        # One pass, longest container path first (/run/levee/x before /run).
        alternatives = "|".join(re.escape(p) for p in sorted(self.paths, key=len, reverse=True))
        return re.sub(r"(?<![\w/.-])(" + alternatives + r")(?![\w.-])", lambda m: self.paths[m.group(1)], s)

    def env(self, c, extra=None):
        e = {"PATH": os.path.join(self.root, "bin") + ":" + os.environ["PATH"], "HOME": self.root}
        field = {"metadata.name": self.pod, "metadata.namespace": "default", "status.podIP": "127.0.0.1"}
        for item in c.get("env", []):
            if "value" in item:
                e[item["name"]] = self.map_text(item["value"])
            else:
                e[item["name"]] = field[item["valueFrom"]["fieldRef"]["fieldPath"]]
        e.update(extra or {})
        return e

    def argv(self, c):
        return [self.map_text(a) for a in c.get("command", []) + c.get("args", [])]

    def run_init(self, extra_env=None):
        logs = []
        for c in self.spec.get("initContainers", []):
            out = subprocess.run(self.argv(c), env=self.env(c, extra_env), capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, f"init container {c['name']} failed: {out.stderr}"
            logs.append(out.stderr)
        return "".join(logs)

    def start(self, name, extra_env=None):
        c = [c for c in self.spec["containers"] if c["name"] == name][0]
        log = open(os.path.join(self.root, f"{name}.log"), "ab")
        return c, subprocess.Popen(self.argv(c), env=self.env(c, extra_env), stdout=log, stderr=subprocess.STDOUT)


def image_paths():
    """Container path -> checkout path, from the Dockerfile's COPY lines."""
    paths = {"/usr/local/bin/levee": LEVEE}
    for src, dst in re.findall(r"^COPY (?!--)(\S+) (\S+)$", open(os.path.join(DEPLOY, "docker", "Dockerfile")).read(), re.M):
        if src.endswith("/") and dst.startswith("/"):
            paths[dst.rstrip("/")] = os.path.join(ROOT, src.rstrip("/"))
    return paths


def probe(port, p):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{p['httpGet']['path']}",
                                    timeout=p.get("timeoutSeconds", 1)) as r:
            return 200 <= r.status < 400
    except Exception:  # noqa: BLE001 - any failure is a failed probe, as for the kubelet
        return False


def run_probe(port, p, what, successes=1, max_failures=None):
    """Probes as the kubelet does: after initialDelaySeconds, every
    periodSeconds; fails after failureThreshold failures in a row."""
    max_failures = max_failures or p.get("failureThreshold", 3)
    time.sleep(p.get("initialDelaySeconds", 0))  # the manifest's initial delay
    ok = failures = 0
    while True:
        if probe(port, p):
            ok += 1
            failures = 0
            if ok >= successes:
                return
        else:
            failures += 1
            assert failures < max_failures, f"{what} failed {failures} times in a row"
        time.sleep(p.get("periodSeconds", 10))  # the manifest's probe period


def seed_backup(data_dir, repo, key_file, values):
    """A stopped server's data with these keys, backed up to repo."""
    port = free_port()
    p = subprocess.Popen([LEVEE, "serve", "--data-dir", str(data_dir), "--port", str(port), "--http-port", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: redis.Redis(port=port).mset(values), 20, what="the seed server")
    finally:
        terminate(p)
    subprocess.run([LEVEE, "backup", "create", "--data-dir", str(data_dir), "--repo", repo, "--key-file",
                    str(key_file)], check=True, capture_output=True, timeout=120)


def test_pod_run_single_overlay_restores_on_empty_becomes_ready_stays_live_and_stops_cleanly(tmp_path):
    objs = overlay("single")
    sts = find(objs, "StatefulSet", "levee")[0]
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "bin"))
    os.symlink(LEVEE, os.path.join(root, "bin", "levee"))
    password = secrets.token_hex(16)
    key = subprocess.run([LEVEE, "backup", "keygen"], capture_output=True, text=True, check=True).stdout
    key_file = tmp_path / "key"
    key_file.write_text(key)
    # A backup to restore from: the pod's volume is empty, so the
    # restore-on-empty init container must bring it in.
    repo = "file://" + os.path.join(root, "repo")
    seed_backup(os.path.join(root, "seed"), repo, key_file, {"restored:1": "yes", "restored:2": "also"})

    resp_port, http_port = free_port(), free_port()
    settings = yaml.safe_load(config_map(objs, "levee-config")["data"]["levee.yaml"])
    replace = [(settings["backup-repo"], repo),  # no traffic to GCS from here
               (f"port: {settings['port']}\n", f"port: {resp_port}\n"),
               (f"http-port: {settings['http-port']}\n", f"http-port: {http_port}\n")]
    secret_data = {"levee-auth": {"password": password + "\n"}, "levee-backup-key": {"key": key}}
    pod = PodRun(root, objs, sts, secret_data, replace)
    init_env = {"LEVEE_BACKUP_REPO": repo}  # the init container's copy of backup-repo
    log = pod.run_init(init_env)
    assert "levee-0 is primary" in log and "restoring the newest backup" in log, log

    c, proc = pod.start("levee")
    try:
        run_probe(http_port, c["startupProbe"], "startup probe")
        run_probe(http_port, c["readinessProbe"], "readiness probe", max_failures=30)
        r = redis.Redis(port=resp_port, password=password)
        assert r.get("restored:1") == b"yes" and r.get("restored:2") == b"also"
        assert r.info("replication")["role"] == "master"
        r.set("written-in-pod", "1")
        run_probe(http_port, c["livenessProbe"], "liveness probe", successes=2)
        grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=grace) == 0
        assert time.monotonic() - t0 < grace
    finally:
        terminate(proc)

    # The pod comes back on its volume: no restore over existing data.
    log = pod.run_init(init_env)
    assert "holds a database; nothing to do" in log, log
    c, proc = pod.start("levee")
    try:
        run_probe(http_port, c["readinessProbe"], "readiness probe after restart", max_failures=30)
        r = redis.Redis(port=resp_port, password=password)
        assert r.get("written-in-pod") == b"1" and r.get("restored:1") == b"yes"
    finally:
        terminate(proc)
        assert proc.returncode == 0


def test_restore_on_empty_refuses_to_start_empty_when_the_repository_is_unreadable(tmp_path):
    # An encrypted repository read with the wrong key: an error, not "empty".
    key, wrong = tmp_path / "key", tmp_path / "wrong-key"
    for f in (key, wrong):
        f.write_text(subprocess.run([LEVEE, "backup", "keygen"], capture_output=True, text=True).stdout)
    env = dict(os.environ, LEVEE_DATA_DIR=str(tmp_path / "data"), LEVEE_ROLE_OUT=str(tmp_path / "role"),
               LEVEE_BIN=LEVEE, LEVEE_BACKUP_KEY_FILE=str(wrong))
    (tmp_path / "role").write_text("primary\n")
    repo = tmp_path / "repo"
    seed_backup(tmp_path / "seed", f"file://{repo}", key, {"k": "v"})
    script = os.path.join(SCRIPTS, "restore-on-empty.sh")
    out = subprocess.run(["/bin/sh", script], env=dict(env, LEVEE_BACKUP_REPO=f"file://{repo}"), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "cannot read" in out.stderr, out.stderr
    assert not (tmp_path / "data" / "db").exists()
    # No repository at all yet (a new cluster): start empty.
    out = subprocess.run(["/bin/sh", script], env=dict(env, LEVEE_BACKUP_REPO=f"file://{tmp_path}/none"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "starting with an empty database" in out.stderr, out.stderr
    # A replica never restores.
    (tmp_path / "role").write_text("replica\n")
    out = subprocess.run(["/bin/sh", script], env=dict(env, LEVEE_BACKUP_REPO=f"file://{repo}"), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "not restoring" in out.stderr


# --- init scripts against real Sentinel -------------------------------------------------

def run_configure(tmp_path, pod, **env):
    src = tmp_path / "levee.yaml"
    if not src.exists():
        src.write_text(config_map(overlay("single"), "levee-config")["data"]["levee.yaml"] +
                       "replicaof: \"stale:1\"\n")
    e = dict(os.environ, POD_NAME=pod, POD_NAMESPACE="db", LEVEE_CONFIG_SRC=str(src),
             LEVEE_CONFIG_OUT=str(tmp_path / f"{pod}.yaml"), LEVEE_ROLE_OUT=str(tmp_path / f"{pod}.role"), **env)
    return subprocess.run(["/bin/sh", os.path.join(SCRIPTS, "configure.sh")], env=e, capture_output=True, text=True,
                          timeout=60)


def configure(tmp_path, pod, **env):
    out = run_configure(tmp_path, pod, **env)
    assert out.returncode == 0, out.stderr
    settings = yaml.safe_load((tmp_path / f"{pod}.yaml").read_text())
    return settings, (tmp_path / f"{pod}.role").read_text().strip()


def test_configure_derives_the_role_from_the_ordinal_sentinel_or_upstream(tmp_path, server_factory):
    # No Sentinels configured (the single overlay): ordinal 0 is the primary.
    s, role = configure(tmp_path, "levee-0")
    assert role == "primary" and s["replicaof"] == ""
    assert s["replica-announce-ip"] == "levee-0.levee-headless.db.svc.cluster.local"
    s, role = configure(tmp_path, "levee-2")
    assert role == "replica" and s["replicaof"] == "levee-0.levee-headless.db.svc.cluster.local:6379"

    # Sentinels configured but none answers: the step fails rather than guess
    # (levee-0 guessing "primary" after a failover would be a second one).
    dead = f"127.0.0.1:{free_port()}"
    pw = tmp_path / "password"
    pw.write_text("sentinel-pw\n")
    for pod in ("levee-0", "levee-2"):
        out = run_configure(tmp_path, pod, LEVEE_SENTINELS=dead, LEVEE_PASSWORD_FILE=str(pw))
        assert out.returncode == 1 and "no Sentinel named the primary" in out.stderr, out.stderr
        assert "Connection refused" in out.stderr, out.stderr  # what each Sentinel said
    out = run_configure(tmp_path, "levee-0", LEVEE_SENTINELS=dead, LEVEE_PASSWORD_FILE=str(tmp_path / "none"))
    assert out.returncode == 1 and "cannot read Sentinel's password" in out.stderr, out.stderr

    # A real Sentinel (with the password) watching a real levee primary decides.
    primary = server_factory()
    sport = free_port()
    sdir = tmp_path / "sentinel"
    sdir.mkdir()
    (sdir / "sentinel.conf").write_text(f"port {sport}\nbind 127.0.0.1\ndir {sdir}\nrequirepass sentinel-pw\n"
                                        f"sentinel monitor levee 127.0.0.1 {primary.port} 1\n")
    sentinel = subprocess.Popen(["redis-sentinel", str(sdir / "sentinel.conf")], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: redis.Redis(port=sport, password="sentinel-pw").ping(), 20, what="redis-sentinel")
        sentinels = f"{dead} 127.0.0.1:{sport}"
        auth = {"LEVEE_SENTINELS": sentinels, "LEVEE_PASSWORD_FILE": str(pw)}
        s, role = configure(tmp_path, "levee-0", **auth)
        assert role == "replica" and s["replicaof"] == f"127.0.0.1:{primary.port}"  # not the ordinal's guess
        # Sentinel names this pod: it is the primary only when a majority of
        # the Sentinels answered (a minority may have missed a failover).
        out = run_configure(tmp_path, "levee-1", POD_IP="127.0.0.1", **auth)
        assert out.returncode == 1 and "only 1 of 2 Sentinels answered" in out.stderr, out.stderr
        s, role = configure(tmp_path, "levee-1", POD_IP="127.0.0.1", LEVEE_SENTINELS=f"127.0.0.1:{sport}",
                            LEVEE_PASSWORD_FILE=str(pw))
        assert role == "primary" and s["replicaof"] == ""
        # A wrong password: Sentinel refuses, the step fails and says so.
        bad = tmp_path / "bad"
        bad.write_text("wrong\n")
        out = run_configure(tmp_path, "levee-0", LEVEE_SENTINELS=sentinels, LEVEE_PASSWORD_FILE=str(bad))
        assert out.returncode == 1 and "WRONGPASS" in out.stderr + out.stdout, out.stderr
        # The written file is one levee starts from, and it replicates.
        primary.client().set("k", "v")
        s, _ = configure(tmp_path, "levee-2", LEVEE_REPLICA_PRIORITY="150", **auth)
        assert s["replica-priority"] == 150
        replica = server_factory(extra_args=["--config", str(tmp_path / "levee-2.yaml"), "--bind", "127.0.0.1",
                                             "--requirepass-file", "", "--masterauth-file", "",
                                             "--backup-repo", ""], start=True)
        wait_until(lambda: replica.client().get("k") == b"v", 30, what="the configured replica to copy the primary")

        # Sentinel's init step asks the running Sentinel too.
        conf = tmp_path / "sentinel-1.conf"
        env = dict(os.environ, POD_NAME="levee-sentinel-1", POD_NAMESPACE="db", LEVEE_FIRST="levee-0.x:6379",
                   LEVEE_SENTINELS=f"127.0.0.1:{sport}", SENTINEL_CONFIG_OUT=str(conf), LEVEE_PASSWORD_FILE=str(pw))
        sentinel_configure = os.path.join(K8S, "overlays", "replicated", "sentinel-configure.sh")
        out = subprocess.run(["/bin/sh", sentinel_configure], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        text = conf.read_text()
        assert f"sentinel monitor levee 127.0.0.1 {primary.port} 2" in text
        assert "requirepass sentinel-pw" in text and "sentinel auth-pass levee sentinel-pw" in text
        assert oct(os.stat(conf).st_mode & 0o777) == "0o600"
        # Without a readable password it refuses to write a Sentinel anyone could drive.
        out = subprocess.run(["/bin/sh", sentinel_configure], env=dict(env, LEVEE_PASSWORD_FILE=str(tmp_path / "none")),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 1 and "cannot read the levee password" in out.stderr
    finally:
        terminate(sentinel)

    # Second region: ordinal 0 follows the upstream, the rest follow ordinal 0.
    s, role = configure(tmp_path, "levee-0", LEVEE_UPSTREAM="levee-upstream:6379")
    assert role == "replica" and s["replicaof"] == "levee-upstream:6379"
    s, role = configure(tmp_path, "levee-1", LEVEE_UPSTREAM="levee-upstream:6379")
    assert s["replicaof"] == "levee-0.levee-headless.db.svc.cluster.local:6379"


def test_configure_refuses_a_pod_name_without_an_ordinal(tmp_path):
    out = subprocess.run(["/bin/sh", os.path.join(SCRIPTS, "configure.sh")],
                         env=dict(os.environ, POD_NAME="levee", LEVEE_CONFIG_SRC="/dev/null",
                                  LEVEE_CONFIG_OUT=str(tmp_path / "x")), capture_output=True, text=True)
    assert out.returncode == 1 and "does not end in -<ordinal>" in out.stderr


# --- HAProxy configs ---------------------------------------------------------------

def tcp_checks(text, backend="levee_primary"):
    block = text.split(f"backend {backend}", 1)[1].split("\nbackend ", 1)[0].split("\nfrontend ", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip().startswith(("tcp-check", "option tcp-check"))]


def test_kubernetes_haproxy_configs_are_valid_and_check_like_the_tested_one():
    tested = tcp_checks(open(os.path.join(DEPLOY, "haproxy", "haproxy.cfg")).read())
    files = [os.path.join(K8S, "overlays", "replicated", "haproxy.cfg"),
             os.path.join(K8S, "components", "region-endpoint", "haproxy-region.cfg"),
             os.path.join(K8S, "overlays", "second-region", "haproxy-upstream.cfg")]
    for f in files[:2]:
        assert tcp_checks(open(f).read()) == tested, f
    env = dict(os.environ, LEVEE_PASSWORD="x", LEVEE_TLS_DIR="/nonexistent", LEVEE_REGION_BIND="127.0.0.1:0",
               LEVEE_NODE_0="127.0.0.1:1", LEVEE_NODE_1="127.0.0.1:2", LEVEE_NODE_2="127.0.0.1:3",
               LEVEE_UPSTREAM_BIND="127.0.0.1:0", LEVEE_REGION_ADDR="127.0.0.1:4", LEVEE_REGION_NAME="x",
               POD_NAMESPACE="db", LEVEE_CLUSTER_DOMAIN="cluster.local")
    out = subprocess.run(["haproxy", "-c", "-f", files[0]], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def make_certs(d, server_name="levee-region.test"):
    """A CA, a server certificate for server_name and a client certificate,
    plus a client certificate from another CA."""
    def run(*a):
        subprocess.run(["openssl"] + list(a), check=True, capture_output=True, cwd=d)
    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}",
            "-keyout", f"{ca}.key", "-out", f"{ca}.crt")
    for name, cn, ca in (("server", server_name, "ca"), ("client", "second-region", "ca"),
                         ("intruder", "second-region", "other-ca")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", f"{name}.key", "-out",
            f"{name}.csr")
        ext = f"{name}.ext"
        with open(os.path.join(d, ext), "w") as f:
            f.write(f"subjectAltName=DNS:{cn}\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", f"{name}.crt")
    for side, name, ca in (("region", "server", "ca"), ("upstream", "client", "ca"), ("intruder", "intruder", "ca")):
        os.makedirs(os.path.join(d, side))
        with open(os.path.join(d, side, "tls.pem"), "w") as f:
            f.write(open(os.path.join(d, f"{name}.crt")).read() + open(os.path.join(d, f"{name}.key")).read())
        shutil.copy(os.path.join(d, f"{ca}.crt"), os.path.join(d, side, "ca.crt"))


def start_haproxy(cfg, env, log):
    p = subprocess.Popen(["haproxy", "-db", "-f", cfg], env=dict(os.environ, **env), stdout=log, stderr=subprocess.STDOUT)
    return p


def test_second_region_replicates_over_mutual_tls_through_both_proxies(tmp_path, server_factory):
    require(shutil.which("haproxy") and shutil.which("openssl"), "needs haproxy and openssl")
    make_certs(str(tmp_path))
    primary = server_factory()
    local_replica = server_factory(extra_args=["--replicaof", f"127.0.0.1:{primary.port}"])
    wait_until(lambda: primary.client().info("replication")["connected_slaves"] >= 1, 20, what="a local replica")
    region_port, upstream_port = free_port(), free_port()
    log = open(tmp_path / "haproxy.log", "ab")
    region = start_haproxy(os.path.join(K8S, "components", "region-endpoint", "haproxy-region.cfg"),
                           {"LEVEE_PASSWORD": "", "LEVEE_TLS_DIR": str(tmp_path / "region"),
                            "LEVEE_REGION_BIND": f"127.0.0.1:{region_port}", "LEVEE_NODE_0": f"127.0.0.1:{primary.port}",
                            "LEVEE_NODE_1": f"127.0.0.1:{local_replica.port}", "LEVEE_NODE_2": f"127.0.0.1:{free_port()}"},
                           log)
    upstream = start_haproxy(os.path.join(K8S, "overlays", "second-region", "haproxy-upstream.cfg"),
                             {"LEVEE_UPSTREAM_BIND": f"127.0.0.1:{upstream_port}",
                              "LEVEE_REGION_ADDR": f"127.0.0.1:{region_port}", "LEVEE_REGION_NAME": "levee-region.test",
                              "LEVEE_TLS_DIR": str(tmp_path / "upstream")}, log)
    try:
        primary.client().set("before", "1")
        far = server_factory(extra_args=["--replicaof", f"127.0.0.1:{upstream_port}", "--replica-priority", "200"])
        wait_until(lambda: far.client().get("before") == b"1", 30, what="the second region's replica to sync")
        primary.client().set("after", "2")
        wait_until(lambda: far.client().get("after") == b"2", 30, what="streamed writes over TLS")
        assert far.client().info("replication")["master_link_status"] == "up"
        # The second region's certificate gets through; without a client
        # certificate from the right CA, no way in.
        for certs, gets_in in (("upstream", True), ("intruder", False), (None, False)):
            cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{region_port}", "-CAfile",
                   str(tmp_path / "ca.crt"), "-verify_return_error", "-quiet"]
            if certs:
                cmd += ["-cert", str(tmp_path / certs / "tls.pem")]
            out = subprocess.run(cmd, input=b"PING\r\nQUIT\r\n", capture_output=True, timeout=20)
            assert (b"+PONG" in out.stdout) == gets_in, (certs, out.stdout, out.stderr[-300:])
    finally:
        terminate(region)
        terminate(upstream)


# --- alerts and dashboard --------------------------------------------------------------

MON = os.path.join(K8S, "monitoring")


def rules_spec():
    return yaml.safe_load(open(os.path.join(MON, "prometheusrule.yaml")))["spec"]


def promtool_test(d, spec):
    with open(os.path.join(d, "levee.rules.yaml"), "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    shutil.copy(os.path.join(MON, "alerts.test.yaml"), d)
    return subprocess.run(["promtool", "test", "rules", os.path.join(d, "alerts.test.yaml")], capture_output=True,
                          text=True, timeout=120)


def test_alert_rules_pass_promtool_and_every_alert_is_tested(tmp_path):
    require(shutil.which("promtool") is not None, "promtool (Debian's prometheus) is not installed")
    spec = rules_spec()
    with open(tmp_path / "levee.rules.yaml", "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    out = subprocess.run(["promtool", "check", "rules", str(tmp_path / "levee.rules.yaml")], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    out = promtool_test(str(tmp_path), spec)
    assert out.returncode == 0, out.stdout + out.stderr
    alerts = [r["alert"] for g in spec["groups"] for r in g["rules"]]
    tests = yaml.safe_load(open(os.path.join(MON, "alerts.test.yaml")))["tests"]
    for name in alerts:
        cases = [c for t in tests for c in t.get("alert_rule_test", []) if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in cases), f"{name} is never shown firing"
        assert any(not c["exp_alerts"] for c in cases), f"{name} is never shown quiet"
        # Drop the alert: its firing case must now fail, so the test
        # really exercises it.
        crippled = json.loads(json.dumps(spec))
        for g in crippled["groups"]:
            g["rules"] = [r for r in g["rules"] if r.get("alert") != name]
        d = tmp_path / name
        d.mkdir()
        assert promtool_test(str(d), crippled).returncode != 0, f"the tests pass without {name}"
    required = {"LeveeDown", "LeveeRestarting", "LeveeReplicationLinkDown", "LeveeReplicationLagWarning",
                "LeveeReplicationLagCritical", "LeveeSyncWriteTimeouts", "LeveeBackupFailed", "LeveeBackupTooOld",
                "LeveeBackupVerifyFailing", "LeveeDiskAlmostFull", "LeveeWriteStalls", "LeveeNodeNotReady",
                "LeveePodsMissing", "LeveeNoPrimary", "LeveeTwoPrimaries", "LeveeEndpointHasNoPrimary",
                "LeveeSentinelDown", "LeveeSentinelCannotFailOver", "LeveeSentinelsDisagree"}
    assert required <= set(alerts)


def documented_metrics():
    text = open(os.path.join(ROOT, "docs", "metrics.md")).read()
    return set(re.findall(r"^\| `([a-z_]+)` \|", text, re.M))


def levee_metric_names(expr):
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values (proxy="levee_primary") are not metric names
    names = set(re.findall(r"\b((?:levee|process)_[a-z_]+)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_rules_and_dashboard_use_only_metrics_levee_exports():
    known = documented_metrics()  # test_observability checks this table against a scrape
    assert "levee_backup_schedule_seconds" in known
    exprs = [r["expr"] for g in rules_spec()["groups"] for r in g["rules"]]
    dash = json.load(open(os.path.join(MON, "levee-dashboard.json")))
    exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = set().union(*(levee_metric_names(e) for e in exprs))
    assert used and used <= known, used - known
    assert len(dash["panels"]) >= 10 and dash["uid"] == "levee-overview"
    # The ServiceMonitor's job label is what the rules select on.
    objs = render(MON)[1]
    sm = find(objs, "ServiceMonitor", "levee")[0]
    svc = find(overlay("single"), "Service", "levee-metrics")[0]
    assert all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
    assert 'job="levee-metrics"' in rules_spec()["groups"][0]["rules"][0]["expr"]
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]


def test_gmp_monitoring_scrapes_every_component_and_carries_every_alert():
    """GKE Managed Prometheus (which Terraform turns on) runs no Prometheus
    Operator: monitoring-gmp has the same alerts as a Rules object, and a
    PodMonitoring per component whose name is the job label the alerts use
    and whose port is a named port of the pods it selects."""
    objs = render(os.path.join(K8S, "monitoring-gmp"))[1]
    assert not [o for o in objs if o["apiVersion"].startswith("monitoring.coreos.com/")]
    rules = find(objs, "Rules", "levee")[0]
    assert rules["apiVersion"] == "monitoring.googleapis.com/v1" and rules["spec"] == rules_spec()
    pods = [o["spec"]["template"] for o in overlay("replicated") if o["kind"] in ("StatefulSet", "Deployment")]
    monitors = {m["metadata"]["name"]: m for m in find(objs, "PodMonitoring")}
    for name, m in monitors.items():
        sel = m["spec"]["selector"]["matchLabels"]
        selected = [t for t in pods if all(t["metadata"]["labels"].get(k) == v for k, v in sel.items())]
        assert selected, f"PodMonitoring {name} selects no pod"
        for ep in m["spec"]["endpoints"]:
            for t in selected:
                assert ep["port"] in [p.get("name") for c in t["spec"]["containers"] for p in c.get("ports", [])], \
                    f"{name}: no port {ep['port']} on {t['metadata']['labels']}"
    exprs = " ".join(r["expr"] for g in rules_spec()["groups"] for r in g["rules"])
    jobs = set(re.findall(r'job=~?"(?:\(\.\*/\)\?)?([a-z-]+)"', exprs))
    assert jobs == {"levee-metrics", "levee-sentinel"} and jobs <= set(monitors), jobs
    assert {"levee-metrics", "levee-haproxy", "levee-sentinel"} <= set(monitors)


# --- Terraform ----------------------------------------------------------------------------

TF = os.path.join(DEPLOY, "terraform")


def test_terraform_fmt():
    require(shutil.which("terraform") is not None,
            "terraform is not installed on this machine: fmt check skipped (the HCL checks below still run)")
    out = subprocess.run(["terraform", "fmt", "-check", "-recursive", "-diff", TF], capture_output=True, text=True,
                         env=dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null"))
    assert out.returncode == 0, out.stdout + out.stderr


def hcl():
    require(NODE is not None, "node is not installed: the HCL parse check needs it")
    out = subprocess.run([NODE, os.path.join(TOOLS, "hcl2json.mjs"), TF], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def blocks(files, kind, prefix=""):
    """{(type, name): body} of resource/data blocks, or {name: body} for
    variable/output/module, over the files under prefix."""
    out = {}
    for path, doc in files.items():
        if os.path.dirname(path) != prefix:
            continue
        for k, v in doc.get(kind, {}).items():
            if kind in ("resource", "data"):
                for name, bodies in v.items():
                    out[(k, name)] = bodies[0]
            else:
                out[k] = v[0]
    return out


def test_terraform_structure_least_privilege_and_bucket_protection():
    files = hcl()
    for prefix in ("", "modules/gke-cluster"):
        text = "".join(open(os.path.join(TF, p)).read() for p in files if os.path.dirname(p) == prefix)
        declared = set(blocks(files, "variable", prefix))
        used = set(re.findall(r"\bvar\.([a-z0-9_]+)", text))
        assert used <= declared, f"{prefix or 'root'}: undeclared {used - declared}"
        assert declared <= used, f"{prefix or 'root'}: unused {declared - used}"
        for name, body in blocks(files, "variable", prefix).items():
            assert body.get("description") and body.get("type"), name
    root = blocks(files, "resource")
    module = blocks(files, "resource", "modules/gke-cluster")
    # Every module call passes each variable the module requires.
    required = {n for n, b in blocks(files, "variable", "modules/gke-cluster").items() if "default" not in b}
    for name, call in blocks(files, "module").items():
        assert required <= set(call), (name, required - set(call))
    bucket = root[("google_storage_bucket", "backups")]
    assert bucket["versioning"][0]["enabled"] is True
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert "google_kms_crypto_key.backups" in bucket["encryption"][0]["default_kms_key_name"]
    # No retention policy (levee rewrites its lock objects and prunes young
    # backups; GCS would refuse both): deleted or replaced objects stay
    # restorable as noncurrent versions instead.
    assert "retention_policy" not in bucket
    keep = bucket["lifecycle_rule"][0]
    assert keep["condition"][0]["with_state"] == "ARCHIVED" and keep["action"][0]["type"] == "Delete"
    assert "backup_recovery_days" in str(keep["condition"][0]["days_since_noncurrent_time"])
    assert "backup_bucket_location" in bucket["location"]
    # No primitive roles anywhere; levee's account gets one bucket-scoped role.
    roles = json.dumps(files)
    for primitive in ("roles/owner", "roles/editor", "roles/viewer"):
        assert primitive not in roles
    assert not any(t == "google_project_iam_member" and "levee" in json.dumps(b) for (t, _), b in root.items())
    grant = root[("google_storage_bucket_iam_member", "levee_objects")]
    assert grant["role"] == "roles/storage.objectUser" and "google_storage_bucket.backups" in grant["bucket"]
    wi = root[("google_service_account_iam_member", "workload_identity")]
    assert wi["role"] == "roles/iam.workloadIdentityUser" and "svc.id.goog[${var.namespace}/levee]" in wi["member"]
    # levee authenticates with Workload Identity; a long-lived HMAC key only on request.
    hmac = root[("google_storage_hmac_key", "levee")]
    assert hmac["count"] == "${var.create_hmac_key ? 1 : 0}"
    assert blocks(files, "variable")["create_hmac_key"]["default"] is False
    sa = find(overlay("single"), "ServiceAccount", "levee")[0]
    assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].startswith("levee-backup@")
    assert root[("google_service_account", "levee")]["account_id"] == "levee-backup"
    # Private nodes pull public images through Cloud NAT.
    assert module[("google_compute_router_nat", "nat")]["source_subnetwork_ip_ranges_to_nat"]
    # Node accounts differ for clusters whose names share 20 characters.
    account = module[("google_service_account", "nodes")]["account_id"]
    assert "sha1(var.name)" in account
    cluster = module[("google_container_cluster", "this")]
    assert cluster["private_cluster_config"][0]["enable_private_nodes"] is True
    assert "svc.id.goog" in cluster["workload_identity_config"][0]["workload_pool"]
    assert "${var.region}" == cluster["location"]
    pool = module[("google_container_node_pool", "levee")]
    assert pool["node_config"][0]["workload_metadata_config"][0]["mode"] == "GKE_METADATA"
    assert "var.second_region" in json.dumps(blocks(files, "module")["second"])


# --- image and CI ------------------------------------------------------------------------

def test_dockerfile_builds_with_the_readme_scripts_and_runs_as_non_root():
    text = open(os.path.join(DEPLOY, "docker", "Dockerfile")).read()
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "scripts/run.sh" in readme and "scripts/test.sh" in readme
    build_sh = open(os.path.join(ROOT, "scripts", "build.sh")).read()
    assert "scripts/install-deps.sh" in build_sh  # the README's scripts install with it
    runs = re.findall(r"^RUN (.+?)(?<!\\)$", text, re.M | re.S)
    assert any("scripts/build.sh" in r for r in runs), runs
    assert any("install-deps.sh runtime" in r for r in runs), runs
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) == 2 and all("bookworm" in s for s in stages)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0].isdigit() and user[-1].split(":")[0] != "0"
    # The image's user is the pods' runAsUser.
    sts = find(overlay("single"), "StatefulSet", "levee")[0]
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user[-1].split(":")[0])
    # The image has what the manifests call.
    for c in containers(sts):
        path = c["command"][-1] if c["command"][0] == "/bin/sh" else c["command"][0]
        assert path in image_paths() or any(path.startswith(p + "/") and os.path.exists(path.replace(p, h, 1))
                                             for p, h in image_paths().items()), path


def test_runtime_packages_cover_every_library_the_binary_links():
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
                        subprocess.run(["readelf", "-d", LEVEE], capture_output=True, text=True).stdout)
    out = subprocess.run(["bash", "-c", "source <(sed -n '/^runtime=(/,/^)/p' scripts/install-deps.sh); "
                          "echo ${runtime[@]}"], capture_output=True, text=True, cwd=ROOT)
    runtime = set(out.stdout.split())
    assert runtime
    for lib in needed:
        path = subprocess.run(["bash", "-c", f"ldconfig -p | awk '$1 == \"{lib}\" {{print $NF; exit}}'"],
                              capture_output=True, text=True).stdout.strip()
        assert path, lib
        pkgs = set()
        for candidate in (path, os.path.realpath(path)):
            r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if r.returncode == 0:
                pkgs |= {p.split(":")[0] for p in r.stdout.split(": ")[0].split(", ")}
        assert pkgs & runtime, f"{lib} ({path}) comes from {pkgs}, not in install-deps.sh's runtime list"


def test_ci_workflow_runs_the_readme_test_command_builds_the_image_and_checks_terraform():
    wf = yaml.safe_load(open(os.path.join(ROOT, ".github", "workflows", "ci.yml")))
    ci_run = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "scripts/test.sh" in ci_run
    jobs = wf["jobs"]
    test_steps = " ".join(s.get("run", "") for s in jobs["test"]["steps"])
    assert ".ci/run" in test_steps
    assert "bookworm" in jobs["test"]["container"]["image"]
    build = [s for s in jobs["image"]["steps"] if "build-push-action" in s.get("uses", "")][0]
    assert build["with"]["file"] == "deploy/docker/Dockerfile"
    assert build["with"]["push"] == "${{ startsWith(github.ref, 'refs/tags/v') }}"
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads "on" as true
    assert "v*" in on["push"]["tags"]
    tf = " ".join(s.get("run", "") for s in jobs["terraform"]["steps"])
    assert "terraform fmt -check -recursive" in tf and "terraform validate" in tf
    assert jobs["terraform"]["defaults"]["run"]["working-directory"] == "deploy/terraform"
    # Every action is pinned by a full commit, not a tag that can move.
    uses = [s["uses"] for j in jobs.values() for s in j.get("steps", []) if "uses" in s]
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses
    # The plan runs with a short-lived token (Workload Identity Federation)
    # against the state in its bucket, never a stored key or empty state.
    assert jobs["terraform"]["permissions"]["id-token"] == "write"
    assert "GOOGLE_CREDENTIALS" not in json.dumps(jobs) and "secrets.GCP" not in json.dumps(jobs)
    assert "-backend-config" in tf
    assert 'backend "gcs"' in open(os.path.join(TF, "versions.tf")).read()
