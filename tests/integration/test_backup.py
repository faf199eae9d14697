"""Backups (#6): online, consistent, incremental, encrypted backups to a
directory and to S3 (s3rver behind a SigV4-checking proxy), restore, verify,
prune, freeze/thaw, the server's schedule and metrics, and bad input."""
import glob
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import LEVEE, free_port, privileged, run_levee, terminate, wait_until
from s3_fixture import S3Store

REPS = int(os.environ.get("TEST_BACKUP_REPS", "10"))


def levee(*args, env=None, timeout=300):
    r = subprocess.run([LEVEE] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env)
    return r


def ok(*args, env=None, timeout=300):
    r = levee(*args, env=env, timeout=timeout)
    assert r.returncode == 0, f"levee {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}"
    return r


def backups(repo, *extra, env=None):
    return json.loads(ok("backup", "list", "--repo", repo, "--json", *extra, env=env).stdout)


def server_addr(s):
    return f"127.0.0.1:{s.port}"


def fill(client, n, size, prefix="k", seed=1):
    """n keys of incompressible values, pipelined."""
    rnd = random.Random(seed)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"{prefix}{i}", rnd.randbytes(size))
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()


def metrics(s):
    with urllib.request.urlopen(f"http://127.0.0.1:{s.http_port}/metrics", timeout=10) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out


# --- consistency under load ---------------------------------------------------

def test_online_backups_under_compacting_load_restore_to_their_sequence(server_factory, tmpdir_path):
    """A writer overwrites N keys in a known order (write i sets key i % N to
    value i, each one log record) with a 1 MiB memtable, so LevelDB flushes and
    compacts throughout. Backups taken meanwhile must restore to exactly the
    state after their applied sequence, and to the digest taken at it."""
    s = server_factory(extra_args=["--write-buffer-mb", "1"])
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    nkeys, value = 3000, 600
    stop = threading.Event()
    written = [0]

    def load():
        c = s.client()
        i = 0
        while not stop.is_set():
            pipe = c.pipeline(transaction=False)
            for _ in range(200):
                i += 1
                pipe.set(f"key:{i % nkeys}", f"{i}:".encode() + b"v" * value)
            pipe.execute()
            written[0] = i

    t = threading.Thread(target=load)
    t.start()
    try:
        wait_until(lambda: written[0] > 20000, 60, what="initial load")
        for _ in range(REPS):
            before = written[0]
            ok("backup", "create", "--server", server_addr(s), "--repo", repo)
            wait_until(lambda: written[0] > before + 3000, 60, what="more writes between backups")
    finally:
        stop.set()
        t.join()
    info = s.client().info("levee")
    assert any(info.get(f"leveldb_level{n}_files", 0) > 0 for n in (1, 2, 3)), ("no compaction ran", info)
    ms = backups(repo)
    assert len(ms) == REPS
    seqs = [m["applied_sequence"] for m in ms]
    assert seqs == sorted(seqs) and len(set(seqs)) == REPS, seqs
    for m in ms:
        d = os.path.join(tmpdir_path, "restore-" + m["id"])
        ok("backup", "restore", m["id"], "--repo", repo, "--data-dir", d)
        r = server_factory(data_dir=d)
        c = r.client()
        seq = m["applied_sequence"]
        assert c.execute_command("DEBUG", "DIGEST").decode() == m["digest"]
        # The state after exactly `seq` writes.
        keys = [f"key:{j}" for j in range(nkeys)]
        got = c.mget(keys)
        for j, v in enumerate(got):
            last = seq - ((seq - j) % nkeys) if seq >= j else None
            if j == 0:
                last = seq - (seq % nkeys) if seq >= nkeys else None
            if last is None or last <= 0:
                assert v is None, (m["id"], j, v[:20] if v else v)
            else:
                assert v is not None and v.split(b":")[0] == str(last).encode(), (m["id"], seq, j, v[:20] if v else v)
        r.stop()
        shutil.rmtree(d)
    # The barrier is short: writes are held while files are listed, not copied.
    assert max(m["barrier_us"] for m in ms) < 200000, [m["barrier_us"] for m in ms]


# --- S3: signing, incremental, multipart, cross-check ------------------------

@pytest.fixture
def s3(tmpdir_path):
    with S3Store(tmpdir_path) as store:
        yield store
        assert store.rejected == [], "requests with bad signatures:\n" + "\n".join(store.rejected)


def test_s3_backup_is_signed_right_incremental_and_readable_by_aws_cli(server, s3, tmpdir_path):
    fill(server.client(), 6000, 4000)  # ~24 MB of incompressible values
    repo = s3.url()
    env = s3.env()
    first = json.loads(ok("backup", "create", "--server", server_addr(server), "--repo", repo, "--json", env=env)
                       .stdout.splitlines()[-1])
    sent_first = s3.put_bytes()
    assert sent_first >= first["new_stored_bytes"] > 20_000_000

    fill(server.client(), 300, 4000, prefix="more")  # ~5% more
    second = json.loads(ok("backup", "create", "--server", server_addr(server), "--repo", repo, "--json", env=env)
                        .stdout.splitlines()[-1])
    sent_second = s3.put_bytes() - sent_first
    # Only new objects went up: what was sent is what the manifest calls new,
    # and that is a fraction of the data.
    assert sent_second == second["new_stored_bytes"], (sent_second, second)
    assert second["new_bytes"] < 0.5 * second["bytes"], second
    assert second["read_bytes"] < second["bytes"], second  # unchanged tables were not even read
    put_keys = [p for m, p, st, n in s3.requests if m == "PUT" and "/objects/" in p]
    assert len(put_keys) == len(set(put_keys)), "an object was uploaded twice"

    # Debian's aws CLI sees what levee says it wrote.
    listing = s3.aws("s3", "ls", "--recursive", "s3://levee/backups/")
    names = {line.split()[-1] for line in listing.splitlines()}
    assert "backups/config" in names
    for m in (first, second):
        assert f"backups/backups/{m['id']}" in names
    man = backups(repo, env=env)[-1]
    assert man["id"] == second["id"]
    # The 4 KB values are in a blob file, backed up in 4 MiB pieces at fixed
    # offsets; a piece's object is the piece itself behind a 5-byte header.
    blob = sorted(glob.glob(os.path.join(server.data_dir, "db", "vlog-*.blob")))[0]
    data = open(blob, "rb").read()[:4 << 20]
    oid = hashlib.sha256(data).hexdigest()
    dest = os.path.join(tmpdir_path, "obj")
    s3.aws("s3", "cp", f"s3://levee/backups/objects/{oid[:2]}/{oid}", dest)
    assert open(dest, "rb").read()[5:] == data


def test_s3_multipart_retries_and_restore(server_factory, s3, tmpdir_path):
    server = server_factory(extra_args=["--wal-segment-mb", "24"])  # a closed 24 MB segment: one object, in parts
    fill(server.client(), 12000, 4000)
    s3.fail_next = 3  # three 503s: retried with backoff
    repo = s3.url(prefix="mp")
    ok("backup", "create", "--server", server_addr(server), "--repo", repo, "--chunk-mb", "64", env=s3.env())
    assert s3.count("POST", "uploads") > 0, "no multipart upload"
    assert s3.count("PUT", "partNumber=") >= 2
    d = os.path.join(tmpdir_path, "restored")
    ok("backup", "restore", "--repo", repo, "--data-dir", d, env=s3.env())
    r = run_levee("check", "--data-dir", d)
    assert r.returncode == 0, r.stdout + r.stderr
    out = ok("backup", "verify", "--deep", "--repo", repo, env=s3.env())
    assert "OK" in out.stdout
    # The data, not only its consistency: the restored server holds what
    # the source holds, byte for byte.
    want = server.client().execute_command("DEBUG", "DIGEST")
    restored = server_factory(data_dir=d)
    assert restored.client().dbsize() == 12000
    assert restored.client().execute_command("DEBUG", "DIGEST") == want
    rng = random.Random(5)
    sample = [f"k{rng.randrange(12000)}" for _ in range(200)]
    assert restored.client().mget(sample) == server.client().mget(sample)


def test_s3_wrong_secret_is_refused_by_the_verifier(server, s3):
    r = levee("backup", "create", "--server", server_addr(server), "--repo", s3.url(), env=s3.env(secret="wrong"))
    assert r.returncode != 0
    assert "SignatureDoesNotMatch" in r.stderr and "credentials" in r.stderr, r.stderr
    assert s3.rejected, "the proxy let a wrongly signed request through"
    s3.rejected.clear()


def test_s3_missing_bucket_and_unreachable_endpoint(server, s3):
    r = levee("backup", "create", "--server", server_addr(server), "--repo", s3.url(bucket="nope"), env=s3.env())
    assert r.returncode != 0 and "nope" in r.stderr and "does not exist" in r.stderr, r.stderr
    port = free_port()
    repo = f"s3://levee/x?endpoint=http://127.0.0.1:{port}&path_style=true"
    r = levee("backup", "create", "--server", server_addr(server), "--repo", repo, env=s3.env(), timeout=120)
    assert r.returncode != 0 and "cannot reach" in r.stderr and repo in r.stderr, r.stderr


def test_gcs_workload_identity_token_instead_of_an_hmac_key(server_factory, s3, tmpdir_path):
    """On GKE with Workload Identity no key exists: for gs:// without an HMAC
    key levee asks the metadata server for an OAuth token and sends it as a
    bearer token. A token GCS refuses (401) is replaced once; no identity is
    a clear error."""
    env = s3.workload_identity_env()
    repo = s3.url(scheme="gs", prefix="wi")
    s = server_factory(extra_args=["--backup-repo", repo, "--backup-schedule", "off", "--backup-verify-schedule", "off"],
                       env=env)
    fill(s.client(), 2000, 1000)
    ok("backup", "create", "--server", server_addr(s))  # the server runs its own backup
    assert s3.tokens_issued == 1, "one token serves every request of a backup"
    assert s3.bearer_accepted > 5 and s3.bearer_refused == 0

    s3.revoke_tokens()  # as when the token expires early or the binding changes
    s.client().set("after", "revocation")
    ok("backup", "create", "--server", server_addr(s))
    assert s3.tokens_issued == 2 and s3.bearer_refused == 1, (s3.tokens_issued, s3.bearer_refused)

    assert len(backups(repo, env=env)) == 2
    d = os.path.join(tmpdir_path, "restored")
    ok("backup", "restore", "--repo", repo, "--data-dir", d, env=env)
    restored = server_factory(data_dir=d)
    assert restored.client().get("after") == b"revocation"
    assert restored.client().dbsize() == 2001

    s3.metadata_identity = False  # a pod whose ServiceAccount has no Google identity
    r = levee("backup", "list", "--repo", repo, env=env)
    assert r.returncode != 0
    assert "HTTP 404" in r.stderr and "Workload Identity" in r.stderr and "HMAC" in r.stderr, r.stderr
    assert repo in r.stderr, r.stderr


def test_killed_backup_lists_nothing_and_the_next_reuses_its_uploads(server, s3, tmpdir_path):
    fill(server.client(), 8000, 4000)
    repo = s3.url(prefix="kill")
    s3.allow_object_puts = 3
    p = subprocess.Popen([LEVEE, "backup", "create", "--server", server_addr(server), "--repo", repo, "--parallelism", "2"],
                         env=s3.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    def finished_puts():
        return {path for m, path, st, n in s3.requests if m == "PUT" and "/objects/" in path}
    # The third allowed upload may still be finishing when the fourth
    # starts (two in flight): wait until all three are recorded.
    wait_until(lambda: s3.object_puts_started > 3 and len(finished_puts()) >= 3, 60, what="uploads to hang")
    uploaded = finished_puts()
    assert len(uploaded) == 3
    p.send_signal(signal.SIGKILL)
    p.wait()
    s3.allow_object_puts = None
    assert backups(repo, env=s3.env()) == []
    ok("backup", "create", "--server", server_addr(server), "--repo", repo, env=s3.env())
    assert len(backups(repo, env=s3.env())) == 1
    again = [path for m, path, st, n in s3.requests if m == "PUT" and path in uploaded]
    assert len(again) == len(uploaded), "objects of the killed backup were uploaded again"
    assert server.client().ping()


# --- damage, keys -------------------------------------------------------------

def test_damaged_objects_are_named_by_verify_and_refused_by_restore(server, tmpdir_path):
    fill(server.client(), 5000, 2000)
    repo_dir = os.path.join(tmpdir_path, "repo")
    repo = "file://" + repo_dir
    ok("backup", "create", "--server", server_addr(server), "--repo", repo)
    assert "OK" in ok("backup", "verify", "--repo", repo).stdout
    objs = sorted(glob.glob(os.path.join(repo_dir, "objects", "*", "*")), key=os.path.getsize)[-3:]
    flipped, truncated, deleted = objs
    with open(flipped, "r+b") as f:
        f.seek(os.path.getsize(flipped) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x40]))
    with open(truncated, "r+b") as f:
        f.truncate(os.path.getsize(truncated) - 100)
    os.remove(deleted)
    r = levee("backup", "verify", "--repo", repo)
    assert r.returncode == 1
    for path in objs:
        assert os.path.basename(path) in r.stdout, (path, r.stdout)
    assert "missing" in r.stdout and "damaged" in r.stdout
    r = levee("backup", "verify", "--repo", repo, "--json")
    assert r.returncode == 1 and json.loads(r.stdout.splitlines()[-1])["ok"] is False
    d = os.path.join(tmpdir_path, "restored")
    r = levee("backup", "restore", "--repo", repo, "--data-dir", d)
    assert r.returncode != 0 and "object" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(d, "db")), "a failed restore left a database behind"


def test_encryption_keys(server, tmpdir_path):
    server.client().set("secret-key", b"plaintext-marker-" * 100)
    key = os.path.join(tmpdir_path, "key")
    other = os.path.join(tmpdir_path, "other")
    with open(key, "w") as f:
        f.write(ok("backup", "keygen").stdout)
    with open(other, "w") as f:
        f.write(ok("backup", "keygen").stdout)
    repo_dir = os.path.join(tmpdir_path, "enc")
    repo = "file://" + repo_dir
    ok("backup", "create", "--server", server_addr(server), "--repo", repo, "--key-file", key)
    for path in glob.glob(os.path.join(repo_dir, "**", "*"), recursive=True):
        if os.path.isfile(path):
            assert b"plaintext-marker" not in open(path, "rb").read(), path
    r = levee("backup", "list", "--repo", repo)
    assert r.returncode != 0 and "encrypted with key id" in r.stderr and "--backup-key-file" in r.stderr, r.stderr
    r = levee("backup", "list", "--repo", repo, "--key-file", other)
    assert r.returncode != 0 and "the key given has id" in r.stderr, r.stderr
    plain = "file://" + os.path.join(tmpdir_path, "plain")
    ok("backup", "create", "--server", server_addr(server), "--repo", plain)
    r = levee("backup", "list", "--repo", plain, "--key-file", key)
    assert r.returncode != 0 and "created without encryption" in r.stderr, r.stderr
    bad = os.path.join(tmpdir_path, "bad")
    with open(bad, "w") as f:
        f.write("not a key\n")
    r = levee("backup", "list", "--repo", repo, "--key-file", bad)
    assert r.returncode != 0 and "64 hex digits" in r.stderr, r.stderr
    d = os.path.join(tmpdir_path, "restored")
    ok("backup", "restore", "--repo", repo, "--key-file", key, "--data-dir", d)
    out = ok("backup", "verify", "--deep", "--repo", repo, "--key-file", key)
    assert "OK" in out.stdout


# --- prune --------------------------------------------------------------------

def test_prune_with_a_concurrent_create_keeps_the_new_backup_restorable(server, tmpdir_path):
    c = server.client()
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    for i in range(3):
        fill(c, 2000, 2000, prefix=f"round{i}-", seed=i)
        ok("backup", "create", "--server", server_addr(server), "--repo", repo)
    fill(c, 4000, 2000, prefix="late-", seed=9)
    slow = subprocess.Popen([LEVEE, "backup", "create", "--server", server_addr(server), "--repo", repo,
                             "--max-bytes-per-sec", "4mb", "--parallelism", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: glob.glob(os.path.join(tmpdir_path, "repo", "locks", "shared-*")), 30, what="the backup's lock")
    # --lock-wait 1: prune gives up after a second, naming what holds it.
    started = time.monotonic()
    quick = subprocess.run([LEVEE, "backup", "prune", "--repo", repo, "--keep-last", "1", "--lock-wait", "1"],
                           capture_output=True, text=True, timeout=120)
    assert quick.returncode != 0 and "lock" in quick.stderr, quick.stderr
    assert time.monotonic() - started < 30
    assert slow.poll() is None, "the backup finished before prune was tried: the test proved nothing"
    prune = subprocess.run([LEVEE, "backup", "prune", "--repo", repo, "--keep-last", "1"], capture_output=True,
                           text=True, timeout=300)
    out, err = slow.communicate(timeout=300)
    assert slow.returncode == 0, err
    assert prune.returncode == 0, prune.stderr
    ms = backups(repo)
    newest = max(ms, key=lambda m: m["time_ms"])
    assert newest["applied_sequence"] == max(m["applied_sequence"] for m in ms)
    out = ok("backup", "verify", "--deep", newest["id"], "--repo", repo)
    assert "OK" in out.stdout
    ok("backup", "prune", "--repo", repo, "--keep-last", "1")
    assert [m["id"] for m in backups(repo)] == [newest["id"]]
    d = os.path.join(tmpdir_path, "restored")
    ok("backup", "restore", "--repo", repo, "--data-dir", d)
    r = run_levee("check", "--data-dir", d)
    assert r.returncode == 0


def test_prune_needs_a_policy(tmpdir_path, server):
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    ok("backup", "create", "--server", server_addr(server), "--repo", repo)
    r = levee("backup", "prune", "--repo", repo)
    assert r.returncode != 0 and "--keep-last" in r.stderr
    assert len(backups(repo)) == 1


# --- server side: schedule, metrics, failures, freeze ----------------------------

def test_scheduled_backups_retention_and_metrics(server_factory, tmpdir_path):
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    s = server_factory(extra_args=["--backup-repo", repo, "--backup-schedule", "1s", "--backup-keep-last", "2",
                                   "--backup-keep-daily", "0", "--backup-keep-weekly", "0",
                                   "--backup-verify-schedule", "2s"])
    fill(s.client(), 1000, 1000)
    wait_until(lambda: metrics(s)["levee_backup_last_success_timestamp_seconds"] > 0, 30, what="a scheduled backup")
    wait_until(lambda: metrics(s)["levee_backup_verify_last_success_timestamp_seconds"] > 0, 30,
               what="a scheduled verify")
    wait_until(lambda: len(backups(repo)) == 2 and metrics(s)["levee_backup_last_success_timestamp_seconds"] > 0, 30,
               what="retention to keep two")
    m = metrics(s)
    assert m["levee_backup_duration_seconds"] > 0 and m["levee_backup_bytes_total"] > 0
    assert "backup done" in s.read_log()


def test_schedule_role_primary_backs_up_once_per_replicated_set_and_follows_promotion(server_factory, tmpdir_path):
    """The Kubernetes manifests give every pod the same settings with
    backup-schedule-role primary: only the primary runs the schedule, and
    after a promotion the new primary does."""
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    args = ["--backup-repo", repo, "--backup-schedule", "1s", "--backup-verify-schedule", "off",
            "--backup-schedule-role", "primary"]
    primary = server_factory(extra_args=args)
    replica = server_factory(extra_args=args + ["--replicaof", f"127.0.0.1:{primary.port}"])
    fill(primary.client(), 200, 100)
    wait_until(lambda: metrics(primary)["levee_backup_last_success_timestamp_seconds"] > 0, 30,
               what="the primary's scheduled backup")
    assert metrics(primary)["levee_backup_schedule_seconds"] == 1
    m = metrics(replica)
    assert m["levee_backup_schedule_seconds"] == 0 and m["levee_backup_last_success_timestamp_seconds"] == 0
    # Promote the replica: it takes the schedule over; the old primary, now
    # its replica, stops.
    primary.stop()
    replica.client().execute_command("REPLICAOF", "NO", "ONE")
    wait_until(lambda: metrics(replica)["levee_backup_last_success_timestamp_seconds"] > 0, 30,
               what="the promoted replica's scheduled backup")
    assert metrics(replica)["levee_backup_schedule_seconds"] == 1


def test_server_side_failure_shows_in_metrics_and_log_and_serving_goes_on(server_factory, tmpdir_path):
    port = free_port()
    s = server_factory(extra_args=["--backup-repo", f"s3://b/p?endpoint=http://127.0.0.1:{port}&path_style=true"],
                       env={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    s.client().set("k", "v")
    r = levee("backup", "create", "--server", server_addr(s), timeout=200)
    assert r.returncode != 0 and "cannot reach" in r.stderr, r.stderr
    assert metrics(s)["levee_backup_last_failure_timestamp_seconds"] > 0
    assert metrics(s)["levee_backup_last_success_timestamp_seconds"] == 0
    assert "backup failed" in s.read_log()
    assert s.client().get("k") == b"v"
    s.client().set("k2", "v2")


def test_full_local_disk_is_a_clear_error_and_lists_nothing(server, tmpdir_path):
    mnt = os.path.join(tmpdir_path, "small")
    os.makedirs(mnt)
    r = subprocess.run(privileged("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt), capture_output=True)
    assert r.returncode == 0, f"cannot mount a tmpfs: {r.stderr.decode()}"
    try:
        fill(server.client(), 5000, 2000)
        repo = "file://" + mnt + "/repo"
        r = levee("backup", "create", "--server", server_addr(server), "--repo", repo)
        assert r.returncode != 0 and "no space left" in r.stderr and repo in r.stderr, r.stderr
        assert not glob.glob(mnt + "/repo/backups/*")
        assert server.client().ping()
    finally:
        subprocess.run(privileged("umount", mnt))


def test_freeze_holds_writes_until_thaw_or_timeout(server):
    c = server.client()
    c.set("a", "1")
    ok("backup", "freeze", "--server", server_addr(server), "--timeout", "30")
    assert metrics(server)["levee_backup_frozen"] == 1
    done = threading.Event()

    def write():
        server.client(socket_timeout=60).set("a", "2")
        done.set()

    t = threading.Thread(target=write)
    t.start()
    assert not done.wait(0.5), "a write went through a freeze"
    assert c.get("a") == b"1"  # reads go on
    ok("backup", "thaw", "--server", server_addr(server))
    assert done.wait(10)
    t.join()
    assert c.get("a") == b"2"
    # A forgotten thaw releases itself.
    ok("backup", "freeze", "--server", server_addr(server), "--timeout", "1")
    c2 = server.client(socket_timeout=30)
    t0 = time.monotonic()
    c2.set("a", "3")
    assert time.monotonic() - t0 < 10
    assert "thawed by themselves" in server.read_log()
    r = levee("backup", "thaw", "--server", server_addr(server))
    assert r.returncode != 0 and "not frozen" in r.stderr


def test_offline_backup_of_a_stopped_data_dir_and_json_progress(server_factory, tmpdir_path):
    s = server_factory()
    fill(s.client(), 3000, 3000)
    digest = s.client().execute_command("DEBUG", "DIGEST").decode()
    s.stop()
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    out = ok("backup", "create", "--data-dir", s.data_dir, "--repo", repo, "--json").stdout.splitlines()
    lines = [json.loads(x) for x in out]
    assert lines[-1]["message_type"] == "summary" and lines[-1]["digest"] == digest
    status = [x for x in lines if x["message_type"] == "status"]
    assert status and status[-1]["bytes_done"] == status[-1]["total_bytes"] > 0
    assert all({"percent_done", "bytes_per_second", "seconds_remaining"} <= set(x) for x in status)
    d = os.path.join(tmpdir_path, "restored")
    out = ok("backup", "restore", "--repo", repo, "--data-dir", d, "--json").stdout.splitlines()
    assert json.loads(out[-1])["message_type"] == "summary"
    r = server_factory(data_dir=d)
    assert r.client().execute_command("DEBUG", "DIGEST").decode() == digest
    r2 = levee("backup", "restore", "--repo", repo, "--data-dir", d)
    assert r2.returncode != 0 and "already holds a database" in r2.stderr


def backup_threads(pid):
    """(policy, nice) of each thread of pid named levee-backup (the schedule,
    its transfer workers and the digest reader); policy 5 is SCHED_IDLE."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except FileNotFoundError:
            continue  # the thread ended
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if comm == "levee-backup":
            out.append((int(fields[38]), int(fields[16])))
    return out


@pytest.mark.parametrize("priority", ["idle", "low"])
def test_server_side_backup_threads_yield_to_the_foreground(server_factory, tmpdir_path, priority):
    s = server_factory(extra_args=["--backup-repo", "file://" + os.path.join(tmpdir_path, "repo"),
                                   "--backup-schedule", "off", "--backup-max-bytes-per-sec", "1mb",
                                   "--backup-cpu-priority", priority])
    fill(s.client(), 2500, 2000)  # about 5 MB: five seconds at this rate
    s.client().execute_command("BACKUP", "RUN")
    seen = set()

    def workers_seen():
        seen.update(t for t in backup_threads(s.proc.pid) if t != (0, 0))  # (0, 0): the schedule thread
        return seen
    wait_until(workers_seen, 30, interval=0.05, what="the backup's worker threads")
    if priority == "idle":
        assert seen == {(5, 10)}, f"backup threads (policy, nice): {seen}; expected SCHED_IDLE"
    else:
        assert seen == {(0, 10)}, f"backup threads (policy, nice): {seen}; expected nice 10, normal policy"
    status = lambda: dict(zip(*[iter(s.client().execute_command("BACKUP", "STATUS"))] * 2))  # noqa: E731
    assert status()[b"running"] == 1, "the backup ended before its threads were checked: the test proved nothing"
    wait_until(lambda: status()[b"running"] == 0, 60, what="the backup to end")
    assert status()[b"failures"] == 0, status()
    assert len(backups("file://" + os.path.join(tmpdir_path, "repo"))) == 1
    with pytest.raises(Exception, match="backup-cpu-priority"):
        s.client().execute_command("CONFIG", "SET", "backup-cpu-priority", "nice")


def test_a_backups_digest_does_not_fill_the_value_cache(server_factory, tmpdir_path):
    # Values written with blob-cache-on-write off stay out of the value
    # cache; the backup's digest then reads every one of them (30 MB) and
    # must leave the cache, and levee's memory, as they were.
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    s = server_factory(extra_args=["--backup-repo", repo, "--backup-schedule", "off",
                                   "--backup-verify-schedule", "off", "--blob-cache-on-write", "no"])
    r = s.client()
    fill(r, 3000, 10_000)
    assert r.get("k7") is not None  # one read: one value cached
    before = r.info("levee")["blob_cache_bytes"]
    used_before = r.info("memory")["used_memory"]
    assert 10_000 <= before < 100_000, before
    r.execute_command("BACKUP", "RUN")
    status = lambda: dict(zip(*[iter(r.execute_command("BACKUP", "STATUS"))] * 2))  # noqa: E731
    wait_until(lambda: status()[b"running"] == 0 and len(backups(repo)) == 1, 60, what="the backup to end")
    assert status()[b"failures"] == 0, status()
    assert r.info("levee")["blob_cache_bytes"] == before
    assert r.info("memory")["used_memory"] < used_before + 10_000_000
    # The backup holds every value all the same: its digest is the data's.
    # DEBUG DIGEST, a full pass too, leaves the cache alone as well.
    listed = backups(repo)[0]
    assert listed["digest"] == r.execute_command("DEBUG", "DIGEST").decode()
    assert r.info("levee")["blob_cache_bytes"] == before


def test_prune_keeps_exactly_the_backups_each_policy_names(server, tmpdir_path):
    """Prune deletes data: which backups survive each policy is checked by
    id, from the CLI. All four backups are from today, so the newest is
    today's and this week's."""
    repo = "file://" + os.path.join(tmpdir_path, "repo")
    for i in range(4):
        server.client().set(f"gen{i}", i)
        ok("backup", "create", "--server", server_addr(server), "--repo", repo)
    ids = [b["id"] for b in sorted(backups(repo), key=lambda b: b["time_ms"])]
    assert len(set(ids)) == 4

    def kept():
        return [b["id"] for b in sorted(backups(repo), key=lambda b: b["time_ms"])]
    # --dry-run names what would go and removes nothing.
    out = ok("backup", "prune", "--repo", repo, "--keep-last", "1", "--dry-run").stdout
    assert all(i in out for i in ids[:3]) and kept() == ids, out
    ok("backup", "prune", "--repo", repo, "--keep-last", "3", "--lock-wait", "5")
    assert kept() == ids[1:]
    ok("backup", "prune", "--repo", repo, "--keep-last", "0", "--keep-daily", "2", "--keep-weekly", "0")
    assert kept() == ids[3:]  # the newest of today; no other day has one
    ok("backup", "create", "--server", server_addr(server), "--repo", repo)
    newest = kept()[-1]
    ok("backup", "prune", "--repo", repo, "--keep-last", "0", "--keep-daily", "0", "--keep-weekly", "1")
    assert kept() == [newest]
    # What is left restores to the server's data.
    d = os.path.join(tmpdir_path, "restored")
    ok("backup", "restore", "--repo", repo, "--data-dir", d)
    assert run_levee("check", "--data-dir", d).returncode == 0


def signed_headers(method, host, path, body, amz_date, payload_hash, extra=None, sign_extra=True):
    """SigV4 headers as a client computes them (botocore's signer), with the
    date, payload hash and signed header set under the test's control."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from s3_fixture import ACCESS, SECRET
    headers = {"Host": host, "X-Amz-Date": amz_date, "X-Amz-Content-SHA256": payload_hash}
    signed = dict(headers, **(extra or {})) if sign_extra else dict(headers)
    req = AWSRequest(method=method, url=f"http://{host}{path}", data=body, headers=signed)
    req.context["timestamp"] = amz_date
    signer = S3SigV4Auth(Credentials(ACCESS, SECRET), "s3", "us-east-1")
    sig = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    names = ";".join(sorted(h.lower() for h in signed))
    auth = (f"AWS4-HMAC-SHA256 Credential={ACCESS}/{amz_date[:8]}/us-east-1/s3/aws4_request,"
            f"SignedHeaders={names},Signature={sig}")
    return dict(headers, **(extra or {}), Authorization=auth)


def test_the_s3_proxy_refuses_what_s3_refuses(s3):
    """The signature check in front of s3rver is as strict as S3 where levee
    claims to be: a request levee would never send is refused."""
    import http.client
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    stale = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 20 * 60))
    host = s3.endpoint[len("http://"):]
    body = b"object body"
    digest = hashlib.sha256(body).hexdigest()

    def put(headers):
        c = http.client.HTTPConnection(host, timeout=10)
        c.request("PUT", "/levee/probe", body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.read().decode()
    status, text = put(signed_headers("PUT", host, "/levee/probe", body, now, digest))
    assert status == 200, text  # the control: signed as levee signs
    cases = {
        "UNSIGNED-PAYLOAD": signed_headers("PUT", host, "/levee/probe", body, now, "UNSIGNED-PAYLOAD"),
        "x-amz-meta-owner is not signed": signed_headers("PUT", host, "/levee/probe", body, now, digest,
                                                         extra={"X-Amz-Meta-Owner": "x"}, sign_extra=False),
        "RequestTimeTooSkewed": signed_headers("PUT", host, "/levee/probe", body, stale, digest),
    }
    for why, headers in cases.items():
        s3.rejected.clear()
        status, text = put(headers)
        assert status == 403, (why, status, text)
        assert any(why in r for r in s3.rejected), (why, s3.rejected)
    s3.rejected.clear()
