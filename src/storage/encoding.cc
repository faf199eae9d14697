#include "storage/encoding.h"

#include "common/coding.h"

namespace levee::storage {

std::string DataKey(std::string_view user_key) {
  std::string k;
  k.reserve(user_key.size() + 1);
  k.push_back(kDataPrefix);
  k.append(user_key);
  return k;
}

std::string ExpiryKey(int64_t expire_at_ms, std::string_view user_key) {
  std::string k;
  k.reserve(user_key.size() + 9);
  k.push_back(kExpiryPrefix);
  PutBigEndian64(&k, static_cast<uint64_t>(expire_at_ms));
  k.append(user_key);
  return k;
}

std::string MetaKey(std::string_view name) {
  std::string k(1, kMetaPrefix);
  k.append(name);
  return k;
}

bool ParseExpiryKey(std::string_view key, int64_t* expire_at_ms, std::string_view* user_key) {
  if (key.size() < 9 || key[0] != kExpiryPrefix) return false;
  *expire_at_ms = static_cast<int64_t>(DecodeBigEndian64(key.data() + 1));
  *user_key = key.substr(9);
  return true;
}

void EncodeValue(const StoredValue& v, std::string* out) {
  out->clear();
  out->reserve(v.payload.size() + 10);
  out->push_back(static_cast<char>(v.type));
  out->push_back(static_cast<char>(v.HasExpiry() ? 1 : 0));
  if (v.HasExpiry()) PutFixed64(out, static_cast<uint64_t>(v.expire_at_ms));
  out->append(v.payload);
}

bool DecodeValue(std::string_view in, StoredValue* out) {
  if (in.size() < 2) return false;
  if (static_cast<uint8_t>(in[0]) != static_cast<uint8_t>(ValueType::kString)) return false;
  out->type = ValueType::kString;
  uint8_t flags = static_cast<uint8_t>(in[1]);
  if (flags & ~3u) return false;
  in.remove_prefix(2);
  out->expire_at_ms = 0;
  if (flags & 1) {
    uint64_t at;
    if (!GetFixed64(&in, &at)) return false;
    out->expire_at_ms = static_cast<int64_t>(at);
  }
  out->in_blob = (flags & 2) != 0;
  out->blob_loaded = false;
  if (out->in_blob) {
    uint64_t length;
    if (!GetVarint64(&in, &out->blob.file) || !GetVarint64(&in, &out->blob.offset) || !GetVarint64(&in, &length) ||
        !in.empty() || length > UINT32_MAX) {
      return false;
    }
    out->blob.length = static_cast<uint32_t>(length);
    out->payload.clear();
    return true;
  }
  out->payload.assign(in.data(), in.size());
  return true;
}

bool DecodeValue(std::string&& raw, StoredValue* out) {
  const size_t header = ValueHeaderSize(raw);
  if (raw.size() < header || (raw.size() >= 2 && (static_cast<uint8_t>(raw[1]) & 2))) {
    return DecodeValue(std::string_view(raw), out);  // short (an error) or a blob reference
  }
  std::string payload = std::move(raw);
  if (!DecodeValue(std::string_view(payload).substr(0, header), out)) return false;
  payload.erase(0, header);
  out->payload = std::move(payload);
  return true;
}

size_t ValueHeaderSize(std::string_view encoded) {
  return encoded.size() >= 2 && (static_cast<uint8_t>(encoded[1]) & 1) ? 10 : 2;
}

std::string EncodeBlobValue(std::string_view encoded, const BlobRef& ref) {
  size_t header = ValueHeaderSize(encoded);
  std::string out(encoded.substr(0, header));
  out[1] = static_cast<char>(static_cast<uint8_t>(out[1]) | 2);
  PutVarint64(&out, ref.file);
  PutVarint64(&out, ref.offset);
  PutVarint64(&out, ref.length);
  return out;
}

std::string EncodeAppliedMeta(const AppliedMeta& m) {
  std::string s;
  PutFixed64(&s, m.sequence);
  PutFixed64(&s, m.key_count);
  PutFixed64(&s, m.expires_count);
  PutFixed64(&s, m.counted_through);
  return s;
}

bool DecodeAppliedMeta(std::string_view in, AppliedMeta* m) {
  return GetFixed64(&in, &m->sequence) && GetFixed64(&in, &m->key_count) && GetFixed64(&in, &m->expires_count) &&
         GetFixed64(&in, &m->counted_through);
}

}  // namespace levee::storage
