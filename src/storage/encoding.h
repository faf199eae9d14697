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

  bool HasExpiry() const { return expire_at_ms != 0; }
  bool ExpiredAt(int64_t now_ms) const { return expire_at_ms != 0 && expire_at_ms <= now_ms; }
};

std::string DataKey(std::string_view user_key);
std::string ExpiryKey(int64_t expire_at_ms, std::string_view user_key);
std::string MetaKey(std::string_view name);

// Splits an expiry index key; false if it is not one.
bool ParseExpiryKey(std::string_view key, int64_t* expire_at_ms, std::string_view* user_key);

// Value encoding: u8 type, u8 flags (bit 0: has expiry), [fixed64 expire_at_ms], payload.
void EncodeValue(const StoredValue& v, std::string* out);
bool DecodeValue(std::string_view in, StoredValue* out);

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
inline constexpr uint32_t kFormatVersion = 1;
std::string EncodeAppliedMeta(const AppliedMeta& m);
bool DecodeAppliedMeta(std::string_view in, AppliedMeta* m);

}  // namespace levee::storage
