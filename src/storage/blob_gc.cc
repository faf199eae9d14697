#include "storage/blob_gc.h"

#include <leveldb/db.h>
#include <leveldb/write_batch.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/logging.h"
#include "storage/engine.h"

namespace levee::storage {
namespace {

// Whether LevelDB's current value for key is the record at (file, offset).
bool References(leveldb::DB* db, std::string_view key, uint64_t file, uint64_t offset, std::string* raw) {
  leveldb::ReadOptions ro = VerifiedReads();
  ro.fill_cache = false;
  if (!db->Get(ro, DataKey(key), raw).ok()) return false;
  StoredValue v;
  return DecodeValue(*raw, &v) && v.in_blob && v.blob.file == file && v.blob.offset == offset;
}

struct Live {
  std::string key, value;
  uint64_t offset;
};

}  // namespace

BlobCollector::BlobCollector(Engine* engine, RunOnWriter run_on_writer)
    : engine_(engine), run_on_writer_(std::move(run_on_writer)) {}

BlobCollector::~BlobCollector() { Stop(); }

void BlobCollector::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "levee-blob-gc");
    // Surveys and copies are background work: behind the foreground.
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 10);
    Run();
  });
}

void BlobCollector::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (!thread_.joinable()) return;
  thread_.join();
  SaveEstimates();
}

void BlobCollector::SaveEstimates() {
  Status st = engine_->blobs()->SaveEstimates();
  if (!st.ok()) logging::Warn("blob", "could not save blob garbage estimates; will retry", {{"error", st.ToString()}});
}

void BlobCollector::Run() {
  std::unique_lock<std::mutex> l(mu_);
  auto saved = std::chrono::steady_clock::now();
  while (!stop_) {
    cv_.wait_for(l, std::chrono::seconds(1), [this] { return stop_; });
    if (stop_) break;
    l.unlock();
    Status st = RunPass();
    if (!st.ok()) {
      stats_.errors++;
      logging::Warn("blob", "blob file collection failed; will retry", {{"error", st.ToString()}});
    }
    if (std::chrono::steady_clock::now() - saved >= kSaveEvery) {
      SaveEstimates();
      saved = std::chrono::steady_clock::now();
    }
    l.lock();
  }
}

Status BlobCollector::RunPass() {
  std::lock_guard<std::mutex> l(pass_mu_);
  return Pass();
}

Status BlobCollector::Pass() {
  // One unit of work per pass: survey the oldest unsurveyed file, else
  // collect the sealed file with the largest dead share past the ratio.
  const double ratio = ratio_.load();
  uint64_t best = 0, best_bytes = 0;
  double best_share = -1;
  for (const auto& f : engine_->blobs()->Files()) {
    if (f.active) continue;
    if (!f.surveyed) return Survey(f.number);
    double share = f.bytes == 0 ? 1.0 : static_cast<double>(f.garbage) / static_cast<double>(f.bytes);
    if (share >= ratio && share > best_share) {
      best = f.number;
      best_bytes = f.bytes;
      best_share = share;
    }
  }
  if (best_share < 0) return Status::OK();
  return Collect(best, best_bytes);
}

Status BlobCollector::Survey(uint64_t file) {
  uint64_t live = 0, end = 0;
  std::string raw;
  Status st = engine_->blobs()->ScanFile(
      file,
      [&](uint64_t offset, std::string_view key, std::string_view value) {
        if (References(engine_->raw(), key, file, offset, &raw)) live += BlobFiles::RecordSize(key.size(), value.size());
        return !stop_requested();
      },
      &end);
  if (st.code() == Status::Code::kNotFound) return Status::OK();
  LEVEE_RETURN_IF_ERROR(st);
  engine_->blobs()->SetGarbage(file, end > live ? end - live : 0);
  // A torn tail (a crash mid-append) is dead space too: SetGarbage caps at
  // the file's size, which counts it.
  stats_.surveys++;
  return Status::OK();
}

Status BlobCollector::Collect(uint64_t file, uint64_t bytes) {
  constexpr size_t kBatchBytes = 4 << 20;
  BlobFiles* blobs = engine_->blobs();
  leveldb::DB* db = engine_->raw();
  std::vector<Live> batch;
  size_t batch_bytes = 0;
  Status failed;
  uint64_t relocated = 0;
  // Moves the batch's records that are still referenced; on the writer
  // thread, so no write can slip between the check and the move.
  auto flush = [&]() {
    if (batch.empty() || !failed.ok()) return;
    run_on_writer_([&] {
      leveldb::WriteBatch wb;
      std::string raw;
      for (auto& r : batch) {
        if (!References(db, r.key, file, r.offset, &raw)) continue;  // overwritten since the scan
        const size_t size = r.value.size();
        auto ref = blobs->Move(BlobRef{file, r.offset, static_cast<uint32_t>(size)}, r.key, std::move(r.value));
        if (!ref.ok()) {
          failed = ref.status();
          return;
        }
        wb.Put(DataKey(r.key), EncodeBlobValue(raw, ref.value()));
        relocated += size;
      }
      Status s = engine_->WriteUnsequenced(&wb, /*sync=*/false);
      if (!s.ok()) failed = s;
    });
    batch.clear();
    batch_bytes = 0;
  };
  std::string raw;
  Status st = blobs->ScanFile(file, [&](uint64_t offset, std::string_view key, std::string_view value) {
    if (stop_requested()) return false;
    if (!References(db, key, file, offset, &raw)) return true;  // dead
    batch.push_back(Live{std::string(key), std::string(value), offset});
    batch_bytes += key.size() + value.size();
    if (batch_bytes >= kBatchBytes) flush();
    return failed.ok();
  });
  if (st.code() == Status::Code::kNotFound) return Status::OK();
  LEVEE_RETURN_IF_ERROR(st);
  flush();
  LEVEE_RETURN_IF_ERROR(failed);
  if (stop_requested()) return Status::OK();  // the file stays; the next start surveys it again
  // The copies and their references must be durable before the file goes.
  run_on_writer_([&] {
    failed = blobs->Sync();
    if (!failed.ok()) return;
    leveldb::WriteBatch wb;
    wb.Put(MetaKey("blob-gc"), std::to_string(file));
    failed = engine_->WriteUnsequenced(&wb, /*sync=*/true);
  });
  LEVEE_RETURN_IF_ERROR(failed);
  // An iterator opened before the move can still read the old references.
  const uint64_t epoch = engine_->iterator_epoch();
  while (engine_->oldest_iterator() <= epoch) {
    std::unique_lock<std::mutex> l(mu_);
    if (cv_.wait_for(l, std::chrono::milliseconds(50), [this] { return stop_; })) return Status::OK();
  }
  LEVEE_RETURN_IF_ERROR(blobs->Remove(file));
  stats_.files_removed++;
  stats_.bytes_reclaimed += bytes;
  stats_.bytes_relocated += relocated;
  logging::Info("blob", "blob file collected",
                {{"file", BlobFileName(file)}, {"bytes", bytes}, {"relocated_bytes", relocated}});
  return Status::OK();
}

}  // namespace levee::storage
