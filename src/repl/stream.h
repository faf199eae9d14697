// The replication stream's framing (docs/formats/replication.md).
//
// After the PSYNC reply the primary sends blocks:
//   u8 type, fixed32 payload length, fixed32 CRC-32 of the payload, payload
// A record block carries write-ahead log frames exactly as stored (each
// with its own checksum); a compressed block carries them zstd-compressed.
// The replica answers with RESP commands (REPLCONF ACK, REPLCONF
// levee-have), as Redis replicas do.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "wal/record.h"

namespace levee::repl {

enum class BlockType : uint8_t {
  kRecords = 1,      // WAL frames
  kRecordsZstd = 2,  // fixed32 raw length, zstd frame of WAL frames
  kHeartbeat = 3,    // fixed64 primary's last sequence, fixed64 primary's wall clock ms
  kSyncBegin = 4,    // full resync: checkpoint description (SyncManifest)
  kFileChunk = 5,    // lp file name, fixed64 offset, data
  kSyncEnd = 6,      // all files sent; records from the checkpoint's sequence + 1 follow
};

inline constexpr size_t kBlockHeaderSize = 9;
// Bigger blocks are refused: they bound what a damaged length makes a
// replica allocate.
inline constexpr uint32_t kMaxBlockSize = 64u << 20;

// Appends one framed block; compresses kRecords into kRecordsZstd when
// zstd_level > 0 and it saves at least an eighth.
void AppendBlock(BlockType type, std::string_view payload, std::string* out);
void AppendRecordsBlock(std::string_view frames, int zstd_level, std::string* out);

// Decodes a block header; false if the type or size is invalid.
bool ParseBlockHeader(const char* p, BlockType* type, uint32_t* len, uint32_t* crc);
// Checks the payload and, for kRecordsZstd, decompresses into *frames.
Status OpenRecordsBlock(BlockType type, std::string_view payload, uint32_t crc, std::string* frames);

// Decodes write-ahead log frames back to back (a records block's content,
// or a backfill chunk): each frame's checksum is checked and sequences must
// run on from *next, which advances. Appends the records to *out.
Status DecodeFrames(std::string_view frames, uint64_t* next, std::vector<wal::Record>* out);

struct SyncFile {
  std::string name;
  uint64_t size = 0;
};
struct SyncManifest {
  std::string instance_id;  // the primary database's identity: file names are unique within it
  uint64_t sequence = 0;    // the checkpoint's applied sequence
  std::vector<SyncFile> files;
};
std::string EncodeManifest(const SyncManifest& m);
bool DecodeManifest(std::string_view in, SyncManifest* m);


}  // namespace levee::repl
