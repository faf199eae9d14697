"""Point-in-time restore (#7's PITR drill): the server archives its log into
the backup repository (backup-wal-archive), and `levee backup restore
--to-time` replays the archive onto the newest backup before the target."""
import json
import os
import subprocess
import time

from conftest import privileged, wait_until
from test_backup import backups, levee, metrics, ok, server_addr

ARCHIVE = ["--backup-wal-archive", "yes", "--backup-wal-archive-interval", "1s", "--backup-schedule", "off",
           "--backup-verify-schedule", "off"]



def archived(server):
    """Wait until the archive holds every record the server has written."""
    last = int(server.client().info("persistence")["wal_last_sequence"])
    wait_until(lambda: metrics(server)["levee_wal_archive_last_sequence"] >= last, 30,
               what=f"the archive to reach sequence {last}")
    return last


def now_ms_after_a_tick():
    """A millisecond time T such that everything acknowledged so far was
    written at or before T and everything written from now on is after T."""
    t = int(time.time() * 1000)
    while int(time.time() * 1000) <= t + 1:
        pass  # at most ~2 ms: the next writes get a later writer timestamp
    return t


def digest(client):
    return client.execute_command("DEBUG", "DIGEST")


def restore(repo, to_time, d, *extra):
    return levee("backup", "restore", "--repo", repo, "--data-dir", d, "--to-time", to_time, *extra)


def test_restore_to_a_moment_between_backups(server_factory, tmpdir_path):
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    s = server_factory(extra_args=["--backup-repo", repo] + ARCHIVE)
    c = s.client()
    for i in range(500):
        c.set(f"base{i}", i)
    ok("backup", "create", "--server", server_addr(s))  # the base
    assert len(backups(repo)) == 1

    # Phase 1: writes after the backup, of every kind.
    c.set("counter", 10)
    c.incr("counter")
    c.delete("base1")
    c.set("temp", "x", ex=3600)
    c.mset({f"p1_{i}": "a" * 200 for i in range(300)})
    t1 = now_ms_after_a_tick()
    digest1, keys1 = digest(c), c.dbsize()

    # Phase 2: what a bad deploy did a moment later.
    c.flushall()
    c.set("counter", 999)
    t2 = now_ms_after_a_tick()
    digest2 = digest(c)
    c.set("after-t2", 1)
    last = archived(s)
    m = metrics(s)
    assert m["levee_wal_archive_enabled"] == 1 and m["levee_wal_archive_lag_seconds"] == 0
    assert m["levee_wal_archive_failures_total"] == 0 and m["levee_wal_archive_gaps_total"] == 0
    assert m["levee_wal_archive_bytes_total"] > 300 * 200

    # To just before the FLUSHALL: phase 1's state, exactly.
    d1 = os.path.join(tmpdir_path, "t1")
    r = restore(repo, f"@{t1}", d1, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])
    assert summary["archived_records"] > 0 and summary["target_time_ms"] == t1
    r1 = server_factory(data_dir=d1)
    assert digest(r1.client()) == digest1 and r1.client().dbsize() == keys1
    assert r1.client().get("counter") == b"11" and r1.client().get("base1") is None
    assert 3500 < r1.client().ttl("temp") <= 3600

    # RFC 3339 time, the state after the bad deploy.
    d2 = os.path.join(tmpdir_path, "t2")
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t2 // 1000)) + ".%03dZ" % (t2 % 1000)
    r = restore(repo, iso, d2)
    assert r.returncode == 0, r.stderr
    assert "archived log records" in r.stdout
    assert digest(server_factory(data_dir=d2).client()) == digest2

    # Everything archived.
    d3 = os.path.join(tmpdir_path, "latest")
    r = restore(repo, "latest", d3, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["restored_sequence"] == last
    r3 = server_factory(data_dir=d3)
    assert digest(r3.client()) == digest(c)
    assert r3.client().get("after-t2") == b"1"

    # The window, as `levee backup archive` shows it.
    a = json.loads(ok("backup", "archive", "--repo", repo, "--json").stdout)
    assert len(a["timelines"]) == 1 and a["timelines"][0]["latest"]
    assert a["window"]["to_sequence"] == last and a["window"]["to_ms"] > t2
    assert "point-in-time restore window" in ok("backup", "archive", "--repo", repo).stdout


def test_targets_outside_the_window_are_refused_and_leave_nothing(server_factory, tmpdir_path):
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    before_any_backup = int(time.time() * 1000) - 60_000
    s = server_factory(extra_args=["--backup-repo", repo] + ARCHIVE)
    s.client().set("k", "v")
    ok("backup", "create", "--server", server_addr(s))
    s.client().set("k", "v2")
    archived(s)
    d = os.path.join(tmpdir_path, "r")
    r = restore(repo, f"@{before_any_backup}", d)
    assert r.returncode != 0 and "no backup was taken at or before" in r.stderr, r.stderr
    r = restore(repo, f"@{int(time.time() * 1000) + 3_600_000}", d)
    assert r.returncode != 0 and "the log archive ends at sequence" in r.stderr and "latest" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(d, "db")), "a refused restore left a database behind"
    for bad in ("yesterday", "2026-11-21 10:00", "2026-11-21T10:00:00+02:00", "@", "@12x"):
        r = restore(repo, bad, d)
        assert r.returncode != 0 and "is not a UTC time" in r.stderr, (bad, r.stderr)


def test_archiving_resumes_after_a_restart_and_prune_drops_what_no_backup_needs(server_factory, tmpdir_path):
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    s = server_factory(extra_args=["--backup-repo", repo] + ARCHIVE)
    for i in range(100):
        s.client().set(f"a{i}", i)
    ok("backup", "create", "--server", server_addr(s))
    archived(s)
    s.stop()
    s.start()
    for i in range(100):
        s.client().set(f"b{i}", i)
    last = archived(s)
    a = json.loads(ok("backup", "archive", "--repo", repo, "--json").stdout)
    assert len(a["timelines"]) == 1, "a restart is not a new timeline"
    d = os.path.join(tmpdir_path, "r")
    r = restore(repo, "latest", d, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["restored_sequence"] == last

    # A second backup; pruning to it drops the archive below its sequence.
    ok("backup", "create", "--server", server_addr(s))
    newest = backups(repo)[-1]
    # wal/<timeline>/<first>-<last> (docs/formats/backup.md): a segment whose
    # records all precede the kept backup's applied sequence goes, every
    # other one stays.
    (timeline,) = os.listdir(os.path.join(repo[len("file://"):], "wal"))
    tdir = os.path.join(repo[len("file://"):], "wal", timeline)
    before = sorted(n for n in os.listdir(tdir) if "-" in n)
    keep = [n for n in before if int(n.split("-")[1]) > newest["applied_sequence"]]
    assert len(keep) < len(before), "the test needs segments for prune to drop"
    p = json.loads(ok("backup", "prune", "--repo", repo, "--keep-last", "1", "--json").stdout.splitlines()[-1])
    assert p["archive_segments_deleted"] == len(before) - len(keep), (p, before, keep)
    assert sorted(n for n in os.listdir(tdir) if "-" in n) == keep
    a2 = json.loads(ok("backup", "archive", "--repo", repo, "--json").stdout)
    assert a2["timelines"][0]["segments"] == len(keep)


def test_a_promotion_starts_a_timeline_forked_from_the_old_one(server_factory, tmpdir_path):
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    args = ["--backup-repo", repo, "--backup-schedule-role", "primary"] + ARCHIVE
    primary = server_factory(extra_args=args)
    replica = server_factory(extra_args=args + ["--replicaof", f"127.0.0.1:{primary.port}"])
    for i in range(200):
        primary.client().set(f"p{i}", i)
    ok("backup", "create", "--server", server_addr(primary))
    last_p = archived(primary)
    wait_until(lambda: int(replica.client().info("persistence")["wal_last_sequence"]) == last_p, 30, what="the replica to catch up")
    assert metrics(replica)["levee_wal_archive_enabled"] == 0  # replicas do not archive with role primary
    old_digest = digest(primary.client())
    primary.stop()
    replica.client().execute_command("REPLICAOF", "NO", "ONE")
    wait_until(lambda: metrics(replica)["levee_wal_archive_enabled"] == 1, 10, what="the new primary to archive")
    for i in range(50):
        replica.client().set(f"r{i}", i)
    last_r = archived(replica)
    a = json.loads(ok("backup", "archive", "--repo", repo, "--json").stdout)
    assert len(a["timelines"]) == 2
    new = [t for t in a["timelines"] if t["latest"]][0]
    old = [t for t in a["timelines"] if not t["latest"]][0]
    assert new["parent"] == old["timeline"] and new["fork"] == last_p
    assert new["first_sequence"] == last_p + 1 and new["last_sequence"] == last_r
    d = os.path.join(tmpdir_path, "r")
    r = restore(repo, "latest", d)
    assert r.returncode == 0, r.stderr
    restored = server_factory(data_dir=d)
    assert digest(restored.client()) == digest(replica.client())
    # --timeline: the old primary's history, without what came after the fork.
    d2 = os.path.join(tmpdir_path, "r2")
    r = restore(repo, "latest", d2, "--timeline", old["timeline"])
    assert r.returncode == 0, r.stderr
    on_old = server_factory(data_dir=d2)
    assert digest(on_old.client()) == old_digest
    assert on_old.client().get("r0") is None and on_old.client().get("p199") == b"199"
    r = restore(repo, "latest", os.path.join(tmpdir_path, "r3"), "--timeline", "f" * 40)
    assert r.returncode != 0 and "f" * 40 in r.stderr, r.stderr


def test_the_log_waits_for_a_failing_archive_up_to_its_bound_then_a_gap_is_counted(server_factory, tmpdir_path, request):
    repo_dir = os.path.join(tmpdir_path, "repo")
    repo = "file://" + repo_dir
    s = server_factory(extra_args=["--backup-repo", repo, "--wal-segment-mb", "1", "--wal-keep-segments", "1",
                                   "--backup-wal-archive-max-mb", "16"] + ARCHIVE)
    c = s.client()
    c.set("first", 1)
    ok("backup", "create", "--server", server_addr(s))
    archived(s)
    # Break the repository: a read-only bind mount over it, so every upload
    # fails while listing still works (unmounting mends it atomically).
    subprocess.run(privileged("mount", "--bind", repo_dir, repo_dir), check=True)
    mounted = [True]
    request.addfinalizer(lambda: mounted[0] and subprocess.run(privileged("umount", repo_dir)))
    subprocess.run(privileged("mount", "-o", "remount,ro,bind", repo_dir), check=True)
    # The log may drop what is archived already, nothing after it.
    held = int(metrics(s)["levee_wal_archive_last_sequence"]) + 1
    value = os.urandom(4000)
    pipe = c.pipeline(transaction=False)
    for i in range(2000):  # ~8 MB of log, under the 16 MB bound
        pipe.set(f"a{i}", value)
    pipe.execute()
    wait_until(lambda: metrics(s)["levee_wal_archive_failures_total"] >= 2, 30, what="failed archive passes")
    info = c.info("levee")
    assert int(info["wal_bytes"]) > 7_000_000 and int(info["wal_first_sequence"]) <= held, \
        "the log was trimmed past what the archive still needs"
    assert metrics(s)["levee_wal_archive_lag_seconds"] > 0
    for i in range(4000):  # past the bound: the log is trimmed anyway
        pipe.set(f"b{i}", value)
    pipe.execute()
    wait_until(lambda: int(c.info("levee")["wal_first_sequence"]) > held, 30, what="the bounded log to be trimmed")
    subprocess.run(privileged("umount", repo_dir), check=True)
    mounted[0] = False
    last = archived(s)
    m = metrics(s)
    assert m["levee_wal_archive_gaps_total"] == 1 and m["levee_wal_archive_lag_seconds"] == 0
    assert "the log archive has a gap" in s.read_log()
    d = os.path.join(tmpdir_path, "r")
    r = levee("backup", "restore", "--repo", repo, "--data-dir", d, "--to-time", "latest")
    assert r.returncode != 0 and "gap" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(d, "db"))
    ok("backup", "create", "--server", server_addr(s))  # a backup after the gap makes restores work again
    c.set("after-gap", 1)
    last = archived(s)
    r = levee("backup", "restore", "--repo", repo, "--data-dir", d, "--to-time", "latest", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["restored_sequence"] == last
