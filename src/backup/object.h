// Backup objects: how one piece of a backed-up file is stored.
//
// An object's name is its content id: the SHA-256 of its plaintext, or with
// a key, HMAC-SHA256 under a subkey of it (so names reveal nothing about
// content to someone without the key). Its stored form is a small header,
// then the plaintext, zstd-compressed when that pays, and with a key
// encrypted with libsodium's secretstream (XChaCha20-Poly1305) in 1 MiB
// messages. Layout: docs/formats/backup.md.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace levee::backup {

// A repository key: 32 secret bytes from a file (64 hex digits, or the 32
// bytes themselves). Its id (16 hex digits) is derived from it, is stored in
// the repository and in every encrypted object, and names the key in errors.
class Key {
 public:
  static StatusOr<std::shared_ptr<const Key>> LoadFile(const std::string& path);
  static std::shared_ptr<const Key> FromBytes(std::string_view secret32);
  // 64 hex digits of fresh randomness, for `levee backup keygen`.
  static std::string GenerateHex();

  const std::string& id() const { return id_; }
  const std::string& id_bytes() const { return id_bytes_; }
  const unsigned char* encryption_key() const { return enc_.data(); }
  const unsigned char* naming_key() const { return name_.data(); }

 private:
  std::string id_, id_bytes_;
  std::array<unsigned char, 32> enc_{}, name_{};
};

// Content id of plaintext: 64 hex digits.
class ContentHasher {
 public:
  explicit ContentHasher(const Key* key);
  ~ContentHasher();
  ContentHasher(const ContentHasher&) = delete;
  ContentHasher& operator=(const ContentHasher&) = delete;
  void Update(std::string_view data);
  std::string Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
std::string ContentId(std::string_view plain, const Key* key);

enum class Compression { kNever, kIfSmaller };

// The stored form of plain. With kIfSmaller, zstd is used when it saves at
// least an eighth; an object of 256 KiB or more is tried only when samples
// of it compress by that much (incompressible data costs no full pass).
std::string EncodeObject(std::string_view plain, Compression compression, const Key* key);

// Plaintext of a stored object. `what` names the object in errors. Fails
// with a clear message on a damaged object, a missing key, or another key.
StatusOr<std::string> DecodeObject(std::string_view stored, const Key* key, const std::string& what);

// Whether an object's header says it is encrypted, and with which key id.
bool ObjectKeyId(std::string_view stored, std::string* key_id);

}  // namespace levee::backup
