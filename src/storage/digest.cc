#include "storage/digest.h"

#include <leveldb/iterator.h>
#include <openssl/evp.h>

#include <cassert>

#include "common/coding.h"
#include "storage/engine.h"
#include "storage/view.h"

namespace levee::storage {

struct KeyDigest::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

KeyDigest::KeyDigest() : ctx_(std::make_unique<Ctx>()) { EVP_DigestInit_ex(ctx_->md, EVP_sha1(), nullptr); }
KeyDigest::~KeyDigest() = default;

void KeyDigest::Add(std::string_view key, const StoredValue& v) {
  // A value still in its blob file has no payload here: callers load it.
  assert(!v.in_blob || v.blob_loaded);
  std::string buf;
  PutVarint64(&buf, key.size());
  buf.append(key);
  PutFixed64(&buf, static_cast<uint64_t>(v.expire_at_ms));
  buf.push_back(static_cast<char>(v.type));
  PutVarint64(&buf, v.payload.size());
  EVP_DigestUpdate(ctx_->md, buf.data(), buf.size());
  EVP_DigestUpdate(ctx_->md, v.payload.data(), v.payload.size());
  any_ = true;
}

std::string KeyDigest::Finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_->md, out, &n);
  if (!any_) return std::string(40, '0');
  return HexEncode(std::string_view(reinterpret_cast<char*>(out), n));
}

std::string KeyDigest::OfValue(const StoredValue& v) {
  KeyDigest d;
  StoredValue copy = v;
  copy.expire_at_ms = 0;  // the value only, as Redis
  d.Add("", copy);
  return d.Finish();
}

StatusOr<std::string> DigestData(leveldb::Iterator* it, const BlobFiles* blobs, int64_t now_ms, const std::atomic<bool>* cancel,
                                 const std::function<void(uint64_t)>& pace) {
  constexpr uint64_t kPaceEvery = 1 << 20;
  uint64_t unpaced = 0;
  KeyDigest d;
  std::string prefix(1, kDataPrefix);
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    leveldb::Slice k = it->key();
    if (k.empty() || k[0] != kDataPrefix) break;
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return Status::IOError("digest cancelled");
    StoredValue v;
    LEVEE_RETURN_IF_ERROR(DecodeStored(it->value(), &v));
    unpaced += k.size() + it->value().size() + (v.in_blob ? v.blob.length : 0);
    if (pace && unpaced >= kPaceEvery) {
      pace(unpaced);
      unpaced = 0;
    }
    if (v.ExpiredAt(now_ms)) continue;
    std::string_view user_key(k.data() + 1, k.size() - 1);
    Status st = Engine::ResolveIn(blobs, user_key, &v, /*fill_cache=*/false);  // a full pass: leave the cache to clients
    if (!st.ok()) return Status::Corruption("reading the value of a key for a digest: " + st.message());
    d.Add(user_key, v);
  }
  if (!it->status().ok()) return Status::Corruption("reading the data for a digest: " + it->status().ToString());
  return d.Finish();
}

}  // namespace levee::storage
