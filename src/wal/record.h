// A log record: what one write command (or one EXEC, or one expiry pass) did
// to the data, as absolute facts. Replaying a record twice gives the state it
// gave once, and a replica applying the stream reaches the primary's state.
// Byte layout: docs/formats/wal.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace levee::wal {

struct Mutation {
  // On disk: never renumber.
  // kPublish changes no data: it carries a PUBLISH (key = channel, value =
  // message) so replicas deliver it to their own subscribers, as Redis
  // propagates PUBLISH. Replay skips it.
  enum class Kind : uint8_t { kPut = 1, kDelete = 2, kFlushAll = 3, kPublish = 4 };
  Kind kind = Kind::kPut;
  std::string key;
  std::string value;  // storage encoding of the value (kPut), the message (kPublish)
  bool changes_data() const { return kind != Kind::kPublish; }
};

struct Record {
  uint64_t sequence = 0;
  int64_t time_ms = 0;  // wall clock when the writer made it (point-in-time restore)
  std::vector<Mutation> mutations;
};

// Frame: fixed32 payload length, fixed32 CRC-32 of payload, payload.
inline constexpr size_t kFrameHeaderSize = 8;
// A record larger than this is refused on write and treated as corruption
// on read (it bounds what a damaged length field can make us allocate).
inline constexpr uint32_t kMaxRecordSize = 1u << 31;

void AppendFramed(const Record& record, std::string* out);
bool DecodePayload(std::string_view payload, Record* record);

}  // namespace levee::wal
