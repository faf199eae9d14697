#include "backup/source.h"

#include <fcntl.h>
#include <leveldb/db.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "backup/ops.h"
#include "common/coding.h"
#include "common/file.h"
#include "storage/checkpoint.h"
#include "storage/digest.h"
#include "storage/engine.h"
#include "wal/log.h"

namespace levee::backup {
namespace fs = std::filesystem;

namespace {
constexpr const char* kHoldDir = "backup-holds";

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}
}  // namespace

void RemoveStaleHolds(const std::string& data_dir) {
  std::error_code ec;
  fs::remove_all(fs::path(data_dir) / kHoldDir, ec);
}

StatusOr<std::unique_ptr<CheckpointLease>> CheckpointLease::Take(storage::Engine* engine, wal::Log* log,
                                                                 const std::string& data_dir,
                                                                 const std::string& instance_id,
                                                                 const RunOnWriter& run_on_writer, bool digest,
                                                                 uint64_t digest_bytes_per_sec,
                                                                 std::string description) {
  if (sodium_init() < 0) return Status::IOError("libsodium failed to initialise");
  std::unique_ptr<CheckpointLease> lease(new CheckpointLease());
  unsigned char rnd[8];
  randombytes_buf(rnd, sizeof(rnd));
  lease->id_ = HexEncode(std::string_view(reinterpret_cast<char*>(rnd), sizeof(rnd)));
  lease->description_ = std::move(description);
  std::error_code ec;
  fs::path abs = fs::absolute(data_dir, ec);
  lease->info_.data_dir = abs.lexically_normal().string();
  lease->info_.instance_id = instance_id;
  lease->hold_dir_ = (fs::path(kHoldDir) / lease->id_).string();
  fs::create_directories(abs / lease->hold_dir_, ec);
  if (ec) return Status::IOError("cannot create " + (abs / lease->hold_dir_).string() + " for a backup: " + ec.message());

  Status st;
  const leveldb::Snapshot* snapshot = nullptr;
  auto barrier = [&] {
    auto t0 = std::chrono::steady_clock::now();
    auto cp = engine->TakeCheckpoint();
    if (!cp.ok()) {
      st = cp.status();
      return;
    }
    lease->checkpoint_ = std::move(cp.value());
    // The log's segments, linked so a trim can't take them; each is cut at
    // its size now (the writer is between groups: a record boundary).
    if (log != nullptr) {
      for (const auto& seg : log->Segments()) {
        std::string name = fs::path(seg.path).filename().string();
        std::string link = (fs::path(lease->hold_dir_) / name).string();
        if (::link(seg.path.c_str(), (abs / link).c_str()) != 0) {
          st = Status::IOError("cannot hard-link log segment " + seg.path + " for a backup: " + std::strerror(errno));
          return;
        }
        struct stat s;
        if (::stat((abs / link).c_str(), &s) != 0) continue;
        lease->info_.files.push_back(SourceFile{"wal/" + name, static_cast<uint64_t>(s.st_size), MtimeNs(s), link});
      }
    }
    lease->info_.applied_sequence = engine->applied_sequence();
    if (digest) snapshot = engine->raw()->GetSnapshot();
    lease->info_.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    lease->info_.barrier_us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
  };
  if (run_on_writer) {
    run_on_writer(barrier);
  } else {
    barrier();
  }
  LEVEE_RETURN_IF_ERROR(st);
  std::vector<SourceFile> db_files;
  for (const auto& f : lease->checkpoint_->files()) {
    struct stat s;
    std::string rel = "db/" + f.name;
    int64_t mtime = ::stat((abs / rel).c_str(), &s) == 0 ? MtimeNs(s) : 0;
    db_files.push_back(SourceFile{rel, f.size, mtime, rel});
  }
  lease->info_.files.insert(lease->info_.files.begin(), db_files.begin(), db_files.end());

  if (snapshot != nullptr) {
    lease->digest_done_ = false;
    CheckpointLease* l = lease.get();
    int64_t at = lease->info_.time_ms;
    lease->digest_thread_ = std::thread([l, engine, snapshot, at, digest_bytes_per_sec] {
      LowerThreadPriority();  // a full read of the data: behind the foreground, and paced
      RateLimiter limiter(digest_bytes_per_sec);
      leveldb::ReadOptions ro;
      ro.snapshot = snapshot;
      ro.fill_cache = false;
      ro.verify_checksums = true;
      std::unique_ptr<leveldb::Iterator> it(engine->raw()->NewIterator(ro));
      auto d = storage::DigestData(it.get(), engine->blobs(), at, &l->cancel_, [&](uint64_t n) { limiter.Take(n); });
      it.reset();
      engine->raw()->ReleaseSnapshot(snapshot);
      std::lock_guard<std::mutex> g(l->mu_);
      l->digest_done_ = true;
      if (d.ok()) {
        l->digest_ = d.value();
      } else {
        l->digest_status_ = d.status();
      }
      l->cv_.notify_all();
    });
  }
  return lease;
}

CheckpointLease::~CheckpointLease() {
  cancel_ = true;
  if (digest_thread_.joinable()) digest_thread_.join();
  checkpoint_.reset();
  std::error_code ec;
  if (!hold_dir_.empty()) fs::remove_all(fs::path(info_.data_dir) / hold_dir_, ec);
}

Status CheckpointLease::Read(const std::string& path, uint64_t offset, size_t n, std::string* out) {
  const SourceFile* f = nullptr;
  for (const auto& x : info_.files) {
    if (x.path == path) f = &x;
  }
  if (f == nullptr) return Status::NotFound("file " + path + " is not part of this checkpoint");
  if (offset + n > f->size) return Status::InvalidArgument("read past the checkpoint's end of " + path);
  Status st = ReadFileAt((fs::path(info_.data_dir) / f->local_path).string(), offset, n, out);
  if (!st.ok()) return Status::IOError(st.message() + " (reading a checkpoint for a backup)");
  return Status::OK();
}

StatusOr<std::string> CheckpointLease::Digest() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [this] { return digest_done_; });
  if (!digest_status_.ok()) return digest_status_;
  return digest_;
}

bool CheckpointLease::DigestReady(std::string* digest, Status* st) {
  std::lock_guard<std::mutex> l(mu_);
  if (!digest_done_) return false;
  *digest = digest_;
  *st = digest_status_;
  return true;
}

}  // namespace levee::backup
