// Replication ids, as Redis' PSYNC2: replid names the history this server's
// log follows; replid2 the history it followed before its last promotion,
// valid through second_offset; older entries before that. IdStore keeps
// them in <data-dir>/replication-ids (docs/formats/replication.md) and in
// memory.
//
// Threads: IdStore may be called from any thread (the link threads, the
// replica's client, commands); Load runs once at start.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "repl/history.h"

namespace levee::repl {

struct ReplIds {
  std::string replid;   // 40 hex
  std::string replid2;  // 40 zeros when none
  uint64_t second_offset = 0;  // replid2 is valid for sequences <= this
  History older;  // the ids followed before replid2, newest first (repl/history.h)
  std::vector<std::string> own;  // ids this server started (first start, promotions), newest first
};

// "No id" (replid2 when there is none): 40 zeros, as Redis.
inline const std::string kNoId(40, '0');
// A new random replication id, 40 hex digits.
std::string NewReplId();
// The ids as a History whose first entry is replid through `last`.
History HistoryOf(const ReplIds& ids, uint64_t last);
// Ids following history h (h[0] the current id), keeping `own`; at most
// kMaxHistoryEntries older and own ids are kept.
ReplIds IdsFromHistory(const History& h, std::vector<std::string> own);

class IdStore {
 public:
  // Reads <data_dir>/replication-ids; a missing or unreadable file starts a
  // new history (an id of this server's own), saved before it is used.
  // Errors only when that cannot be saved.
  Status Load(const std::string& data_dir);
  ReplIds Get();
  // Saves (a failure is logged: the ids in memory still change) and sets.
  void Set(const ReplIds& ids);
  // The file's path.
  std::string path() const;

 private:
  Status Save(const ReplIds& ids);
  std::string dir_;
  std::mutex mu_;
  ReplIds ids_;
};

}  // namespace levee::repl
