"""io-threads 0 sizes the network threads by the CPUs levee can use: its
affinity mask and its cgroup's CPU limit (what a Kubernetes CPU limit sets),
not the machine's core count."""
import math
import os
import shutil

import pytest

from conftest import Levee, require


def started_by(data_dir, prefix):
    """levee serve choosing its own io threads, started through prefix."""
    return Levee(data_dir, prefix=prefix, io_threads=0)


def server_info(s):
    return s.client().info("server")


def make_cpu_cgroup(quota_us, period_us=100000):
    """A cgroup with a CPU limit of quota/period CPUs, in whichever hierarchy
    has the cpu controller here; returns (directory, file to join it)."""
    name = f"levee-test-{os.getpid()}"
    v1 = "/sys/fs/cgroup/cpu"
    if os.path.exists(os.path.join(v1, "cpu.cfs_quota_us")):
        d = os.path.join(v1, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "cpu.cfs_period_us"), "w") as f:
            f.write(str(period_us))
        with open(os.path.join(d, "cpu.cfs_quota_us"), "w") as f:
            f.write(str(quota_us))
        return d
    for v2 in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        controllers = os.path.join(v2, "cgroup.controllers")
        if os.path.exists(controllers) and "cpu" in open(controllers).read().split():
            with open(os.path.join(v2, "cgroup.subtree_control"), "w") as f:
                f.write("+cpu")
            d = os.path.join(v2, name)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "cpu.max"), "w") as f:
                f.write(f"{quota_us} {period_us}")
            return d
    require(False, "this machine has no cgroup hierarchy with the cpu controller to test a CPU limit with")


def test_default_io_threads_follow_the_machine_without_limits(tmpdir_path):
    s = started_by(os.path.join(tmpdir_path, "data"), []).start()
    try:
        info = server_info(s)
        cpus = len(os.sched_getaffinity(0))
        assert info["cpu_affinity_cpus"] == cpus
        limit = float(info["cpu_limit"])  # 0 unless the test itself runs under a CPU limit
        assert info["usable_cpus"] == (min(cpus, math.ceil(limit)) if limit > 0 else cpus)
        assert info["io_threads_active"] == info["usable_cpus"]
    finally:
        s.stop()


def test_an_affinity_mask_of_one_cpu_gives_one_io_thread(tmpdir_path):
    require(len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset"), "needs two CPUs and taskset")
    s = started_by(os.path.join(tmpdir_path, "data"), ["taskset", "-c", "0"]).start()
    try:
        info = server_info(s)
        assert info["cpu_affinity_cpus"] == 1
        assert info["usable_cpus"] == 1
        assert info["io_threads_active"] == 1
        assert '"usable_cpus":1' in s.read_log()
    finally:
        s.stop()


def test_a_cgroup_cpu_limit_caps_the_io_threads(tmpdir_path):
    require(len(os.sched_getaffinity(0)) >= 2, "needs two CPUs")
    d = make_cpu_cgroup(50000)  # half a CPU, as resources.limits.cpu: 500m
    join = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', d]
    s = started_by(os.path.join(tmpdir_path, "data"), join)
    try:
        s.start()
        info = server_info(s)
        assert float(info["cpu_limit"]) == 0.5
        assert info["usable_cpus"] == 1
        assert info["io_threads_active"] == 1
        # It still serves: the limit slows it, it does not stop it.
        c = s.client()
        c.set("k", "v")
        assert c.get("k") == b"v"
    finally:
        s.stop()
        os.rmdir(d)
