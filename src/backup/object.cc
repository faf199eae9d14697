#include "backup/object.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <zstd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "common/coding.h"

namespace levee::backup {
namespace {

constexpr char kMagic[4] = {'L', 'V', 'B', '1'};
constexpr uint8_t kFlagZstd = 1, kFlagEncrypted = 2;
constexpr size_t kKeyIdBytes = 8;
constexpr size_t kMessage = 1 << 20;             // plaintext bytes per secretstream message
constexpr uint64_t kMaxPlain = uint64_t{1} << 31;  // refuse to inflate past this

struct SodiumInit {
  SodiumInit() {
    if (sodium_init() < 0) std::abort();
  }
};
void EnsureSodium() { static SodiumInit init; }

bool ParseHexKey(std::string_view s, std::string* out) {
  if (s.size() != 64) return false;
  out->clear();
  for (size_t i = 0; i < 64; i += 2) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = nib(s[i]), lo = nib(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

}  // namespace

std::shared_ptr<const Key> Key::FromBytes(std::string_view secret32) {
  EnsureSodium();
  auto k = std::make_shared<Key>();
  const auto* master = reinterpret_cast<const unsigned char*>(secret32.data());
  crypto_kdf_derive_from_key(k->enc_.data(), k->enc_.size(), 1, "leveebk1", master);
  crypto_kdf_derive_from_key(k->name_.data(), k->name_.size(), 2, "leveebk1", master);
  unsigned char idb[16];
  crypto_kdf_derive_from_key(idb, sizeof(idb), 3, "leveebk1", master);
  k->id_bytes_.assign(reinterpret_cast<char*>(idb), kKeyIdBytes);
  k->id_ = HexEncode(k->id_bytes_);
  return k;
}

StatusOr<std::shared_ptr<const Key>> Key::LoadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    return Status::InvalidArgument("cannot read backup key file " + path + ": " + std::strerror(errno) +
                                   " (create one with `levee backup keygen > FILE`)");
  }
  std::stringstream ss;
  ss << f.rdbuf();
  std::string raw = ss.str();
  if (raw.size() == 32) return FromBytes(raw);
  std::string text = raw;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  std::string bytes;
  if (!ParseHexKey(text, &bytes)) {
    return Status::InvalidArgument("backup key file " + path +
                                   " must hold 64 hex digits (or 32 raw bytes); create one with `levee backup keygen > FILE`");
  }
  return FromBytes(bytes);
}

std::string Key::GenerateHex() {
  EnsureSodium();
  unsigned char b[32];
  randombytes_buf(b, sizeof(b));
  return HexEncode(std::string_view(reinterpret_cast<char*>(b), sizeof(b)));
}

struct ContentHasher::Impl {
  EVP_MD_CTX* md = nullptr;
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* mctx = nullptr;
  ~Impl() {
    if (md) EVP_MD_CTX_free(md);
    if (mctx) EVP_MAC_CTX_free(mctx);
    if (mac) EVP_MAC_free(mac);
  }
};

ContentHasher::ContentHasher(const Key* key) : impl_(std::make_unique<Impl>()) {
  if (key == nullptr) {
    impl_->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(impl_->md, EVP_sha256(), nullptr);
    return;
  }
  impl_->mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  impl_->mctx = EVP_MAC_CTX_new(impl_->mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  EVP_MAC_init(impl_->mctx, key->naming_key(), 32, params);
}

ContentHasher::~ContentHasher() = default;

void ContentHasher::Update(std::string_view data) {
  if (impl_->md) {
    EVP_DigestUpdate(impl_->md, data.data(), data.size());
  } else {
    EVP_MAC_update(impl_->mctx, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  }
}

std::string ContentHasher::Finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t n = 0;
  if (impl_->md) {
    unsigned int m = 0;
    EVP_DigestFinal_ex(impl_->md, out, &m);
    n = m;
  } else {
    EVP_MAC_final(impl_->mctx, out, &n, sizeof(out));
  }
  return HexEncode(std::string_view(reinterpret_cast<char*>(out), n));
}

std::string ContentId(std::string_view plain, const Key* key) {
  ContentHasher h(key);
  h.Update(plain);
  return h.Finish();
}

namespace {
// Whether compressing plain could save the eighth EncodeObject asks for,
// judged from three 16 KiB samples (start, middle, end) at zstd's fastest
// level. Blob file pieces of incompressible values (media, ciphertext,
// compressed JSON) would otherwise cost a full level-3 pass of every 4 MiB
// for nothing; small objects are simply tried.
bool WorthCompressing(std::string_view plain) {
  constexpr size_t kSample = 16 << 10;
  if (plain.size() < 16 * kSample) return true;
  std::string out(ZSTD_compressBound(kSample), '\0');
  size_t in = 0, packed = 0;
  for (size_t at : {size_t{0}, plain.size() / 2, plain.size() - kSample}) {
    size_t n = ZSTD_compress(out.data(), out.size(), plain.data() + at, kSample, 1);
    if (ZSTD_isError(n)) return true;
    in += kSample;
    packed += n;
  }
  return packed < in - in / 8;
}
}  // namespace

std::string EncodeObject(std::string_view plain, Compression compression, const Key* key) {
  uint8_t flags = 0;
  std::string packed;
  if (compression == Compression::kIfSmaller && plain.size() >= 64 && WorthCompressing(plain)) {
    packed.resize(ZSTD_compressBound(plain.size()));
    size_t n = ZSTD_compress(packed.data(), packed.size(), plain.data(), plain.size(), 3);
    if (!ZSTD_isError(n) && n <= plain.size() - plain.size() / 8) {
      packed.resize(n);
      flags |= kFlagZstd;
    }
  }
  std::string_view body = (flags & kFlagZstd) ? std::string_view(packed) : plain;

  std::string out(kMagic, sizeof(kMagic));
  if (key == nullptr) {
    out.push_back(static_cast<char>(flags));
    out.append(body);
    return out;
  }
  EnsureSodium();
  flags |= kFlagEncrypted;
  out.push_back(static_cast<char>(flags));
  out.append(key->id_bytes());
  crypto_secretstream_xchacha20poly1305_state st;
  unsigned char header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
  crypto_secretstream_xchacha20poly1305_init_push(&st, header, key->encryption_key());
  out.append(reinterpret_cast<char*>(header), sizeof(header));
  // Every message is bound to the header (magic, flags, key id).
  std::string ad = out.substr(0, sizeof(kMagic) + 1 + kKeyIdBytes);
  out.reserve(out.size() + body.size() + (body.size() / kMessage + 1) * (4 + crypto_secretstream_xchacha20poly1305_ABYTES));
  size_t off = 0;
  do {
    size_t n = std::min(kMessage, body.size() - off);
    bool last = off + n == body.size();
    size_t clen = n + crypto_secretstream_xchacha20poly1305_ABYTES;
    PutFixed32(&out, static_cast<uint32_t>(clen));
    size_t at = out.size();
    out.resize(at + clen);
    crypto_secretstream_xchacha20poly1305_push(
        &st, reinterpret_cast<unsigned char*>(out.data() + at), nullptr,
        reinterpret_cast<const unsigned char*>(body.data() + off), n,
        reinterpret_cast<const unsigned char*>(ad.data()), ad.size(),
        last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
    off += n;
  } while (off < body.size());
  return out;
}

bool ObjectKeyId(std::string_view stored, std::string* key_id) {
  if (stored.size() < sizeof(kMagic) + 1 || std::memcmp(stored.data(), kMagic, sizeof(kMagic)) != 0) return false;
  uint8_t flags = static_cast<uint8_t>(stored[sizeof(kMagic)]);
  if (!(flags & kFlagEncrypted)) return false;
  if (stored.size() < sizeof(kMagic) + 1 + kKeyIdBytes) return false;
  *key_id = HexEncode(stored.substr(sizeof(kMagic) + 1, kKeyIdBytes));
  return true;
}

StatusOr<std::string> DecodeObject(std::string_view stored, const Key* key, const std::string& what) {
  if (stored.size() < sizeof(kMagic) + 1 || std::memcmp(stored.data(), kMagic, sizeof(kMagic)) != 0) {
    return Status::Corruption(what + " is not a levee backup object (bad header)");
  }
  uint8_t flags = static_cast<uint8_t>(stored[sizeof(kMagic)]);
  if (flags & ~(kFlagZstd | kFlagEncrypted)) return Status::Corruption(what + " has unknown flags " + std::to_string(flags));
  std::string_view rest = stored.substr(sizeof(kMagic) + 1);
  std::string body;
  if (flags & kFlagEncrypted) {
    std::string id;
    ObjectKeyId(stored, &id);
    if (key == nullptr) {
      return Status::InvalidArgument(what + " is encrypted with key id " + id + "; give its key with --backup-key-file");
    }
    if (id != key->id()) {
      return Status::InvalidArgument(what + " is encrypted with key id " + id + ", but the key given has id " +
                                     key->id() + "; use the key this repository was created with");
    }
    EnsureSodium();
    constexpr size_t kHdr = crypto_secretstream_xchacha20poly1305_HEADERBYTES;
    if (rest.size() < kKeyIdBytes + kHdr) return Status::Corruption(what + " is truncated (in its header)");
    std::string_view ad = stored.substr(0, sizeof(kMagic) + 1 + kKeyIdBytes);
    crypto_secretstream_xchacha20poly1305_state st;
    if (crypto_secretstream_xchacha20poly1305_init_pull(
            &st, reinterpret_cast<const unsigned char*>(rest.data() + kKeyIdBytes), key->encryption_key()) != 0) {
      return Status::Corruption(what + " has a damaged encryption header");
    }
    rest.remove_prefix(kKeyIdBytes + kHdr);
    bool final = false;
    while (!final) {
      if (rest.size() < 4) return Status::Corruption(what + " is truncated (ends before its final message)");
      uint32_t clen = DecodeFixed32(rest.data());
      rest.remove_prefix(4);
      if (clen < crypto_secretstream_xchacha20poly1305_ABYTES || clen > rest.size()) {
        return Status::Corruption(what + " is truncated or damaged (message length " + std::to_string(clen) + ")");
      }
      size_t at = body.size();
      body.resize(at + clen - crypto_secretstream_xchacha20poly1305_ABYTES);
      unsigned long long mlen = 0;
      unsigned char tag = 0;
      if (crypto_secretstream_xchacha20poly1305_pull(
              &st, reinterpret_cast<unsigned char*>(body.data() + at), &mlen, &tag,
              reinterpret_cast<const unsigned char*>(rest.data()), clen, reinterpret_cast<const unsigned char*>(ad.data()),
              ad.size()) != 0) {
        return Status::Corruption(what + " fails authentication (damaged or altered)");
      }
      body.resize(at + mlen);
      rest.remove_prefix(clen);
      final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    }
    if (!rest.empty()) return Status::Corruption(what + " has " + std::to_string(rest.size()) + " bytes after its end");
  } else {
    body.assign(rest);
  }
  if (!(flags & kFlagZstd)) return body;
  unsigned long long n = ZSTD_getFrameContentSize(body.data(), body.size());
  if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN || n > kMaxPlain) {
    return Status::Corruption(what + " has a damaged compressed body");
  }
  std::string plain(n, '\0');
  size_t r = ZSTD_decompress(plain.data(), plain.size(), body.data(), body.size());
  if (ZSTD_isError(r) || r != n) return Status::Corruption(what + " has a damaged compressed body");
  return plain;
}

}  // namespace levee::backup
