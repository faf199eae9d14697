#include "backup/ops.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "backup/archive.h"
#include "common/file.h"
#include "common/version.h"
#include "storage/digest.h"
#include "storage/encoding.h"

namespace levee::backup {
namespace fs = std::filesystem;

namespace {

// Runs fn(0..n-1) on `threads` threads; stops handing out work at the first
// error (returned) or when *cancel is set.
Status RunParallel(size_t n, int threads, const std::atomic<bool>* cancel, const std::function<Status(size_t)>& fn,
                   bool background = false) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first;
  auto worker = [&] {
    if (background) LowerThreadPriority();
    for (;;) {
      if (failed.load() || (cancel != nullptr && cancel->load())) return;
      size_t i = next.fetch_add(1);
      if (i >= n) return;
      Status st = fn(i);
      if (!st.ok()) {
        std::lock_guard<std::mutex> l(mu);
        if (first.ok()) first = st;
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  int k = std::max(1, std::min<int>(threads, static_cast<int>(std::max<size_t>(n, 1))));
  for (int i = background ? 0 : 1; i < k; i++) pool.emplace_back(worker);
  if (!background) worker();
  for (auto& t : pool) t.join();
  if (!first.ok()) return first;
  if (cancel != nullptr && cancel->load()) return Status::IOError("cancelled");
  return Status::OK();
}

// Table files are compressed by LevelDB already (snappy).
Compression CompressionFor(const std::string& path) {
  auto ends = [&](const char* s) {
    size_t n = std::strlen(s);
    return path.size() >= n && path.compare(path.size() - n, n, s) == 0;
  };
  return ends(".ldb") || ends(".sst") ? Compression::kNever : Compression::kIfSmaller;
}

constexpr uint64_t kGrowingChunk = 4ull << 20;

struct ChunkTask {
  size_t file;
  size_t index;
  uint64_t offset, size;
};

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

StatusOr<Manifest> CreateBackup(Repository& repo, Source& source, const CreateOptions& o) {
  int64_t t0 = SteadyMs();
  auto lock = repo.Lock(false, o.lock_wait_ms, "backup create");
  if (!lock.ok()) return lock.status();
  const SourceInfo& info = source.info();

  // The newest backup of this data directory: files unchanged since are
  // taken from it without reading them.
  std::map<std::string, const FileEntry*> previous;
  std::vector<Manifest> manifests;
  LEVEE_RETURN_IF_ERROR(repo.ListManifests(&manifests));
  for (auto it = manifests.rbegin(); it != manifests.rend(); ++it) {
    if (it->instance_id != info.instance_id || info.instance_id.empty()) continue;
    for (const auto& f : it->files) previous[f.path] = &f;
    break;
  }

  Manifest m;
  m.time_ms = info.time_ms;
  m.id = NewBackupId(info.time_ms);
  m.levee_version = kVersion;
  m.source = source.description();
  m.instance_id = info.instance_id;
  m.applied_sequence = info.applied_sequence;
  m.barrier_us = info.barrier_us;
  // Files that grow (LevelDB's log and MANIFEST, blob files, the newest log
  // segment) are cut in small pieces at fixed offsets: their start does not
  // change, so the next backup uploads only the pieces past the old end.
  std::string newest_wal;
  for (const auto& f : info.files) {
    if (f.path.rfind("wal/", 0) == 0) newest_wal = std::max(newest_wal, f.path);
  }
  auto growing = [&](const std::string& p) {
    return p == newest_wal || p.rfind("db/MANIFEST-", 0) == 0 ||
           (p.rfind("db/", 0) == 0 && (p.ends_with(".log") || p.ends_with(".blob")));
  };
  std::vector<ChunkTask> tasks;
  size_t files_to_read = 0;
  for (const auto& f : info.files) {
    FileEntry e;
    e.path = f.path;
    e.size = f.size;
    e.mtime_ns = f.mtime_ns;
    m.bytes += f.size;
    auto p = previous.find(f.path);
    if (p != previous.end() && f.mtime_ns != 0 && p->second->size == f.size && p->second->mtime_ns == f.mtime_ns) {
      e.chunks = p->second->chunks;
    } else {
      uint64_t chunk = std::max<uint64_t>(o.chunk_bytes, 1);
      if (growing(f.path)) chunk = std::min<uint64_t>(chunk, kGrowingChunk);
      if (f.size > 0) files_to_read++;
      for (uint64_t off = 0; off < f.size; off += chunk) {
        tasks.push_back(ChunkTask{m.files.size(), e.chunks.size(), off, std::min(chunk, f.size - off)});
        e.chunks.push_back(ChunkRef{"", tasks.back().size});
        m.read_bytes += tasks.back().size;
      }
    }
    m.files.push_back(std::move(e));
  }
  if (o.progress) o.progress->SetTotal(m.read_bytes, files_to_read);

  RateLimiter limiter(o.max_bytes_per_sec);
  std::mutex mu;
  std::set<std::string> known;  // objects this run found or put
  std::atomic<uint64_t> new_bytes{0}, new_stored{0};
  Status st = RunParallel(tasks.size(), o.parallelism, o.cancel, [&](size_t i) -> Status {
    const ChunkTask& t = tasks[i];
    const std::string& path = m.files[t.file].path;
    limiter.Take(t.size);
    std::string plain;
    LEVEE_RETURN_IF_ERROR(source.Read(path, t.offset, t.size, &plain));
    std::string id = ContentId(plain, repo.key());
    bool have;
    {
      std::lock_guard<std::mutex> l(mu);
      have = known.count(id) > 0;
    }
    if (!have) {
      auto exists = repo.HasObject(id);
      if (!exists.ok()) return exists.status();
      if (!exists.value()) {
        std::string stored = EncodeObject(plain, CompressionFor(path), repo.key());
        LEVEE_RETURN_IF_ERROR(repo.PutObject(id, stored));
        new_bytes += plain.size();
        new_stored += stored.size();
      }
      std::lock_guard<std::mutex> l(mu);
      known.insert(id);
    }
    m.files[t.file].chunks[t.index].id = id;  // each task owns its slot
    if (o.progress) o.progress->Add(t.size, t.offset + t.size == m.files[t.file].size ? 1 : 0);
    return Status::OK();
  }, o.background);
  LEVEE_RETURN_IF_ERROR(st);
  // Every object durable before the manifest that names them.
  LEVEE_RETURN_IF_ERROR(repo.store()->Flush());
  auto digest = source.Digest();
  if (!digest.ok()) return Status::IOError("computing the digest at the backup's barrier: " + digest.status().message());
  m.digest = digest.value();
  m.digest_time_ms = info.time_ms;
  m.new_bytes = new_bytes;
  m.new_stored_bytes = new_stored;
  m.duration_ms = SteadyMs() - t0;
  LEVEE_RETURN_IF_ERROR(repo.WriteManifest(m));
  return m;
}

StatusOr<Manifest> RestoreBackup(Repository& repo, const std::string& id, const std::string& data_dir,
                                 const TransferOptions& o, const RestoreHook& before_commit) {
  auto found = repo.FindManifest(id);
  if (!found.ok()) return found.status();
  Manifest m = std::move(found.value());
  std::error_code ec;
  fs::path dir(data_dir);
  for (const char* sub : {"db", "wal"}) {
    if (fs::exists(dir / sub, ec)) {
      return Status::InvalidArgument("data directory " + data_dir + " already holds a database (" + sub +
                                     "/); restore into an empty or new directory");
    }
  }
  fs::path staging = dir / (".restore-" + m.id);
  fs::remove_all(staging, ec);
  fs::create_directories(staging / "db", ec);
  if (!ec) fs::create_directories(staging / "wal", ec);
  if (ec) return Status::IOError("cannot create " + staging.string() + " to restore into: " + ec.message());
  struct Cleanup {
    fs::path p;
    bool keep = false;
    ~Cleanup() {
      std::error_code e;
      if (!keep) fs::remove_all(p, e);
    }
  } cleanup{staging};

  // Every file is created at its size; chunks are written at their offsets.
  std::vector<int> fds;
  struct CloseAll {
    std::vector<int>* fds;
    ~CloseAll() {
      for (int fd : *fds) ::close(fd);
    }
  } close_all{&fds};
  std::vector<ChunkTask> tasks;
  uint64_t total = 0;
  for (size_t i = 0; i < m.files.size(); i++) {
    const FileEntry& f = m.files[i];
    fs::path p = staging / f.path;
    fs::create_directories(p.parent_path(), ec);
    // Direct I/O: restored bytes skip the page cache (a copy per byte, and
    // the memory of a restore larger than RAM).
    int fd = OpenForWrite(p.string(), o.direct_io);
    if (fd < 0) return Status::IOError("cannot create " + p.string() + ": " + std::strerror(errno));
    fds.push_back(fd);
    uint64_t off = 0;
    for (size_t c = 0; c < f.chunks.size(); c++) {
      tasks.push_back(ChunkTask{i, c, off, f.chunks[c].size});
      off += f.chunks[c].size;
    }
    total += f.size;
  }
  if (o.progress) o.progress->SetTotal(total, m.files.size());
  RateLimiter limiter(o.max_bytes_per_sec);
  Status st = RunParallel(tasks.size(), o.parallelism, o.cancel, [&](size_t i) -> Status {
    const ChunkTask& t = tasks[i];
    const FileEntry& f = m.files[t.file];
    const ChunkRef& c = f.chunks[t.index];
    limiter.Take(c.size);
    auto plain = repo.ReadObject(c.id);
    if (!plain.ok()) return Status(plain.status()).code() == Status::Code::kInvalidArgument
                                ? plain.status()
                                : Status::Corruption("cannot restore " + f.path + ": " + plain.status().message());
    if (plain.value().size() != c.size) {
      return Status::Corruption("cannot restore " + f.path + ": object " + c.id + " holds " +
                                std::to_string(plain.value().size()) + " bytes, the manifest says " + std::to_string(c.size));
    }
    const std::string& data = plain.value();
    if (int err = WriteMaybeDirect(fds[t.file], data, t.offset); err != 0) {
      std::string why = err == ENOSPC ? "no space left on the device" : std::strerror(err);
      return Status::IOError("cannot write " + (staging / f.path).string() + ": " + why);
    }
    // Start writing it out now: the disk works while the next objects come
    // in, and a restore larger than memory never piles up dirty pages.
    ::sync_file_range(fds[t.file], static_cast<off_t>(t.offset), static_cast<off_t>(data.size()),
                      SYNC_FILE_RANGE_WRITE);
    if (o.progress) o.progress->Add(c.size, t.index + 1 == f.chunks.size() ? 1 : 0);
    return Status::OK();
  }, o.background);
  LEVEE_RETURN_IF_ERROR(st);
  for (size_t i = 0; i < fds.size(); i++) {
    if (::ftruncate(fds[i], static_cast<off_t>(m.files[i].size)) != 0) {
      return Status::IOError("cannot size " + (staging / m.files[i].path).string() + ": " + std::strerror(errno));
    }
  }
  // One sync of the file system for all the files (one fsync each, in
  // turn, took as long as the download), reporting any write-back error.
  if (!fds.empty() && ::syncfs(fds[0]) != 0) {
    return Status::IOError("cannot sync the restored files in " + staging.string() + ": " + std::strerror(errno));
  }
  if (before_commit) LEVEE_RETURN_IF_ERROR(before_commit(staging.string(), m));
  for (const char* sub : {"db", "wal"}) {
    fs::rename(staging / sub, dir / sub, ec);
    if (ec) return Status::IOError("cannot move the restored " + std::string(sub) + "/ into " + data_dir + ": " + ec.message());
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return m;
}

StatusOr<VerifyReport> VerifyBackup(Repository& repo, const std::string& id, const VerifyOptions& o) {
  auto found = repo.FindManifest(id);
  if (!found.ok()) return found.status();
  VerifyReport r;
  r.manifest = std::move(found.value());
  r.deep = o.deep;
  // Each distinct object once, named by the first file that uses it.
  std::map<std::string, std::pair<uint64_t, std::string>> objects;
  for (const auto& f : r.manifest.files) {
    uint64_t off = 0;
    for (const auto& c : f.chunks) {
      objects.emplace(c.id, std::make_pair(c.size, f.path + " at offset " + std::to_string(off)));
      off += c.size;
    }
  }
  std::vector<std::pair<std::string, std::pair<uint64_t, std::string>>> list(objects.begin(), objects.end());
  uint64_t total = 0;
  for (const auto& x : list) total += x.second.first;
  if (o.progress) o.progress->SetTotal(total, list.size());
  std::mutex mu;
  RateLimiter limiter(o.max_bytes_per_sec);
  Status st = RunParallel(list.size(), o.parallelism, o.cancel, [&](size_t i) -> Status {
    const auto& [oid, where] = list[i];
    limiter.Take(where.first);
    auto plain = repo.ReadObject(oid);
    std::string problem;
    if (!plain.ok()) {
      if (plain.status().code() == Status::Code::kInvalidArgument) return plain.status();  // the wrong key: not per object
      problem = plain.status().message();
    } else if (plain.value().size() != where.first) {
      problem = "object " + oid + " holds " + std::to_string(plain.value().size()) + " bytes, the manifest says " +
                std::to_string(where.first);
    }
    std::lock_guard<std::mutex> l(mu);
    if (!problem.empty()) r.problems.push_back(problem + " (used by " + where.second + ")");
    r.objects++;
    r.bytes += where.first;
    if (o.progress) o.progress->Add(where.first, 1);
    return Status::OK();
  }, o.background);
  LEVEE_RETURN_IF_ERROR(st);
  std::sort(r.problems.begin(), r.problems.end());
  if (!o.deep || !r.problems.empty()) return r;

  std::error_code ec;
  fs::path base = o.scratch_dir.empty() ? fs::temp_directory_path(ec) : fs::path(o.scratch_dir);
  fs::path scratch = base / ("levee-verify-" + r.manifest.id + "-" + std::to_string(::getpid()));
  fs::remove_all(scratch, ec);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(p, e);
    }
  } cleanup{scratch};
  TransferOptions ro = o;
  ro.progress = nullptr;
  auto restored = RestoreBackup(repo, r.manifest.id, scratch.string(), ro);
  if (!restored.ok()) {
    r.problems.push_back("restore into " + scratch.string() + " failed: " + restored.status().message());
    return r;
  }
  leveldb::Options lo;
  lo.paranoid_checks = true;
  lo.create_if_missing = false;
  leveldb::DB* raw = nullptr;
  leveldb::Status ls = leveldb::DB::Open(lo, (scratch / "db").string(), &raw);
  if (!ls.ok()) {
    r.problems.push_back("the restored database does not open with paranoid checks: " + ls.ToString());
    return r;
  }
  std::unique_ptr<leveldb::DB> db(raw);
  std::string meta;
  ls = db->Get(leveldb::ReadOptions(), storage::MetaKey(storage::kAppliedMetaName), &meta);
  storage::AppliedMeta am;
  if (!ls.ok() || !storage::DecodeAppliedMeta(meta, &am)) {
    if (r.manifest.applied_sequence != 0) r.problems.push_back("the restored database has no applied sequence");
  } else if (am.sequence != r.manifest.applied_sequence) {
    r.problems.push_back("the restored database is at sequence " + std::to_string(am.sequence) +
                         ", the manifest says " + std::to_string(r.manifest.applied_sequence));
  }
  leveldb::ReadOptions rd;
  rd.verify_checksums = true;
  rd.fill_cache = false;
  std::unique_ptr<leveldb::Iterator> it(db->NewIterator(rd));
  storage::BlobFiles blobs((scratch / "db").string(), nullptr);
  Status blobs_open = blobs.Open();
  if (!blobs_open.ok()) {
    r.problems.push_back(blobs_open.message());
    return r;
  }
  auto digest = storage::DigestData(it.get(), &blobs, r.manifest.digest_time_ms);
  if (!digest.ok()) {
    r.problems.push_back("reading every key of the restored database failed: " + digest.status().message());
    return r;
  }
  r.digest = digest.value();
  if (!r.manifest.digest.empty() && r.digest != r.manifest.digest) {
    r.problems.push_back("the restored data's digest " + r.digest + " differs from the one taken at backup time " +
                         r.manifest.digest);
  }
  return r;
}

namespace {
std::atomic<bool> g_background_cpu_idle{true};
}

void SetBackgroundCpuIdle(bool idle) { g_background_cpu_idle = idle; }

void LowerThreadPriority() {
  struct sched_param sp {};
  // On Linux, pid 0 here is the calling thread, not the whole process.
  ::sched_setscheduler(0, g_background_cpu_idle ? SCHED_IDLE : SCHED_OTHER, &sp);
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  // ioprio_set(IOPRIO_WHO_PROCESS, this thread, best effort class, level 7)
  ::syscall(SYS_ioprio_set, 1, ::gettid(), (2 << 13) | 7);
}

bool ParseInterval(const std::string& s, int64_t* ms) {
  if (s == "off") {
    *ms = 0;
    return true;
  }
  if (s.size() < 2) return false;
  int64_t unit;
  switch (s.back()) {
    case 's': unit = 1000; break;
    case 'm': unit = 60 * 1000; break;
    case 'h': unit = 3600 * 1000; break;
    case 'd': unit = 24 * 3600 * 1000; break;
    default: return false;
  }
  int64_t n = 0;
  for (size_t i = 0; i + 1 < s.size(); i++) {
    if (!std::isdigit(static_cast<unsigned char>(s[i])) || n > 1000000) return false;
    n = n * 10 + (s[i] - '0');
  }
  if (n <= 0) return false;
  *ms = n * unit;
  return true;
}

std::vector<bool> RetentionKeeps(const std::vector<Manifest>& ms, const PruneOptions& o) {
  std::vector<bool> keep(ms.size(), false);
  auto bucket = [](int64_t ms_time, bool weekly) {
    std::time_t t = static_cast<std::time_t>(ms_time / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof(buf), weekly ? "%G-%V" : "%Y-%m-%d", &tm);
    return std::string(buf);
  };
  int last = 0;
  std::set<std::string> days, weeks;
  for (size_t k = ms.size(); k-- > 0;) {  // newest first
    if (last < o.keep_last) {
      keep[k] = true;
      last++;
    }
    std::string d = bucket(ms[k].time_ms, false), w = bucket(ms[k].time_ms, true);
    if (static_cast<int>(days.size()) < o.keep_daily && !days.count(d)) {
      days.insert(d);
      keep[k] = true;
    }
    if (static_cast<int>(weeks.size()) < o.keep_weekly && !weeks.count(w)) {
      weeks.insert(w);
      keep[k] = true;
    }
  }
  return keep;
}

StatusOr<PruneReport> Prune(Repository& repo, const PruneOptions& o) {
  if (o.keep_last <= 0 && o.keep_daily <= 0 && o.keep_weekly <= 0) {
    return Status::InvalidArgument("prune needs a policy: give --keep-last, --keep-daily and/or --keep-weekly (at least one above 0)");
  }
  auto lock = repo.Lock(true, o.lock_wait_ms, "backup prune");
  if (!lock.ok()) return lock.status();
  PruneReport r;
  std::vector<Manifest> ms;
  LEVEE_RETURN_IF_ERROR(repo.ListManifests(&ms));
  std::vector<bool> keep = RetentionKeeps(ms, o);
  std::set<std::string> used;
  for (size_t i = 0; i < ms.size(); i++) {
    (keep[i] ? r.kept : r.removed).push_back(ms[i].id);
    if (!keep[i]) continue;
    for (const auto& f : ms[i].files) {
      for (const auto& c : f.chunks) used.insert(c.id);
    }
  }
  if (!o.dry_run) {
    for (const auto& id : r.removed) LEVEE_RETURN_IF_ERROR(repo.DeleteManifest(id));
  }
  std::map<std::string, uint64_t> objects;
  LEVEE_RETURN_IF_ERROR(repo.ListObjects(&objects));
  for (const auto& [id, size] : objects) {
    if (used.count(id)) continue;
    if (!o.dry_run) LEVEE_RETURN_IF_ERROR(repo.store()->Delete(Repository::ObjectKey(id)));
    r.objects_deleted++;
    r.bytes_freed += size;
  }
  // Archived log at or below the oldest kept backup's sequence can no
  // longer be replayed onto any backup.
  uint64_t oldest_kept = UINT64_MAX;
  for (size_t i = 0; i < ms.size(); i++) {
    if (keep[i]) oldest_kept = std::min(oldest_kept, ms[i].applied_sequence);
  }
  if (oldest_kept != UINT64_MAX && oldest_kept > 0) {
    ArchiveIndex index;
    LEVEE_RETURN_IF_ERROR(LoadArchiveIndex(repo, &index));
    for (const auto& s : index.segments) {
      if (s.last > oldest_kept) continue;
      if (!o.dry_run) LEVEE_RETURN_IF_ERROR(repo.store()->Delete(s.key));
      r.archive_segments_deleted++;
      r.bytes_freed += s.stored_bytes;
    }
  }
  if (!o.dry_run) (void)repo.RemoveStaleLocks();
  return r;
}

}  // namespace levee::backup
