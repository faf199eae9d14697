#include "backup/archive.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "backup/json_fields.h"
#include "common/file.h"
#include "wal/log.h"

namespace levee::backup {
namespace fs = std::filesystem;
namespace {

std::string SegmentKey(const std::string& timeline, uint64_t first, uint64_t last) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%020" PRIu64 "-%020" PRIu64, first, last);
  return "wal/" + timeline + "/" + buf;
}

bool IsTimelineId(const std::string& s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// One step of a timeline's history: its segments serve sequences <= upper.
struct PathStep {
  std::string timeline;
  uint64_t upper;
};

StatusOr<std::vector<PathStep>> HistoryPath(const ArchiveIndex& index, const std::string& timeline) {
  std::vector<PathStep> path;
  std::string t = timeline;
  uint64_t upper = UINT64_MAX;
  while (!t.empty()) {
    if (path.size() > 1000) return Status::Corruption("the log archive's timeline histories form a loop at " + t);
    path.push_back({t, upper});
    auto it = index.timelines.find(t);
    if (it == index.timelines.end()) break;
    upper = std::min(upper, it->second.fork);
    t = it->second.parent;
  }
  return path;
}

}  // namespace

uint64_t ArchiveIndex::LastArchived(const std::string& timeline) const {
  uint64_t last = 0;
  for (const auto& s : segments) {
    if (s.timeline == timeline) last = std::max(last, s.last);
  }
  return last;
}

std::string ArchiveIndex::Latest() const {
  std::string best;
  int64_t best_ms = -1;
  for (const auto& [id, t] : timelines) {
    if (t.created_ms > best_ms) {
      best = id;
      best_ms = t.created_ms;
    }
  }
  return best;
}

Status LoadArchiveIndex(Repository& repo, ArchiveIndex* out) {
  *out = ArchiveIndex();
  std::vector<StoreEntry> entries;
  LEVEE_RETURN_IF_ERROR(repo.store()->List("wal/", &entries));
  for (const auto& e : entries) {
    // wal/<timeline>/history or wal/<timeline>/<first>-<last>
    size_t slash = e.key.find('/', 4);
    if (e.key.rfind("wal/", 0) != 0 || slash == std::string::npos) continue;
    std::string timeline = e.key.substr(4, slash - 4), name = e.key.substr(slash + 1);
    if (!IsTimelineId(timeline)) continue;
    if (name == "history") {
      std::string stored;
      LEVEE_RETURN_IF_ERROR(repo.store()->Get(e.key, &stored));
      auto text = DecodeObject(stored, repo.key(), "log archive history " + e.key);
      if (!text.ok()) return text.status();
      nlohmann::json j = nlohmann::json::parse(text.value(), nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("parent") || !j.contains("fork") ||
          !j["parent"].is_string() || !j["fork"].is_number_unsigned()) {
        return Status::Corruption("log archive history " + e.key + " in " + repo.url() +
                                  " is not a levee timeline history");
      }
      Timeline t;
      t.id = timeline;
      t.parent = j["parent"].get<std::string>();
      t.fork = j["fork"].get<uint64_t>();
      try {
        t.created_ms = JsonIntOr<int64_t>(j, "created_ms", 0);
      } catch (const std::exception& ex) {
        return Status::Corruption("log archive history " + e.key + " in " + repo.url() + ": " + ex.what());
      }
      out->timelines[timeline] = t;
      continue;
    }
    uint64_t first = 0, last = 0;
    if (name.size() != 41 || name[20] != '-' ||
        std::sscanf(name.c_str(), "%20" SCNu64 "-%20" SCNu64, &first, &last) != 2 || first == 0 || last < first) {
      continue;  // not ours
    }
    out->segments.push_back({timeline, first, last, e.size, e.key});
  }
  std::sort(out->segments.begin(), out->segments.end(), [](const ArchivedSegment& a, const ArchivedSegment& b) {
    return std::tie(a.timeline, a.first, a.last) < std::tie(b.timeline, b.first, b.last);
  });
  return Status::OK();
}

Status WriteTimeline(Repository& repo, const Timeline& t) {
  nlohmann::json j = {{"parent", t.parent}, {"fork", t.fork}, {"created_ms", t.created_ms}};
  LEVEE_RETURN_IF_ERROR(
      repo.store()->Put("wal/" + t.id + "/history", EncodeObject(j.dump(), Compression::kNever, repo.key())));
  return repo.store()->Flush();
}

Status PutArchivedSegment(Repository& repo, const std::string& timeline, uint64_t first, uint64_t last,
                          std::string_view framed) {
  std::string plain = wal::SegmentHeader(first);
  plain.append(framed);
  LEVEE_RETURN_IF_ERROR(
      repo.store()->Put(SegmentKey(timeline, first, last), EncodeObject(plain, Compression::kIfSmaller, repo.key())));
  return repo.store()->Flush();
}

Status ReadArchive(Repository& repo, const ArchiveIndex& index, const std::string& timeline, uint64_t after,
                   const std::function<bool(wal::Record&&)>& fn) {
  auto path = HistoryPath(index, timeline);
  if (!path.ok()) return path.status();
  uint64_t next = after + 1;
  for (;;) {
    // The segment holding `next` on the path, the target timeline first.
    const ArchivedSegment* found = nullptr;
    uint64_t upper = 0;
    bool later = false;  // some segment on the path starts after next: a hole, not the end
    for (const auto& step : path.value()) {
      if (next > step.upper) continue;
      for (const auto& s : index.segments) {
        if (s.timeline != step.timeline) continue;
        if (s.first <= next && next <= s.last && !found) {
          found = &s;
          upper = step.upper;
        }
        if (s.first > next && s.first <= step.upper) later = true;
      }
      if (found) break;
    }
    if (!found) {
      if (later) {
        return Status::NotFound("the log archive in " + repo.url() + " has no record " + std::to_string(next) +
                                " on timeline " + timeline + "'s history (a gap: the log was trimmed before it "
                                "was archived); restore to a time before it, or from a backup taken after it");
      }
      return Status::OK();
    }
    std::string stored;
    LEVEE_RETURN_IF_ERROR(repo.store()->Get(found->key, &stored));
    auto plain = DecodeObject(stored, repo.key(), "archived log segment " + found->key);
    if (!plain.ok()) return plain.status();
    bool stop = false;
    uint64_t delivered = next - 1;
    wal::ScanResult scan;
    LEVEE_RETURN_IF_ERROR(wal::ScanSegmentBytes(
        plain.value(), "archived log segment " + found->key, next - 1, /*allow_torn_tail=*/false,
        [&](wal::Record&& r) {
          if (r.sequence > upper) return false;
          delivered = r.sequence;
          if (!fn(std::move(r))) {
            stop = true;
            return false;
          }
          return true;
        },
        &scan));
    if (stop) return Status::OK();
    if (delivered < next) {
      return Status::Corruption("archived log segment " + found->key + " does not hold the records its name says");
    }
    // Past this step's share of the history the loop above moves on to the
    // next timeline of the path.
    next = delivered + 1;
  }
}

StatusOr<PointInTimeResult> ApplyArchive(Repository& repo, const Manifest& base, const std::string& wal_dir,
                                         const PointInTimeOptions& options) {
  ArchiveIndex index;
  LEVEE_RETURN_IF_ERROR(LoadArchiveIndex(repo, &index));
  PointInTimeResult result;
  result.timeline = options.timeline.empty() ? index.Latest() : options.timeline;
  result.base_sequence = base.applied_sequence;
  result.last_sequence = base.applied_sequence;
  if (result.timeline.empty()) {
    return Status::NotFound("backup repository " + repo.url() +
                            " has no log archive (set backup-wal-archive: yes on the server that backs up to it)");
  }
  if (!index.timelines.count(result.timeline)) {
    return Status::NotFound("the log archive in " + repo.url() + " has no timeline " + result.timeline +
                            " (`levee backup archive` lists them)");
  }
  // Replace the restored log (it may run past the base's barrier) with
  // exactly the chosen records, streamed into one segment.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(wal_dir, ec)) fs::remove(e.path(), ec);
  if (ec) return Status::IOError("cannot clear " + wal_dir + ": " + ec.message());
  std::string path = wal_dir + "/" + wal::SegmentFileName(base.applied_sequence + 1);
  int fd = -1;
  struct Closer {
    int* fd;
    ~Closer() {
      if (*fd >= 0) ::close(*fd);
    }
  } closer{&fd};
  std::string buffer;
  Status io;
  auto flush = [&]() {
    if (buffer.empty() || !io.ok()) return;
    if (fd < 0) {
      fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) {
        io = Status::IOError("cannot create " + path + ": " + std::strerror(errno));
        return;
      }
    }
    if (int err = WriteAll(fd, buffer); err != 0) {
      io = Status::IOError("cannot write " + path + ": " + std::strerror(err));
      return;
    }
    buffer.clear();
  };
  Status st = ReadArchive(repo, index, result.timeline, base.applied_sequence, [&](wal::Record&& r) {
    if (r.time_ms > options.target_ms) {
      result.next_time_ms = r.time_ms;
      return false;
    }
    if (result.records == 0) buffer = wal::SegmentHeader(base.applied_sequence + 1);
    wal::AppendFramed(r, &buffer);
    result.records++;
    result.last_sequence = r.sequence;
    result.last_time_ms = r.time_ms;
    if (buffer.size() >= (4u << 20)) flush();
    return io.ok();
  });
  flush();
  LEVEE_RETURN_IF_ERROR(st);
  LEVEE_RETURN_IF_ERROR(io);
  if (fd >= 0 && ::fsync(fd) != 0) return Status::IOError("cannot sync " + path + ": " + std::strerror(errno));
  return result;
}

}  // namespace levee::backup
