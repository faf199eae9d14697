// libFuzzer target for what levee reads from a backup repository
// (fuzz/README.md): stored objects (header, zstd, secretstream), manifests
// and the names in them. A repository is shared storage anyone with write
// access can plant objects in: each decoder must refuse bad input with a
// status, never crash, and never accept a name that leaves its directory.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "backup/names.h"
#include "backup/object.h"
#include "backup/repo.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string in(reinterpret_cast<const char*>(data + 1), size - 1);
  static const auto key = levee::backup::Key::FromBytes(std::string(32, '\x07'));
  switch (data[0] % 3) {
    case 0: {
      auto plain = levee::backup::DecodeObject(in, (data[0] & 4) ? key.get() : nullptr, "fuzz object");
      (void)plain;
      break;
    }
    case 1: {
      auto m = levee::backup::ManifestFromJson(in, "fuzz manifest", "20261121T000000Z-abcdef");
      if (m.ok()) {
        if (!levee::backup::IsBackupId(m.value().id)) std::abort();
        for (const auto& f : m.value().files) {
          if (!levee::backup::IsDataPath(f.path) || f.path.find("..") == 0) std::abort();
          for (const auto& c : f.chunks) {
            if (!levee::backup::IsObjectId(c.id)) std::abort();
          }
        }
      }
      break;
    }
    default: {
      // A key accepted as a store key has no "..", no empty and no absolute part.
      if (levee::backup::IsStoreKey(in)) {
        if (in.front() == '/' || in.back() == '/' || in.find("//") != std::string::npos ||
            in == ".." || in.rfind("../", 0) == 0 || in.find("/../") != std::string::npos ||
            (in.size() >= 3 && in.compare(in.size() - 3, 3, "/..") == 0)) {
          std::abort();
        }
      }
      break;
    }
  }
  return 0;
}
