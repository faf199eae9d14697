#include "wal/record.h"

#include "common/coding.h"

namespace levee::wal {

void AppendFramed(const Record& record, std::string* out) {
  size_t start = out->size();
  out->append(kFrameHeaderSize, '\0');
  PutFixed64(out, record.sequence);
  PutFixed64(out, static_cast<uint64_t>(record.time_ms));
  PutVarint64(out, record.mutations.size());
  for (const Mutation& m : record.mutations) {
    out->push_back(static_cast<char>(m.kind));
    PutLengthPrefixed(out, m.key);
    if (m.kind == Mutation::Kind::kPut || m.kind == Mutation::Kind::kPublish) PutLengthPrefixed(out, m.value);
  }
  std::string_view payload(out->data() + start + kFrameHeaderSize, out->size() - start - kFrameHeaderSize);
  std::string header;
  PutFixed32(&header, static_cast<uint32_t>(payload.size()));
  PutFixed32(&header, Crc32(payload));
  out->replace(start, kFrameHeaderSize, header);
}

bool DecodePayload(std::string_view in, Record* record) {
  uint64_t seq, t, n;
  if (!GetFixed64(&in, &seq) || !GetFixed64(&in, &t) || !GetVarint64(&in, &n)) return false;
  if (n > in.size()) return false;  // each mutation takes at least one byte
  record->sequence = seq;
  record->time_ms = static_cast<int64_t>(t);
  record->mutations.clear();
  record->mutations.reserve(n);
  for (uint64_t i = 0; i < n; i++) {
    if (in.empty()) return false;
    Mutation m;
    m.kind = static_cast<Mutation::Kind>(in[0]);
    in.remove_prefix(1);
    std::string_view key, value;
    if (!GetLengthPrefixed(&in, &key)) return false;
    m.key.assign(key);
    switch (m.kind) {
      case Mutation::Kind::kPut:
      case Mutation::Kind::kPublish:
        if (!GetLengthPrefixed(&in, &value)) return false;
        m.value.assign(value);
        break;
      case Mutation::Kind::kDelete:
      case Mutation::Kind::kFlushAll:
        break;
      default:
        return false;
    }
    record->mutations.push_back(std::move(m));
  }
  return in.empty();
}

}  // namespace levee::wal
