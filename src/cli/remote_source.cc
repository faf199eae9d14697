#include "cli/remote_source.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/file.h"

namespace levee::cli {
namespace fs = std::filesystem;

StatusOr<std::unique_ptr<RemoteSource>> RemoteSource::Open(const std::string& server, const std::string& password,
                                                           bool digest, uint64_t digest_bytes_per_sec) {
  std::unique_ptr<RemoteSource> s(new RemoteSource());
  s->server_ = server;
  s->password_ = password;
  auto c = RespClient::Connect(server, password);
  if (!c.ok()) return c.status();
  std::vector<std::string> cmd = {"BACKUP", "OPEN"};
  if (!digest) cmd.push_back("NODIGEST");
  if (digest && digest_bytes_per_sec > 0) {  // the server reads the data for the digest: at our rate
    cmd.push_back("MAXRATE");
    cmd.push_back(std::to_string(digest_bytes_per_sec));
  }
  auto r = c.value()->Call(cmd);
  if (!r.ok()) return r.status();
  const RespValue& v = r.value();
  if (v.is_error()) return Status::IOError("levee at " + server + " could not lend a checkpoint: " + v.str);
  if (v.type != '*' || v.elems.size() != 7) return Status::IOError("levee at " + server + " answered BACKUP OPEN oddly");
  s->lease_ = v.elems[0].str;
  s->info_.instance_id = v.elems[1].str;
  s->info_.applied_sequence = static_cast<uint64_t>(v.elems[2].integer);
  s->info_.time_ms = v.elems[3].integer;
  s->info_.barrier_us = static_cast<uint64_t>(v.elems[4].integer);
  s->info_.data_dir = v.elems[5].str;
  for (const auto& f : v.elems[6].elems) {
    if (f.elems.size() != 4) return Status::IOError("levee at " + server + " listed a checkpoint file oddly");
    s->info_.files.push_back(backup::SourceFile{f.elems[0].str, static_cast<uint64_t>(f.elems[1].integer),
                                                f.elems[2].integer, f.elems[3].str});
  }
  // The same data directory visible here: read the files directly.
  std::ifstream idf(fs::path(s->info_.data_dir) / "instance-id");
  std::string id;
  if (idf && std::getline(idf, id) && id == s->info_.instance_id) s->direct_ = true;
  s->Give(std::move(c.value()));
  RemoteSource* self = s.get();
  s->keepalive_ = std::thread([self] {
    std::unique_lock<std::mutex> l(self->mu_);
    while (!self->cv_.wait_for(l, std::chrono::seconds(20), [self] { return self->stop_; })) {
      l.unlock();
      auto c = self->Take();
      if (c.ok()) {
        auto r = c.value()->Call({"BACKUP", "DIGEST", self->lease_});
        if (r.ok()) self->Give(std::move(c.value()));
      }
      l.lock();
    }
  });
  return s;
}

RemoteSource::~RemoteSource() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (keepalive_.joinable()) keepalive_.join();
  auto c = Take();
  if (c.ok()) (void)c.value()->Call({"BACKUP", "CLOSE", lease_}, 5000);
}

StatusOr<std::unique_ptr<RespClient>> RemoteSource::Take() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  return RespClient::Connect(server_, password_);
}

void RemoteSource::Give(std::unique_ptr<RespClient> c) {
  std::lock_guard<std::mutex> l(mu_);
  idle_.push_back(std::move(c));
}

Status RemoteSource::Read(const std::string& path, uint64_t offset, size_t n, std::string* out) {
  const backup::SourceFile* f = nullptr;
  for (const auto& x : info_.files) {
    if (x.path == path) f = &x;
  }
  if (f == nullptr) return Status::NotFound(path + " is not in the checkpoint");
  if (direct_) return ReadFileAt((fs::path(info_.data_dir) / f->local_path).string(), offset, n, out);
  out->clear();
  constexpr size_t kPiece = 8 << 20;
  auto c = Take();
  if (!c.ok()) return c.status();
  for (uint64_t off = offset; off < offset + n;) {
    size_t piece = static_cast<size_t>(std::min<uint64_t>(kPiece, offset + n - off));
    auto r = c.value()->Call({"BACKUP", "READ", lease_, path, std::to_string(off), std::to_string(piece)});
    if (!r.ok()) return r.status();
    if (r.value().is_error()) return Status::IOError("levee at " + server_ + ": " + r.value().str);
    if (r.value().str.size() != piece) return Status::IOError("levee at " + server_ + " sent a short piece of " + path);
    out->append(r.value().str);
    off += piece;
  }
  Give(std::move(c.value()));
  return Status::OK();
}

StatusOr<std::string> RemoteSource::Digest() {
  for (;;) {
    auto c = Take();
    if (!c.ok()) return c.status();
    auto r = c.value()->Call({"BACKUP", "DIGEST", lease_});
    if (!r.ok()) return r.status();
    Give(std::move(c.value()));
    if (r.value().is_error()) return Status::IOError("levee at " + server_ + ": " + r.value().str);
    if (!r.value().is_nil()) return r.value().str;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace levee::cli
