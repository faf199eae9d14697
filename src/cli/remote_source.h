// RemoteSource: a checkpoint lent by a running levee (BACKUP OPEN), read
// straight from its data directory when this process can see it (same
// host or pod: the data directory's instance-id matches), else through
// BACKUP READ over as many connections as there are reader threads. A
// thread touches the lease every 20 s so the server keeps it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backup/source.h"
#include "net/resp_client.h"

namespace levee::cli {

using net::RespClient;
using net::RespValue;

class RemoteSource final : public backup::Source {
 public:
  static StatusOr<std::unique_ptr<RemoteSource>> Open(const std::string& server, const std::string& password,
                                                      bool digest, uint64_t digest_bytes_per_sec);
  ~RemoteSource() override;

  const backup::SourceInfo& info() const override { return info_; }
  Status Read(const std::string& path, uint64_t offset, size_t n, std::string* out) override;
  StatusOr<std::string> Digest() override;
  std::string description() const override { return "server " + server_; }
  bool direct() const { return direct_; }

 private:
  RemoteSource() = default;
  StatusOr<std::unique_ptr<RespClient>> Take();
  void Give(std::unique_ptr<RespClient> c);

  std::string server_, password_, lease_;
  backup::SourceInfo info_;
  bool direct_ = false;
  std::mutex mu_;
  std::vector<std::unique_ptr<RespClient>> idle_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread keepalive_;
};

}  // namespace levee::cli
