// How levee lays out its data inside one LevelDB (docs/formats/keyspace.md).
//
// Every LevelDB key starts with a one-byte prefix:
//   'd' user_key                      -> StoredValue encoding (data)
//   'e' be64(expire_at_ms) user_key   -> ""                   (expiry index)
//   'm' name                          -> meta value           (meta)
// The expiry index is ordered by time so the expirer reads a prefix of it.
// Index entries can be stale (the key was overwritten or deleted since); the
// expirer checks each against the data entry before acting.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "storage/blob.h"

namespace levee::storage {

inline constexpr char kDataPrefix = 'd';
inline constexpr char kExpiryPrefix = 'e';
inline constexpr char kMetaPrefix = 'm';

// Value types; only strings so far. The numbers are on disk: never reuse one.
enum class ValueType : uint8_t { kString = 0 };

struct StoredValue {
  ValueType type = ValueType::kString;
  int64_t expire_at_ms = 0;  // 0: no expiry
  std::string payload;
  // Set when LevelDB holds only a reference: the payload is in a blob file
  // (storage/blob.h) and empty here until Engine::Resolve reads it.
  bool in_blob = false;
  bool blob_loaded = false;  // in_blob and the payload has been read
  BlobRef blob;

  bool HasExpiry() const { return expire_at_ms != 0; }
  bool ExpiredAt(int64_t now_ms) const { return expire_at_ms != 0 && expire_at_ms <= now_ms; }
};

std::string DataKey(std::string_view user_key);
std::string ExpiryKey(int64_t expire_at_ms, std::string_view user_key);
std::string MetaKey(std::string_view name);

// Splits an expiry index key; false if it is not one.
bool ParseExpiryKey(std::string_view key, int64_t* expire_at_ms, std::string_view* user_key);

// Value encoding: u8 type, u8 flags (bit 0: has expiry, bit 1: in a blob
// file), [fixed64 expire_at_ms], then the payload or, with bit 1, varint64
// file, varint64 offset, varint64 length. EncodeValue writes the payload
// form (what the log and replicas carry); EncodeBlobValue turns one into
// the reference form LevelDB keeps for a large value.
void EncodeValue(const StoredValue& v, std::string* out);
bool DecodeValue(std::string_view in, StoredValue* out);
// The same, taking the bytes: the payload keeps raw's buffer (no copy).
bool DecodeValue(std::string&& raw, StoredValue* out);
// Bytes of encoded before its payload.
size_t ValueHeaderSize(std::string_view encoded);
std::string EncodeBlobValue(std::string_view encoded, const BlobRef& ref);

// The meta record written with every batch: the last applied log sequence
// and the number of keys (and of keys with an expiry).
struct AppliedMeta {
  uint64_t sequence = 0;
  uint64_t key_count = 0;
  uint64_t expires_count = 0;  // keys that carry an expiry
  // Every group up to this sequence has its counts fully resolved (see
  // KeyCounter); below `sequence` after a crash means: recount.
  uint64_t counted_through = 0;
};
inline constexpr std::string_view kAppliedMetaName = "applied";
inline constexpr std::string_view kFormatMetaName = "format";
// 2: values may be in blob files (a levee that knows only 1 refuses the data).
inline constexpr uint32_t kFormatVersion = 2;
std::string EncodeAppliedMeta(const AppliedMeta& m);
bool DecodeAppliedMeta(std::string_view in, AppliedMeta* m);

}  // namespace levee::storage
