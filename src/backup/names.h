// Names in a backup repository: what a backup id, an object id, a store key
// and a restored file's path may look like.
//
// A repository is shared storage (a bucket, a mounted volume) and anyone who
// can write to it can plant a manifest. Every name levee reads back from a
// repository becomes a store key or a local path, so each is checked here
// before it is used: a safe character set, no "." or ".." segment, no
// absolute path, a bounded length. A check that fails returns a Corruption
// status naming the object and what is wrong with it.
//
// Pure functions; callable from any thread.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace levee::backup {

// A backup id: 1-128 of [A-Za-z0-9._-], not starting with '.' or '-'.
// NewBackupId's "20261121T101500Z-3fa2c1" is one.
bool IsBackupId(std::string_view id);

// An object's content id: 64 lowercase hex digits (SHA-256 or HMAC-SHA-256).
bool IsObjectId(std::string_view id);

// A store key: '/'-separated segments, each 1-255 of [A-Za-z0-9._-] and not
// "." or ".."; 1-1024 bytes; no leading or trailing '/'. Every key levee
// writes ("config", "objects/ab/<id>", "backups/<id>", "locks/...",
// "wal/<timeline>/...") is one.
bool IsStoreKey(std::string_view key);

// A file's path inside a data directory, as a manifest lists it: the rules
// of a store key (so it cannot leave the directory it is restored into).
bool IsDataPath(std::string_view path);

// OK, or InvalidArgument naming the key and the repository; for the Store
// implementations, which refuse any other key before touching disk or
// network.
Status CheckStoreKey(std::string_view key, const std::string& url);

}  // namespace levee::backup
