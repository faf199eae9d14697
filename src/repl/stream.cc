#include "repl/stream.h"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>

#include "common/coding.h"

namespace levee::repl {

void AppendBlock(BlockType type, std::string_view payload, std::string* out) {
  out->push_back(static_cast<char>(type));
  PutFixed32(out, static_cast<uint32_t>(payload.size()));
  PutFixed32(out, Crc32(payload));
  out->append(payload);
}

void AppendRecordsBlock(std::string_view frames, int zstd_level, std::string* out) {
  if (zstd_level > 0 && frames.size() >= 512) {
    std::string z;
    PutFixed32(&z, static_cast<uint32_t>(frames.size()));
    size_t bound = ZSTD_compressBound(frames.size());
    z.resize(4 + bound);
    size_t n = ZSTD_compress(z.data() + 4, bound, frames.data(), frames.size(), zstd_level);
    if (!ZSTD_isError(n) && 4 + n < frames.size() - frames.size() / 8) {
      z.resize(4 + n);
      AppendBlock(BlockType::kRecordsZstd, z, out);
      return;
    }
  }
  AppendBlock(BlockType::kRecords, frames, out);
}

bool ParseBlockHeader(const char* p, BlockType* type, uint32_t* len, uint32_t* crc) {
  uint8_t t = static_cast<uint8_t>(p[0]);
  if (t < 1 || t > 6) return false;
  *type = static_cast<BlockType>(t);
  *len = DecodeFixed32(p + 1);
  *crc = DecodeFixed32(p + 5);
  return *len <= kMaxBlockSize;
}

Status OpenRecordsBlock(BlockType type, std::string_view payload, uint32_t crc, std::string* frames) {
  if (Crc32(payload) != crc) return Status::Corruption("replication block fails its checksum");
  if (type == BlockType::kRecords) {
    frames->assign(payload);
    return Status::OK();
  }
  if (payload.size() < 4) return Status::Corruption("compressed replication block too short");
  uint32_t raw = DecodeFixed32(payload.data());
  if (raw > kMaxBlockSize * 4) return Status::Corruption("compressed replication block claims " + std::to_string(raw) + " bytes");
  frames->resize(raw);
  size_t n = ZSTD_decompress(frames->data(), raw, payload.data() + 4, payload.size() - 4);
  if (ZSTD_isError(n) || n != raw) {
    return Status::Corruption(std::string("replication block does not decompress: ") +
                              (ZSTD_isError(n) ? ZSTD_getErrorName(n) : "wrong length"));
  }
  return Status::OK();
}

std::string EncodeManifest(const SyncManifest& m) {
  std::string out;
  PutLengthPrefixed(&out, m.instance_id);
  PutFixed64(&out, m.sequence);
  PutVarint64(&out, m.files.size());
  for (const auto& f : m.files) {
    PutLengthPrefixed(&out, f.name);
    PutFixed64(&out, f.size);
  }
  return out;
}

bool DecodeManifest(std::string_view in, SyncManifest* m) {
  std::string_view id;
  uint64_t n;
  if (!GetLengthPrefixed(&in, &id) || !GetFixed64(&in, &m->sequence) || !GetVarint64(&in, &n)) return false;
  if (n > in.size()) return false;
  m->instance_id.assign(id);
  m->files.clear();
  for (uint64_t i = 0; i < n; i++) {
    std::string_view name;
    SyncFile f;
    if (!GetLengthPrefixed(&in, &name) || !GetFixed64(&in, &f.size)) return false;
    f.name.assign(name);
    // Only plain names inside the database directory.
    if (f.name.empty() || f.name.find('/') != std::string::npos || f.name[0] == '.') return false;
    m->files.push_back(std::move(f));
  }
  return in.empty();
}

Status DecodeFrames(std::string_view in, uint64_t* next, std::vector<wal::Record>* out) {
  while (!in.empty()) {
    if (in.size() < wal::kFrameHeaderSize) return Status::Corruption("truncated record frame in the stream");
    uint32_t len = DecodeFixed32(in.data());
    uint32_t crc = DecodeFixed32(in.data() + 4);
    if (len > in.size() - wal::kFrameHeaderSize) return Status::Corruption("truncated record in the stream");
    std::string_view payload = in.substr(wal::kFrameHeaderSize, len);
    if (Crc32(payload) != crc) return Status::Corruption("a streamed record fails its checksum");
    wal::Record rec;
    if (!wal::DecodePayload(payload, &rec)) return Status::Corruption("a streamed record does not decode");
    if (rec.sequence != *next) {
      return Status::Corruption("stream carried sequence " + std::to_string(rec.sequence) + " where " +
                                std::to_string(*next) + " was expected");
    }
    ++*next;
    out->push_back(std::move(rec));
    in.remove_prefix(wal::kFrameHeaderSize + len);
  }
  return Status::OK();
}

}  // namespace levee::repl
