// Small file-system helpers shared by the modules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace levee {

// Replaces path with content so that a crash leaves either the old file or
// the new one: writes a temporary file beside it, fsyncs it, renames it over
// path and fsyncs the directory. The error names the path and the reason;
// on failure the temporary file is removed and path is untouched.
// Writes all of data to fd, retrying short writes and EINTR. Returns 0 or
// the errno of the failure (EIO when write made no progress).
int WriteAll(int fd, std::string_view data);

// Creates (or truncates) path for writing, mode 0644; with direct, with
// O_DIRECT where the file system allows it. Returns the fd, or -1 (errno).
int OpenForWrite(const std::string& path, bool direct);

// Writes data at offset of fd. When fd was opened with O_DIRECT (offset a
// multiple of 4096) the data goes through an aligned buffer and the last
// block is padded with zeros: the caller cuts the file to its size. A file
// system that refuses a direct write (EINVAL) gets it through the page
// cache. A short write on a full file system is ENOSPC. Returns 0 or an
// errno.
int WriteMaybeDirect(int fd, std::string_view data, uint64_t offset);

Status WriteFileAtomic(const std::string& path, const std::string& content, unsigned mode = 0644);

// Reads exactly n bytes at offset of path into *out. The error names the
// path and says whether it could not be opened, failed, or ended early.
Status ReadFileAt(const std::string& path, uint64_t offset, size_t n, std::string* out);

}  // namespace levee
