"""Security (#20): what a hostile backup repository, client or network can do
to levee, tried against the real binary. docs/security.md maps each threat
to its mitigation and to the test here that proves it."""
import json
import os
import subprocess

from conftest import LEVEE, wait_until


def levee(*args, timeout=120):
    return subprocess.run([LEVEE] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def plant_manifest(repo_dir, name, manifest):
    """Writes a manifest object the way levee stores one unencrypted: magic
    LVB1, flags 0 (not compressed, not encrypted), then the JSON."""
    with open(os.path.join(repo_dir, "backups", name), "wb") as f:
        f.write(b"LVB1\x00" + json.dumps(manifest).encode())


# --- a hostile repository -------------------------------------------------------

def test_planted_manifests_cannot_remove_files_outside_the_data_dir_or_repository(server, tmpdir_path):
    server.client().set("k", "v")
    repo_dir = os.path.join(tmpdir_path, "repo")
    repo = "file://" + repo_dir
    r = levee("backup", "create", "--server", f"127.0.0.1:{server.port}", "--repo", repo)
    assert r.returncode == 0, r.stderr
    real = json.loads(levee("backup", "list", "--repo", repo, "--json").stdout)
    assert len(real) == 1
    real_id = real[0]["id"]

    # Restore stages into <data-dir>/.restore-<id>: an id with ../ pointed
    # that (and its removal) at a directory beside the data dir.
    restore_root = os.path.join(tmpdir_path, "restore")
    data_dir = os.path.join(restore_root, "d")
    victim = os.path.join(restore_root, "victim")
    os.makedirs(victim)
    with open(os.path.join(victim, "precious"), "w") as f:
        f.write("keep me")
    evil = {"format": 1, "id": "x/../../victim", "time_ms": 4102444800000, "applied_sequence": 1, "files": []}
    plant_manifest(repo_dir, "zz-evil", evil)
    r = levee("backup", "restore", "--repo", repo, "--data-dir", data_dir)
    assert r.returncode != 0, r.stdout
    assert "backups/zz-evil" in r.stderr and "refusing" in r.stderr, r.stderr
    assert os.path.exists(os.path.join(victim, "precious")), "restore removed a directory outside its data dir"

    # Prune deleted backups/<id> for each manifest it did not keep: an id of
    # ../../victim2.txt deleted a file beside the repository.
    os.remove(os.path.join(repo_dir, "backups", "zz-evil"))
    victim2 = os.path.join(tmpdir_path, "victim2.txt")
    with open(victim2, "w") as f:
        f.write("keep me too")
    old = {"format": 1, "id": "../../victim2.txt", "time_ms": 1, "applied_sequence": 1, "files": []}
    plant_manifest(repo_dir, "aa-old", old)
    r = levee("backup", "prune", "--repo", repo, "--keep-last", "1")
    assert r.returncode != 0, r.stdout
    assert "backups/aa-old" in r.stderr, r.stderr
    assert os.path.exists(victim2), "prune deleted a file outside the repository"
    # A manifest whose id is not its name is refused too, and so is a file
    # path that climbs out of the data dir.
    os.remove(os.path.join(repo_dir, "backups", "aa-old"))
    plant_manifest(repo_dir, "20300101T000000Z-000000", dict(evil, id=real_id))
    r = levee("backup", "list", "--repo", repo)
    assert r.returncode != 0 and "20300101T000000Z-000000" in r.stderr and real_id in r.stderr, r.stderr
    os.remove(os.path.join(repo_dir, "backups", "20300101T000000Z-000000"))
    plant_manifest(repo_dir, "20300101T000000Z-000001",
                   dict(evil, id="20300101T000000Z-000001",
                        files=[{"path": "db/../../escape", "size": 0, "chunks": []}]))
    r = levee("backup", "restore", "--repo", repo, "--data-dir", data_dir)
    assert r.returncode != 0 and "db/../../escape" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(restore_root, "escape"))
    os.remove(os.path.join(repo_dir, "backups", "20300101T000000Z-000001"))

    # With the planted objects gone, the real backup restores as before.
    r = levee("backup", "restore", real_id, "--repo", repo, "--data-dir", data_dir)
    assert r.returncode == 0, r.stderr
    # A bad id on the command line is refused by name.
    r = levee("backup", "restore", "../x", "--repo", repo, "--data-dir", os.path.join(tmpdir_path, "d2"))
    assert r.returncode != 0 and "not a backup id" in r.stderr, r.stderr
