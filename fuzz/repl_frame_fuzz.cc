// libFuzzer target for the replication stream's decoders (fuzz/README.md):
// block headers, records blocks (zstd), write-ahead log frames and the full
// resync manifest, as a replica reads them from a primary (or from whatever
// answers on the primary's address). Each must refuse bad input with a
// status, never crash.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "repl/stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 3) {
    case 0: {
      // A block: 9-byte header, then its payload.
      if (in.size() < 9) return 0;
      levee::repl::BlockType type;
      uint32_t len = 0, crc = 0;
      if (!levee::repl::ParseBlockHeader(in.data(), &type, &len, &crc)) return 0;
      std::string_view payload = in.substr(9);
      if (payload.size() > len) payload = payload.substr(0, len);
      std::string frames;
      if (!levee::repl::OpenRecordsBlock(type, payload, crc, &frames).ok()) return 0;
      uint64_t next = 1;
      std::vector<levee::wal::Record> out;
      (void)levee::repl::DecodeFrames(frames, &next, &out);
      break;
    }
    case 1: {
      uint64_t next = data[0] / 3;
      std::vector<levee::wal::Record> out;
      levee::Status st = levee::repl::DecodeFrames(in, &next, &out);
      if (st.ok()) {
        for (size_t i = 1; i < out.size(); i++) {
          if (out[i].sequence <= out[i - 1].sequence) std::abort();  // frames come in order
        }
      }
      break;
    }
    default: {
      levee::repl::SyncManifest m;
      if (levee::repl::DecodeManifest(in, &m)) {
        std::string again = levee::repl::EncodeManifest(m);
        levee::repl::SyncManifest m2;
        if (!levee::repl::DecodeManifest(again, &m2)) std::abort();
      }
      break;
    }
  }
  return 0;
}
