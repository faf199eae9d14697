"""Power cuts, not kill -9: levee's data directory sits on powercut_fs.py,
which drops everything not made durable by fsync/fdatasync (file data,
sizes, renames, new directory entries) when the power goes. Clients keep a
ledger of what they were told; after each boot every acknowledged write
must be there, and nothing unacknowledged may be half there.

Set POWERCUT_REPORT to a file to get the figures of each test appended to
it as JSON lines (docs/benchmarks.md records them)."""
import json
import os
import random
import subprocess
import time
import zlib

import pytest
import redis

from conftest import LEVEE, Levee, free_port, wait_until
from powercut import Disk, Ledger, Writers, require_fuse

# Small files, so a few seconds of writes roll log segments, flush and
# compact LevelDB, seal blob files and collect them.
BUSY = ["--write-buffer-mb", "1", "--wal-segment-mb", "1", "--wal-keep-segments", "1",
        "--blob-file-mb", "1", "--blob-gc-garbage-percent", "10", "--blob-min-bytes", "1024"]


def report(test, **figures):
    path = os.environ.get("POWERCUT_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": test, **figures}) + "\n")


@pytest.fixture
def disk(tmpdir_path):
    require_fuse()
    d = Disk(tmpdir_path).mount()
    yield d
    d.close()


def refusal(client):
    """The error a write gets now, or None if it is acknowledged."""
    try:
        client.set("probe", "x")
    except redis.ResponseError as e:
        return str(e)
    return None


def boot(disk, name, args, round_no):
    s = Levee(os.path.join(disk.mnt, name), args, port=free_port())
    s.log_path = os.path.join(disk.base, f"levee-{name}-{round_no}.log")  # off the volume that loses power
    s.start(wait=False)
    disk.servers.append(s.proc)
    s.wait_ready()
    return s


def power_cut_rounds(disk, args, rounds, seed, arm=None, modes=("strict", "torn", "journal"), threads=6,
                     blob_bytes=1500, duration=(0.3, 2.0)):
    """Runs writers, cuts the power (at a random moment, or when arm's
    trigger fires), boots and checks, rounds times. Modes, in turn: strict
    (POSIX's minimum), torn (a random prefix of unsynced writes and
    directory operations survives), journal (directory operations durable
    at any fsync, as ext4 journals them; unsynced data lost). Returns the
    figures."""
    rng = random.Random(seed)
    ledger = Ledger()
    disk.mkdir_durable("data")
    figures = {"rounds": 0, "acknowledged": 0, "lost": 0, "cut_mid": 0}
    for r in range(rounds):
        mode = modes[r % len(modes)]
        if mode == "journal":
            disk.ctl(op="journal")
        s = boot(disk, "data", args, r)
        ledger.check(s.client())
        w = Writers(s.port, ledger, f"r{r}", threads=threads, blob_bytes=blob_bytes).start()
        if arm is not None:
            arm(disk, s, rng)
            frozen = disk.ctl(op="wait_frozen", timeout=60)["frozen"]
            assert frozen, f"round {r}: the trigger never fired; log: {s.read_log()[-2000:]}"
            figures["cut_mid"] += 1
        else:
            wait_until(lambda: w.acks > 0, 30, what="a first acknowledged write")
            deadline = time.monotonic() + rng.uniform(*duration)
            wait_until(lambda: time.monotonic() >= deadline, 10, what="the moment of the cut")
        disk.cut([s.proc], mode="torn" if mode == "torn" else "strict", seed=rng.randrange(1 << 30))
        w.stop()
        s.log.close()
        assert not w.errors, w.errors[:5]
        assert w.acks > 0, f"round {r} acknowledged nothing"
        figures["rounds"] += 1
        figures["acknowledged"] += w.acks
    s = boot(disk, "data", args, rounds)
    try:
        ledger.check(s.client())
    finally:
        s.stop()
    return figures


def test_power_cut_at_random_moments_loses_no_acknowledged_write(disk):
    args = ["--fsync", "always"] + BUSY
    figures = power_cut_rounds(disk, args, rounds=8, seed=11)
    report("random moments, fsync always", **figures)


# Where the power goes: just before the named operation, the Nth time.
MID = {
    "group commit (before the log's fdatasync)": ("fsync", "/data/wal/*.wal", (3, 60)),
    "LevelDB flush or compaction (writing a table file)": ("write", "/data/db/*.ldb", (1, 30)),
    "blob GC (removing a collected blob file)": ("unlink", "/data/db/vlog-*.blob", (1, 2)),
    "log trim (removing a segment)": ("unlink", "/data/wal/*.wal", (1, 3)),
}


def test_power_cut_at_a_log_trim_while_leveldb_flushes_slowly(disk):
    """LevelDB writes its own log without syncing it and starts a new one
    when the memtable fills; until the old memtable is flushed to a table,
    the old log's unsynced tail is LevelDB's only copy. Table writes are
    made slow, so log trims land while a flush is pending, and the power
    goes at the trim, with directory operations journaled as ext4 does.
    Before levee synced LevelDB's closed logs, thousands of acknowledged
    writes were lost here."""
    def arm(disk, server, rng):
        disk.ctl(op="delay", on="write", path="/data/db/*.ldb", seconds=0.05)
        disk.ctl(op="trigger", on="unlink", path="/data/wal/*.wal", after=rng.randint(1, 3))
    args = ["--fsync", "always"] + BUSY
    figures = power_cut_rounds(disk, args, rounds=4, seed=77, arm=arm, blob_bytes=0, modes=("journal",))
    report("log trim during a slow LevelDB flush", **figures)


@pytest.mark.parametrize("where", list(MID))
def test_power_cut_mid_operation_loses_no_acknowledged_write(disk, where):
    on, path, (lo, hi) = MID[where]

    def arm(disk, server, rng):
        disk.ctl(op="trigger", on=on, path=path, after=rng.randint(lo, hi))
    args = ["--fsync", "always"] + BUSY
    figures = power_cut_rounds(disk, args, rounds=2, seed=zlib.crc32(where.encode()), arm=arm)
    assert figures["cut_mid"] == 2
    report(f"mid {where}", **figures)


def test_power_cut_during_recovery_loses_no_acknowledged_write(disk):
    """The power goes again while levee opens what the last cut left: as
    LevelDB writes its new MANIFEST, renames CURRENT to it, or replays."""
    args = ["--fsync", "always"] + BUSY
    rng = random.Random(5)
    ledger = Ledger()
    disk.mkdir_durable("data")
    cuts = [("rename", "/data/db/CURRENT", 1), ("write", "/data/db/MANIFEST-*", 1), ("fsync", "/data/db/*", 2),
            ("unlink", "/data/db/*.log", 1)]
    acked = 0
    for r, (on, path, after) in enumerate(cuts):
        s = boot(disk, "data", args, f"{r}w")
        ledger.check(s.client())
        w = Writers(s.port, ledger, f"r{r}", blob_bytes=1500).start()
        wait_until(lambda: w.acks > 200, 60, what="200 acknowledged writes")
        disk.cut([s.proc], seed=rng.randrange(1 << 30))
        w.stop()
        s.log.close()
        assert not w.errors, w.errors[:5]
        acked += w.acks
        # Boot, and cut again in the middle of the recovery.
        disk.ctl(op="trigger", on=on, path=path, after=after)
        s = Levee(os.path.join(disk.mnt, "data"), args, port=free_port())
        s.log_path = os.path.join(disk.base, f"levee-recovery-{r}.log")
        s.start(wait=False)
        disk.servers.append(s.proc)
        assert disk.ctl(op="wait_frozen", timeout=60)["frozen"], f"{on} {path} never happened while opening"
        disk.cut([s.proc], seed=rng.randrange(1 << 30))
        s.log.close()
    s = boot(disk, "data", args, "last")
    try:
        ledger.check(s.client())
    finally:
        s.stop()
    report("power cut during recovery", rounds=len(cuts) * 2, acknowledged=acked, lost=0, cut_mid=len(cuts))


def test_harness_sees_a_missing_log_fsync(disk):
    """The same rounds with levee's fsync of its log made a no-op by the
    filesystem: acknowledged writes are lost, and the ledger says so."""
    disk.mkdir_durable("data")
    disk.ctl(op="ignore_sync", path="/data/wal/*.wal")
    ledger = Ledger()
    s = boot(disk, "data", ["--fsync", "always"], 0)
    w = Writers(s.port, ledger, "r0", blob_bytes=0).start()
    wait_until(lambda: w.acks > 100, 60, what="100 acknowledged writes")
    disk.cut([s.proc])
    w.stop()
    s.log.close()
    s = boot(disk, "data", ["--fsync", "always"], 1)
    try:
        lost = ledger.check(s.client(), strict=False)
    finally:
        s.stop()
    assert len(lost) > 0, "the harness did not notice writes acknowledged without a log fsync"


def test_harness_sees_a_missing_directory_sync(disk):
    """New log segments whose directory entry is never synced (the rename or
    create "without a directory sync" bug): the records in them are lost."""
    disk.mkdir_durable("data")
    disk.ctl(op="ignore_sync", path="/data/wal")
    ledger = Ledger()
    args = ["--fsync", "always", "--wal-segment-mb", "1"]
    s = boot(disk, "data", args, 0)
    w = Writers(s.port, ledger, "r0", blob_bytes=0).start()
    wait_until(lambda: len(os.listdir(os.path.join(disk.mnt, "data", "wal"))) >= 3, 120, what="a third log segment")
    disk.cut([s.proc])
    w.stop()
    s.log.close()
    s = boot(disk, "data", args, 1)
    try:
        lost = ledger.check(s.client(), strict=False)
    finally:
        s.stop()
    assert len(lost) > 0, "the harness did not notice segments whose directory entries were never synced"


def info_field(client, section, field):
    return client.info(section)[field]


def test_group_commit_shares_one_fsync_among_concurrent_writers(disk):
    """16 clients writing at once with fsync always: levee answers each
    only after its log is synced, but one fdatasync covers a whole group.
    Counted twice: by levee (INFO wal_fsyncs) and by the filesystem."""
    disk.mkdir_durable("data")
    s = boot(disk, "data", ["--fsync", "always"], 0)
    try:
        c = s.client()
        before_levee = info_field(c, "persistence", "wal_fsyncs")
        before_fs = sum(v for k, v in disk.ctl(op="stats")["syncs"].items() if k.startswith("/data/wal/"))
        ledger = Ledger()
        w = Writers(s.port, ledger, "g", threads=16, blob_bytes=0).start()
        wait_until(lambda: w.acks >= 3000, 120, what="3000 acknowledged writes")
        w.stop()
        assert not w.errors, w.errors[:5]
        syncs_levee = info_field(c, "persistence", "wal_fsyncs") - before_levee
        syncs_fs = sum(v for k, v in disk.ctl(op="stats")["syncs"].items() if k.startswith("/data/wal/")) - before_fs
        writes = info_field(c, "stats", "total_commands_processed")
    finally:
        s.stop()
    report("group commit, 16 clients, fsync always", acknowledged=w.acks, wal_fsyncs_levee=syncs_levee,
           wal_fsyncs_filesystem=syncs_fs, writes_per_fsync=round(w.acks / max(1, syncs_fs), 2))
    assert 0 < syncs_fs < w.acks * 0.8, (syncs_fs, w.acks)
    # Every sync levee counts reached the filesystem (a segment roll adds one of its own).
    assert syncs_levee <= syncs_fs <= syncs_levee + 4, (syncs_levee, syncs_fs, writes)


def test_everysec_loses_at_most_about_a_second(disk):
    """fsync everysec acknowledges before the log is synced: a power cut
    loses what was acknowledged since the last once-a-second sync, and no
    more. Measured: the oldest lost write's age at the cut."""
    args = ["--fsync", "everysec"]  # default sizes: a segment roll (which syncs) would shorten the window
    rng = random.Random(3)
    ledger = Ledger()
    disk.mkdir_durable("data")
    windows, acked, lost_total = [], 0, 0
    for r in range(4):
        s = boot(disk, "data", args, r)
        ledger.check(s.client(), strict=False)
        w = Writers(s.port, ledger, f"r{r}", blob_bytes=1500).start()
        wait_until(lambda: w.acks > 0, 30, what="a first acknowledged write")
        deadline = time.monotonic() + rng.uniform(1.5, 3.0)
        wait_until(lambda: time.monotonic() >= deadline, 10, what="the moment of the cut")
        cut_at = time.time()
        disk.cut([s.proc])
        w.stop()
        s.log.close()
        assert not w.errors, w.errors[:5]
        acked += w.acks
        s = boot(disk, "data", args, f"{r}c")
        try:
            lost = ledger.check(s.client(), strict=False)
        finally:
            s.stop()
        lost_total += len(lost)
        if lost:
            windows.append(cut_at - min(t for _, _, _, t in lost))
    report("fsync everysec", rounds=4, acknowledged=acked, lost=lost_total,
           loss_window_seconds=[round(x, 3) for x in windows])
    assert lost_total > 0, "no write lost: the cut did not fall between syncs, the test proved nothing"
    assert max(windows) < 2.0, f"everysec lost writes acknowledged {max(windows):.2f}s before the cut"


@pytest.mark.parametrize("policy", ["always", "everysec"])
def test_failed_log_fsync_stops_acknowledging_writes(disk, policy):
    """The filesystem fails one fsync of the log with EIO and, as Linux
    does, forgets the writes it was to make durable. levee must not retry
    and carry on: it refuses writes from then on and says why, and nothing
    it acknowledged under fsync always is missing after a power cut."""
    disk.mkdir_durable("data")
    args = ["--fsync", policy]
    s = boot(disk, "data", args, 0)
    ledger = Ledger()
    w = Writers(s.port, ledger, "f", blob_bytes=0, tolerate_replies=True).start()
    wait_until(lambda: w.acks > 200, 60, what="200 acknowledged writes")
    failed_at = time.time()
    disk.ctl(op="fail_fsync", path="/data/wal/*.wal", count=1)
    msg = wait_until(lambda: refusal(s.client()), 10, what="writes to be refused after the failed fsync")
    assert "fsync of the write-ahead log failed" in msg and "refused" in msg, msg
    acks_then = w.acks
    wait_until(lambda: len(w.replies) >= 6, 10, what="every writer to be refused")
    assert w.acks - acks_then <= len(w.threads), "writes were still acknowledged after the failure"
    assert "fsync" in s.read_log()
    disk.cut([s.proc])
    w.stop()
    s.log.close()
    assert not w.errors, w.errors[:5]
    s = boot(disk, "data", args, 1)
    try:
        lost = ledger.check(s.client(), strict=(policy == "always"))
    finally:
        s.stop()
    # everysec: only what was acknowledged in the second before the failure.
    assert all(t is not None and t >= failed_at - 2.0 for _, _, _, t in lost), lost[:5]


RESYNC_CUTS = [
    ("write", "/replica/sync-staging/db/*", 3),       # copying files
    ("rename", "/replica/sync-staging/COMPLETE", 1),  # the copy is whole: about to say so
    ("rename", "/replica/db", 1),                     # installing the copy in place of the database
    ("unlink", "/replica/sync-staging/SOURCE", 1),    # tidying up after the install
]


@pytest.mark.parametrize("cut", RESYNC_CUTS, ids=[f"{c[0]} {c[1]}" for c in RESYNC_CUTS])
def test_power_cut_mid_full_resync_leaves_a_replica_that_recovers(disk, cut):
    """A replica's power goes in the middle of a full resync (while the
    primary keeps taking writes); booted again, it serves the primary's data
    exactly, not a half-installed copy."""
    on, path, after = cut
    primary = Levee(os.path.join(disk.base, "primary"), ["--fsync", "always", "--blob-min-bytes", "1024"],
                    port=free_port()).start()
    try:
        c = primary.client()
        for i in range(0, 6000, 500):
            p = c.pipeline(transaction=False)
            for j in range(i, i + 500):
                p.set(f"pre:{j}", f"{j}:" + "v" * (2000 if j % 7 == 0 else 40))
            p.execute()
        disk.mkdir_durable("replica")
        args = ["--fsync", "always", "--replicaof", f"127.0.0.1:{primary.port}"]
        disk.ctl(op="trigger", on=on, path=path, after=after)
        ledger = Ledger()
        w = Writers(primary.port, ledger, "p", threads=3, blob_bytes=1500).start()
        r = Levee(os.path.join(disk.mnt, "replica"), args, port=free_port())
        r.log_path = os.path.join(disk.base, "replica-0.log")
        r.start(wait=False)
        disk.servers.append(r.proc)
        assert disk.ctl(op="wait_frozen", timeout=90)["frozen"], f"{on} {path} never happened: {r.read_log()[-2000:]}"
        disk.cut([r.proc])
        r.log.close()
        r = Levee(os.path.join(disk.mnt, "replica"), args, port=free_port())
        r.log_path = os.path.join(disk.base, "replica-1.log")
        r.start(wait=False)
        disk.servers.append(r.proc)
        r.wait_ready()
        try:
            wait_until(lambda: r.client().info("replication").get("master_link_status") == "up", 90,
                       what="the replica's link up after the power cut")
            w.stop()
            assert not w.errors, w.errors[:5]
            ledger.check(c)

            def same():
                a = c.execute_command("DEBUG", "DIGEST")
                return a == r.client().execute_command("DEBUG", "DIGEST") and a
            wait_until(same, 60, interval=0.2, what="the replica's data equal to the primary's (DEBUG DIGEST)")
            keys = [f"pre:{j}" for j in range(6000)] + sorted(ledger.acked)
            rc = r.client()
            for i in range(0, len(keys), 1000):
                assert rc.mget(keys[i:i + 1000]) == c.mget(keys[i:i + 1000])
        finally:
            r.stop()
    finally:
        primary.stop()


def test_power_cut_mid_backup_checkpoint(disk):
    """The power goes while a backup holds a checkpoint of the database
    (its files are being read and their removal deferred): the server comes
    back with every acknowledged write, the next backup succeeds, and it
    restores to exactly the server's data."""
    args = ["--fsync", "always"] + BUSY
    repo = "file://" + os.path.join(disk.base, "repo")
    disk.mkdir_durable("data")
    ledger = Ledger()
    s = boot(disk, "data", args, 0)
    w = Writers(s.port, ledger, "b", blob_bytes=1500).start()
    wait_until(lambda: w.acks > 2000, 60, what="2000 acknowledged writes")
    backup = subprocess.Popen([LEVEE, "backup", "create", "--server", f"127.0.0.1:{s.port}", "--repo", repo,
                               "--max-bytes-per-sec", "4mb"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def lent():
        assert backup.poll() is None, backup.stdout.read()
        return "lent a checkpoint" in s.read_log()
    wait_until(lent, 60, interval=0.005, what="the backup's checkpoint")
    disk.cut([s.proc])
    backup.wait(timeout=60)
    w.stop()
    s.log.close()
    assert not w.errors, w.errors[:5]
    s = boot(disk, "data", args, 1)
    try:
        ledger.check(s.client())
        rep = subprocess.run([LEVEE, "backup", "create", "--server", f"127.0.0.1:{s.port}", "--repo", repo],
                             capture_output=True, timeout=300)
        assert rep.returncode == 0, rep
        want = s.client().execute_command("DEBUG", "DIGEST")
    finally:
        s.stop()
    restored = os.path.join(disk.base, "restored")
    rep = subprocess.run([LEVEE, "backup", "restore", "--repo", repo, "--data-dir", restored],
                         capture_output=True, timeout=300)
    assert rep.returncode == 0, rep
    r = Levee(restored, [], port=free_port()).start()
    try:
        assert r.client().execute_command("DEBUG", "DIGEST") == want
    finally:
        r.stop()


def test_failed_sync_of_leveldb_log_stops_writes_and_keeps_levees_log(disk):
    """EIO on a sync of LevelDB's own log (at a memtable switch or a log
    trim): levee refuses writes and says why, and after a power cut nothing
    acknowledged is missing (levee's log was kept for the replay)."""
    disk.mkdir_durable("data")
    args = ["--fsync", "always"] + BUSY
    s = boot(disk, "data", args, 0)
    ledger = Ledger()
    w = Writers(s.port, ledger, "l", blob_bytes=0, tolerate_replies=True).start()
    wait_until(lambda: w.acks > 200, 60, what="200 acknowledged writes")
    disk.ctl(op="fail_fsync", path="/data/db/*.log", count=1)
    msg = wait_until(lambda: refusal(s.client()), 30, what="writes to be refused after the failed LevelDB log sync")
    assert "refused" in msg or "LevelDB" in msg, msg
    assert '"severity":"CRITICAL"' in s.read_log()
    disk.cut([s.proc])
    w.stop()
    s.log.close()
    assert not w.errors, w.errors[:5]
    s = boot(disk, "data", args, 1)
    try:
        ledger.check(s.client())
    finally:
        s.stop()
