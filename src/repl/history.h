// History: which replication histories a server's data follows, and how
// far, so that two servers can tell where their data parts.
//
// An entry (id, through) says: this server's records 1..through are the
// records of the history named id. The first entry is the server's current
// replid, through its last sequence; the next are the ids it followed
// before (its primaries' earlier ids, or its own before a promotion), newest
// first. Redis' PSYNC2 keeps two of these (replid, replid2); levee keeps up
// to kMaxEntries, so a server that missed several failovers still finds the
// point where its data and a primary's part (docs/formats/replication.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace levee::repl {

struct HistoryEntry {
  std::string id;
  uint64_t through = 0;
  bool operator==(const HistoryEntry&) const = default;
};
using History = std::vector<HistoryEntry>;

inline constexpr size_t kMaxHistoryEntries = 64;

// Every `through` capped at `last` (a server has nothing past its last
// sequence, whatever the history it adopted says), entries past
// kMaxHistoryEntries dropped.
History Clamp(History h, uint64_t last);

// The last sequence up to which a's and b's data are the same records:
// the largest min(through) over entries with the same id; 0 if none.
// *related says whether any id is shared.
uint64_t CommonPrefix(const History& a, const History& b, bool* related = nullptr);

// Sequences in (after, h.front().through] that lie in entries whose id is
// not in `own` (ids this server started itself): records it received from
// a primary rather than wrote as one. Entry i covers (through[i+1], through[i]].
uint64_t ReceivedAfter(const History& h, uint64_t after, const std::vector<std::string>& own);

// "id:through,id:through" (the REPLCONF levee-history reply).
std::string EncodeHistory(const History& h);
bool DecodeHistory(std::string_view s, History* h);

}  // namespace levee::repl
