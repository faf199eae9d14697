"""A real Prometheus (Debian's) watching a simulated cluster the way the
Prometheus Operator would from deploy/kubernetes/monitoring: it scrapes the
pods each PodMonitor selects (label selector, named container port, path,
the job and pod labels the operator gives them) and evaluates the
PrometheusRule's alerts. Only time is shortened: scrapes and evaluations
every second, and every alert's `for:` set to 0, so a test sees at once
what would fire after its delay.

Used by test_kubernetes.py; one test's thread calls it.
"""
import json
import os
import subprocess
import urllib.parse
import urllib.request

import yaml

from conftest import free_port, require, terminate, wait_until
from test_deploy import K8S, render


def monitoring_objects():
    return render(os.path.join(K8S, "monitoring"))[1]


def pod_targets(cluster, monitor):
    """The scrape targets a PodMonitor gives: (address, labels) per pod."""
    spec = monitor["spec"]
    selector = spec["selector"]["matchLabels"]
    out = []
    for pod in list(cluster.pods.values()):
        if pod.ip is None or any(pod.labels.get(k) != v for k, v in selector.items()):
            continue
        for ep in spec["podMetricsEndpoints"]:
            ports = [p["containerPort"] for c in pod.spec["containers"] for p in c.get("ports", [])
                     if p.get("name") == ep["port"]]
            for port in ports:
                out.append((f"{pod.ip}:{port}", ep.get("path", "/metrics"),
                            {"job": f"{cluster.namespace}/{monitor['metadata']['name']}",
                             "namespace": cluster.namespace, "pod": pod.name}))
    return out


class Prometheus:
    def __init__(self, cluster, workdir, monitors):
        require(os.path.exists("/usr/bin/prometheus"), "prometheus (Debian's) is not installed")
        objs = monitoring_objects()
        self.dir = os.path.join(workdir, "prometheus")
        os.makedirs(self.dir, exist_ok=True)
        rules = [o for o in objs if o["kind"] == "PrometheusRule"][0]["spec"]
        for group in rules["groups"]:
            group["interval"] = "1s"
            for rule in group["rules"]:
                rule.pop("for", None)
        with open(os.path.join(self.dir, "rules.yaml"), "w") as f:
            yaml.safe_dump(rules, f, sort_keys=False)
        jobs = []
        for name in monitors:
            monitor = [o for o in objs if o["kind"] == "PodMonitor" and o["metadata"]["name"] == name][0]
            targets = pod_targets(cluster, monitor)
            assert targets, f"PodMonitor {name} selects no pod with its port"
            for i, (addr, path, labels) in enumerate(targets):
                jobs.append({"job_name": f"{name}-{i}", "metrics_path": path, "scrape_interval": "1s",
                             "scrape_timeout": "900ms", "static_configs": [{"targets": [addr], "labels": labels}]})
        config = {"global": {"evaluation_interval": "1s"}, "rule_files": ["rules.yaml"], "scrape_configs": jobs}
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(
            ["/usr/bin/prometheus", f"--config.file={self.dir}/prometheus.yml", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.get("/-/ready") is not None, 30, what="Prometheus ready")

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.read()
        except OSError:
            return None

    def query(self, expr):
        """[(labels, value)] of an instant query."""
        body = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if body is None:
            return []
        return [(r["metric"], float(r["value"][1])) for r in json.loads(body)["data"]["result"]]

    def alerts(self):
        """{alert name: [labels]} of the alerts firing now."""
        body = self.get("/api/v1/alerts")
        out = {}
        for a in (json.loads(body)["data"]["alerts"] if body else []):
            if a["state"] == "firing":
                out.setdefault(a["labels"]["alertname"], []).append(a["labels"])
        return out

    def close(self):
        terminate(self.proc)
        self.log.close()
