#!/usr/bin/python3
"""A test-only FUSE filesystem whose unsynced state is lost when the power is cut.

Everything lives in this process's memory. Each file has the content a
reader sees now and the content that is durable: a write changes the first
at once and the second only when the file is fsynced (fsync or fdatasync,
or every write of a file opened O_SYNC/O_DSYNC). Each directory has the
entries a lookup sees now and the entries that are durable: a create,
unlink, rename or link changes the second only when that directory is
fsynced. `syncfs`/`sync` never reach a FUSE filesystem, so they make
nothing durable here; this is the POSIX minimum, not what ext4 happens to
do.

Cutting the power (the `cut` command) makes every operation from then on
fail, then writes the durable tree into a real directory (the image) and
unmounts; mounting again from that image is the reboot. `mode` says what
of the unsynced state survives the cut:

  strict  nothing (everything not made durable is dropped)
  torn    for each file, a random prefix of its unsynced writes (the last
          one possibly cut short at a 512-byte boundary); for metadata, the
          operations up to a random point of their global order (a journal
          that committed up to there)

A control socket (one JSON object per line, one JSON reply per line) drives
it from the test:

  {"op": "freeze"}                      every later operation blocks (the moment of the cut)
  {"op": "trigger", "on": OP, "path": GLOB, "after": N}
                                        freeze just before the Nth matching operation runs
                                        (OP: write, fsync, fsyncdir, create, rename, unlink, link, truncate, mkdir)
  {"op": "wait_frozen", "timeout": S}   {"frozen": true} once frozen
  {"op": "cut", "mode": M, "seed": S, "image": DIR}
                                        power off: fail all operations, dump the durable tree
  {"op": "fail_fsync", "path": GLOB, "count": N}
                                        the next N fsyncs of matching files fail with EIO and,
                                        as on Linux, the writes they were to make durable never
                                        become durable (they stay readable); a later fsync succeeds
  {"op": "ignore_sync", "path": GLOB}   fsyncs of matching files or directories succeed and do
                                        nothing: a planted "missing fsync" bug
  {"op": "delay", "on": OP, "path": GLOB, "seconds": S}
                                        each matching operation waits S seconds first (a slow
                                        disk for one kind of file: widens a window to cut in)
  {"op": "journal"}                     metadata as ext4 journals it (data=ordered): every fsync
                                        of any file also makes every directory operation before
                                        it durable (a journal commit); file data still only on
                                        that file's own fsync
  {"op": "stats"}                       operation counts, fsyncs per path, unsynced bytes per file

Threads: FUSE calls come on libfuse's threads and the control socket on one
thread of its own; one lock orders all of them.

Usage: /usr/bin/python3 powercut_fs.py MOUNTPOINT CONTROL_SOCKET [--owner UID:GID] [IMAGE_TO_LOAD]
(--owner: mounted by root for that user: files are theirs, and they may use it)
"""
import errno
import fnmatch
import json
import os
import random
import socket
import stat
import sys
import threading
import time

from fusepy import FUSE, FuseOSError, Operations

BLOCK = 4096
OWNER = (os.getuid(), os.getgid())
CAPACITY = 64 << 30


class Node:
    """An inode: a file (data, durable, pending), a directory (entries,
    durable_entries) or a symlink (target)."""
    _next = 1

    def __init__(self, kind, mode):
        self.ino = Node._next
        Node._next += 1
        self.kind = kind
        self.mode = mode
        self.nlink = 1 if kind != "dir" else 2
        self.mtime = time.time()
        self.data = bytearray()
        self.durable = bytearray()
        self.pending = []   # ("w", offset, bytes) / ("t", size), in order
        self.entries = {}
        self.durable_entries = {}
        self.target = ""


class PowerCutFS(Operations):
    def __init__(self, image=None):
        self.mu = threading.RLock()
        self.cond = threading.Condition(self.mu)
        self.root = Node("dir", stat.S_IFDIR | 0o755)
        self.handles = {}
        self.next_fh = 10
        self.frozen = False
        self.dead = False
        self.triggers = []
        self.fail_fsync = []     # [glob, remaining]
        self.ignore_sync = []
        self.delays = []         # (op, glob, seconds)
        self.journal = False
        self.meta_seq = 0
        self.meta_pending = []   # (seq, dir node, name, node or None) since the dir's last fsync
        self.counts = {}
        self.syncs = {}
        if image:
            self._load(image, self.root)

    # -- the tree ------------------------------------------------------
    def _load(self, path, node):
        for name in sorted(os.listdir(path)):
            p = os.path.join(path, name)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                child = Node("dir", st.st_mode)
                self._load(p, child)
            elif stat.S_ISLNK(st.st_mode):
                child = Node("link", st.st_mode)
                child.target = os.readlink(p)
            else:
                child = Node("file", st.st_mode)
                with open(p, "rb") as f:
                    child.durable = bytearray(f.read())
                child.data = bytearray(child.durable)
            node.entries[name] = child
        node.durable_entries = dict(node.entries)

    def _resolve(self, path):
        node = self.root
        if path in ("/", ""):
            return node
        for part in path.strip("/").split("/"):
            if node.kind != "dir" or part not in node.entries:
                raise FuseOSError(errno.ENOENT)
            node = node.entries[part]
        return node

    def _parent(self, path):
        head, name = os.path.split(path.rstrip("/"))
        parent = self._resolve(head or "/")
        if parent.kind != "dir":
            raise FuseOSError(errno.ENOTDIR)
        return parent, name

    def _set_entry(self, parent, name, node):
        self.meta_seq += 1
        if node is None:
            parent.entries.pop(name, None)
        else:
            parent.entries[name] = node
        self.meta_pending.append((self.meta_seq, parent, name, node))

    # -- the gate: freezing, triggers, the cut ---------------------------
    def _gate(self, op, path):
        """Called under the lock at the start of each operation."""
        self.counts[op] = self.counts.get(op, 0) + 1
        for t in self.triggers:
            if t["on"] == op and fnmatch.fnmatch(path or "", t["path"]):
                t["seen"] += 1
                if t["seen"] == t["after"]:
                    self.frozen = True
                    self.cond.notify_all()
        while self.frozen and not self.dead:
            self.cond.wait()
        if self.dead:
            raise FuseOSError(errno.EIO)

    def _matches(self, rules, path):
        return any(fnmatch.fnmatch(path or "", r) for r in rules)

    def _write(self, node, offset, buf):
        end = offset + len(buf)
        if len(node.data) < offset:
            node.data.extend(b"\0" * (offset - len(node.data)))
        node.data[offset:end] = buf
        node.pending.append(("w", offset, bytes(buf)))
        node.mtime = time.time()

    def _truncate(self, node, size):
        if size < len(node.data):
            del node.data[size:]
        else:
            node.data.extend(b"\0" * (size - len(node.data)))
        node.pending.append(("t", size))
        node.mtime = time.time()

    @staticmethod
    def _apply(out, ops, keep_last_part=None):
        """Applies ops to the bytearray out, in place; keep_last_part cuts the last write short."""
        for i, op in enumerate(ops):
            if op[0] == "t":
                if op[1] < len(out):
                    del out[op[1]:]
                else:
                    out.extend(b"\0" * (op[1] - len(out)))
                continue
            _, off, buf = op
            if keep_last_part is not None and i == len(ops) - 1:
                buf = buf[:keep_last_part]
            if len(out) < off:
                out.extend(b"\0" * (off - len(out)))
            out[off:off + len(buf)] = buf
        return out

    def _make_durable(self, node):
        # The pending writes, not the current content: writes a failed
        # fsync lost stay lost even though they are still readable.
        self._apply(node.durable, node.pending)
        node.pending = []

    def _sync_dir(self, node):
        node.durable_entries = dict(node.entries)
        self.meta_pending = [m for m in self.meta_pending if m[1] is not node]

    # -- control ---------------------------------------------------------
    def control(self, req):
        op = req.get("op")
        with self.mu:
            if op == "freeze":
                self.frozen = True
                return {"ok": True}
            if op == "trigger":
                self.triggers.append({"on": req["on"], "path": req["path"], "after": int(req.get("after", 1)),
                                      "seen": 0})
                return {"ok": True}
            if op == "wait_frozen":
                deadline = time.monotonic() + float(req.get("timeout", 10))
                while not self.frozen and time.monotonic() < deadline:
                    self.cond.wait(max(0.0, deadline - time.monotonic()))
                return {"frozen": self.frozen}
            if op == "fail_fsync":
                self.fail_fsync.append([req["path"], int(req.get("count", 1))])
                return {"ok": True}
            if op == "journal":
                self.journal = True
                return {"ok": True}
            if op == "delay":
                self.delays.append((req["on"], req["path"], float(req["seconds"])))
                return {"ok": True}
            if op == "ignore_sync":
                self.ignore_sync.append(req["path"])
                return {"ok": True}
            if op == "stats":
                unsynced = {}

                def walk(node, path):
                    for name, child in node.entries.items():
                        p = path + "/" + name
                        if child.kind == "dir":
                            walk(child, p)
                        elif child.pending:
                            unsynced[p] = sum(len(o[2]) for o in child.pending if o[0] == "w")
                walk(self.root, "")
                return {"counts": self.counts, "syncs": self.syncs, "frozen": self.frozen, "unsynced": unsynced}
            if op == "cut":
                self.dead = True
                self.cond.notify_all()
                return self._dump(req["image"], req.get("mode", "strict"), random.Random(req.get("seed", 0)))
        return {"error": f"unknown op {op!r}"}

    def _dump(self, image, mode, rng):
        # Metadata: the durable entries, plus in torn mode the pending
        # operations up to a random point of their order.
        entries = {}
        upto = rng.randint(0, self.meta_seq) if mode == "torn" else -1
        for seq, parent, name, node in self.meta_pending:
            if seq > upto:
                continue
            d = entries.setdefault(id(parent), dict(parent.durable_entries))
            if node is None:
                d.pop(name, None)
            else:
                d[name] = node
        dropped = {"bytes": 0, "files": 0}
        written = {}

        def content(node):
            if not node.pending:
                return node.durable
            dropped["files"] += 1
            if mode != "torn":
                dropped["bytes"] += len(node.data)
                return node.durable
            k = rng.randint(0, len(node.pending))
            part = None
            if k > 0 and node.pending[k - 1][0] == "w":
                part = rng.choice([len(node.pending[k - 1][2]), rng.randrange(0, len(node.pending[k - 1][2]) + 1, 512)])
            return self._apply(bytearray(node.durable), node.pending[:k], part)

        def walk(node, path):
            os.makedirs(path, exist_ok=True)
            os.lchown(path, *OWNER)  # the image is the test's to remove
            for name, child in entries.get(id(node), node.durable_entries).items():
                p = os.path.join(path, name)
                if child.kind == "dir":
                    walk(child, p)
                    continue
                if child.kind == "link":
                    os.symlink(child.target, p)
                elif child.ino in written:
                    os.link(written[child.ino], p)
                    continue
                else:
                    with open(p, "wb") as f:
                        f.write(content(child))
                    written[child.ino] = p
                os.lchown(p, *OWNER)

        walk(self.root, image)
        return {"ok": True, "unsynced_files": dropped["files"], "dropped_bytes": dropped["bytes"]}

    # -- FUSE operations -------------------------------------------------
    def getattr(self, path, fh=None):
        with self.mu:
            node = self.handles[fh][0] if fh in self.handles else self._resolve(path)
            size = len(node.data) if node.kind == "file" else (len(node.target) if node.kind == "link" else BLOCK)
            return {"st_mode": node.mode, "st_nlink": node.nlink, "st_size": size, "st_ino": node.ino,
                    "st_mtime": node.mtime, "st_ctime": node.mtime, "st_atime": node.mtime,
                    "st_uid": OWNER[0], "st_gid": OWNER[1], "st_blocks": (size + 511) // 512}

    def statfs(self, path):
        used = 0  # not counted: the tests never fill it
        return {"f_bsize": BLOCK, "f_frsize": BLOCK, "f_blocks": CAPACITY // BLOCK, "f_bfree": (CAPACITY - used) // BLOCK,
                "f_bavail": (CAPACITY - used) // BLOCK, "f_files": 1 << 20, "f_ffree": 1 << 20, "f_namemax": 255}

    def readdir(self, path, fh):
        with self.mu:
            node = self._resolve(path)
            return [".", ".."] + list(node.entries)

    def readlink(self, path):
        with self.mu:
            return self._resolve(path).target

    def _new(self, op, path, kind, mode):
        with self.mu:
            self._gate(op, path)
            parent, name = self._parent(path)
            if name in parent.entries:
                raise FuseOSError(errno.EEXIST)
            node = Node(kind, mode)
            self._set_entry(parent, name, node)
            if kind == "dir":
                parent.nlink += 1
            return node

    def mkdir(self, path, mode):
        self._new("mkdir", path, "dir", stat.S_IFDIR | (mode & 0o7777))

    def symlink(self, target, source):
        node = self._new("create", target, "link", stat.S_IFLNK | 0o777)
        node.target = source

    def create(self, path, mode, fi=None):
        node = self._new("create", path, "file", stat.S_IFREG | (mode & 0o7777))
        return self._handle(node, os.O_WRONLY)

    def _handle(self, node, flags):
        with self.mu:
            self.next_fh += 1
            self.handles[self.next_fh] = (node, bool(flags & (os.O_SYNC | os.O_DSYNC)))
            return self.next_fh

    def open(self, path, flags):
        with self.mu:
            node = self._resolve(path)
            if flags & os.O_TRUNC:
                self._gate("truncate", path)
                self._truncate(node, 0)
            return self._handle(node, flags)

    def opendir(self, path):
        with self.mu:
            return self._handle(self._resolve(path), 0)

    def release(self, path, fh):
        with self.mu:
            self.handles.pop(fh, None)

    def releasedir(self, path, fh):
        self.release(path, fh)

    def read(self, path, size, offset, fh):
        with self.mu:
            if self.dead:
                raise FuseOSError(errno.EIO)
            node = self.handles[fh][0]
            return bytes(node.data[offset:offset + size])

    def _slow(self, op, path):
        """Outside the lock: the operation waits, the others go on."""
        for on, glob, seconds in self.delays:
            if on == op and fnmatch.fnmatch(path or "", glob):
                time.sleep(seconds)

    def write(self, path, data, offset, fh):
        self._slow("write", path)
        with self.mu:
            self._gate("write", path)
            node, sync = self.handles[fh]
            self._write(node, offset, data)
            if sync:
                self._make_durable(node)
            return len(data)

    def truncate(self, path, length, fh=None):
        with self.mu:
            self._gate("truncate", path)
            node = self.handles[fh][0] if fh in self.handles else self._resolve(path)
            self._truncate(node, length)

    def fsync(self, path, datasync, fh):
        with self.mu:
            self._gate("fsync", path)
            node = self.handles[fh][0]
            self.syncs[path] = self.syncs.get(path, 0) + 1
            for rule in self.fail_fsync:
                if rule[1] > 0 and fnmatch.fnmatch(path or "", rule[0]):
                    rule[1] -= 1
                    node.pending = []  # marked clean without reaching the disk: never durable
                    raise FuseOSError(errno.EIO)
            if not self._matches(self.ignore_sync, path):
                self._make_durable(node)
                if self.journal:
                    for parent in {id(m[1]): m[1] for m in self.meta_pending}.values():
                        self._sync_dir(parent)
            return 0

    def fsyncdir(self, path, datasync, fh):
        with self.mu:
            self._gate("fsyncdir", path)
            self.syncs[path] = self.syncs.get(path, 0) + 1
            if not self._matches(self.ignore_sync, path):
                self._sync_dir(self.handles[fh][0] if fh in self.handles else self._resolve(path))
            return 0

    def flush(self, path, fh):
        return 0

    def _remove(self, path, directory):
        """unlink (directory False) or rmdir (True): one pending directory operation."""
        with self.mu:
            self._gate("unlink", path)
            parent, name = self._parent(path)
            node = parent.entries.get(name)
            if node is None:
                raise FuseOSError(errno.ENOENT)
            if not directory and node.kind == "dir":
                raise FuseOSError(errno.EISDIR)
            if directory and node.entries:
                raise FuseOSError(errno.ENOTEMPTY)
            (parent if directory else node).nlink -= 1
            self._set_entry(parent, name, None)

    def unlink(self, path):
        self._remove(path, directory=False)

    def rmdir(self, path):
        self._remove(path, directory=True)

    def rename(self, old, new):
        with self.mu:
            self._gate("rename", new)
            op, oname = self._parent(old)
            np, nname = self._parent(new)
            node = op.entries.get(oname)
            if node is None:
                raise FuseOSError(errno.ENOENT)
            existing = np.entries.get(nname)
            if existing is not None and existing.kind == "dir":
                if node.kind != "dir":
                    raise FuseOSError(errno.EISDIR)
                if existing.entries:
                    raise FuseOSError(errno.ENOTEMPTY)
            self._set_entry(op, oname, None)
            self._set_entry(np, nname, node)

    def link(self, target, source):
        with self.mu:
            self._gate("link", target)
            node = self._resolve(source)
            parent, name = self._parent(target)
            if name in parent.entries:
                raise FuseOSError(errno.EEXIST)
            node.nlink += 1
            self._set_entry(parent, name, node)

    def chmod(self, path, mode):
        with self.mu:
            node = self._resolve(path)
            node.mode = (node.mode & ~0o7777) | (mode & 0o7777)

    def chown(self, path, uid, gid):
        return 0

    def utimens(self, path, times=None):
        with self.mu:
            self._resolve(path).mtime = times[1] if times else time.time()


def serve_control(fs, sock_path):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    os.chown(sock_path, *OWNER)
    srv.listen(8)

    def session(conn):
        with conn, conn.makefile("rw") as f:
            for line in f:
                try:
                    reply = fs.control(json.loads(line))
                except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
                    reply = {"error": f"{type(e).__name__}: {e}"}
                f.write(json.dumps(reply) + "\n")
                f.flush()

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=session, args=(conn,), daemon=True).start()


def main():
    global OWNER
    args = sys.argv[1:]
    owned = "--owner" in args
    if owned:
        i = args.index("--owner")
        OWNER = tuple(int(x) for x in args[i + 1].split(":"))
        del args[i:i + 2]
    mountpoint, sock_path = args[0], args[1]
    fs = PowerCutFS(args[2] if len(args) > 2 else None)
    threading.Thread(target=serve_control, args=(fs, sock_path), daemon=True).start()
    FUSE(fs, mountpoint, foreground=True, nothreads=False, hard_remove=True, use_ino=True, default_permissions=True,
         attr_timeout=0, entry_timeout=0, negative_timeout=0, fsname="powercut", allow_other=owned)


if __name__ == "__main__":
    main()
