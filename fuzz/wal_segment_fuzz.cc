// libFuzzer target for the write-ahead log segment reader (fuzz/README.md).
//
// The input is a segment's bytes, as a crash, a bad disk or a planted
// archive object (point-in-time restore reads archived segments) leaves
// them. ScanSegmentBytes must answer OK, a torn tail or Corruption, never
// crash; every record it accepts must encode back to a frame it accepts.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "wal/log.h"
#include "wal/record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<levee::wal::Record> records;
  levee::wal::ScanResult r;
  levee::Status st = levee::wal::ScanSegmentBytes(in, "fuzz.wal", 0, size % 2 == 0,
                                                  [&](levee::wal::Record&& rec) {
                                                    records.push_back(std::move(rec));
                                                    return records.size() < 1000;
                                                  },
                                                  &r);
  if (r.good_bytes > size) std::abort();
  if (!st.ok() || records.empty()) return 0;
  // Re-encoded, the accepted records scan back to themselves.
  std::string again = levee::wal::SegmentHeader(records.front().sequence);
  for (const auto& rec : records) levee::wal::AppendFramed(rec, &again);
  size_t n = 0;
  levee::wal::ScanResult r2;
  st = levee::wal::ScanSegmentBytes(again, "again.wal", 0, false,
                                    [&](levee::wal::Record&& rec) {
                                      if (n >= records.size() || rec.sequence != records[n].sequence ||
                                          rec.mutations.size() != records[n].mutations.size()) {
                                        std::abort();
                                      }
                                      n++;
                                      return true;
                                    },
                                    &r2);
  if (!st.ok() || n != records.size()) std::abort();
  return 0;
}
