// Replication ids and history: persisting them (<data-dir>/replication-ids),
// and the changes a promotion or a backfill makes (docs/formats/replication.md).
#include <openssl/rand.h>

#include <filesystem>
#include <fstream>

#include "common/coding.h"
#include "common/file.h"
#include "common/logging.h"
#include "repl/manager.h"
#include "repl/primary.h"
#include "wal/log.h"

namespace levee::repl {
namespace fs = std::filesystem;

std::string NewReplId() {
  unsigned char raw[20];
  RAND_bytes(raw, sizeof(raw));
  return HexEncode(std::string_view(reinterpret_cast<char*>(raw), sizeof(raw)));
}

History HistoryOf(const ReplIds& ids, uint64_t last) {
  History h{{ids.replid, last}};
  if (ids.replid2 != kNoId) h.push_back({ids.replid2, ids.second_offset});
  h.insert(h.end(), ids.older.begin(), ids.older.end());
  return Clamp(std::move(h), last);
}

ReplIds IdsFromHistory(const History& h, std::vector<std::string> own) {
  ReplIds ids{h.at(0).id, kNoId, 0, {}, std::move(own)};
  if (h.size() > 1) {
    ids.replid2 = h[1].id;
    ids.second_offset = h[1].through;
    ids.older.assign(h.begin() + 2, h.end());
  }
  if (ids.older.size() > kMaxHistoryEntries) ids.older.resize(kMaxHistoryEntries);
  if (ids.own.size() > kMaxHistoryEntries) ids.own.resize(kMaxHistoryEntries);
  return ids;
}

// replication-ids: "replid replid2 second_offset" (as before), then one line
// per older history entry ("older <id> <through>") and per id this server
// started ("own <id>").
Status Manager::LoadIds() {
  fs::path p = fs::path(node_->data_dir()) / "replication-ids";
  std::ifstream f(p);
  ReplIds ids;
  if (f && (f >> ids.replid >> ids.replid2 >> ids.second_offset) && ids.replid.size() == 40 &&
      ids.replid2.size() == 40) {
    std::string tag, id;
    while (f >> tag >> id) {
      uint64_t through = 0;
      if (tag == "older" && (f >> through)) ids.older.push_back({id, through});
      else if (tag == "own") ids.own.push_back(id);
      else break;
    }
    std::lock_guard<std::mutex> l(ids_mu_);
    ids_ = ids;
    return Status::OK();
  }
  if (fs::exists(p)) logging::Warn("repl", "replication-ids is unreadable; starting a new replication history", {{"file", p.string()}});
  std::string id = NewReplId();
  ids = ReplIds{id, kNoId, 0, {}, {id}};
  LEVEE_RETURN_IF_ERROR(SaveIds(ids));
  std::lock_guard<std::mutex> l(ids_mu_);
  ids_ = ids;
  return Status::OK();
}

Status Manager::SaveIds(const ReplIds& ids) {
  std::string text = ids.replid + " " + ids.replid2 + " " + std::to_string(ids.second_offset) + "\n";
  for (const auto& e : ids.older) text += "older " + e.id + " " + std::to_string(e.through) + "\n";
  for (const auto& id : ids.own) text += "own " + id + "\n";
  return WriteFileAtomic((fs::path(node_->data_dir()) / "replication-ids").string(), text);
}

ReplIds Manager::ids() {
  std::lock_guard<std::mutex> l(ids_mu_);
  return ids_;
}

History Manager::history() { return HistoryOf(ids(), node_->last_sequence()); }

std::string Manager::HistoryReply() { return EncodeHistory(history()); }

bool Manager::HoldsSyncWritesAfter(uint64_t after) {
  uint64_t last = node_->last_sequence();
  if (last <= after) return false;
  uint64_t first = node_->log().first_sequence();
  if (first == 0 || first > after + 1) return true;  // trimmed: can't tell
  bool found = false;
  uint64_t seen = after;
  Status st = node_->log().ReadFrom(after, [&](wal::Record&& rec) {
    if (rec.sequence > last) return false;
    seen = rec.sequence;
    for (const auto& m : rec.mutations) {
      if (m.kind == wal::Mutation::Kind::kFlushAll || (m.changes_data() && IsSyncKey(m.key))) {
        found = true;
        return false;
      }
    }
    return true;
  });
  return found || !st.ok() || seen < last;
}

std::string Manager::AdoptBackfill(const History& replica_history, uint64_t last, ReplicaLink* keep) {
  ReplIds old = ids();
  std::string id = NewReplId();
  History h = Clamp(replica_history, last);
  h.insert(h.begin(), HistoryEntry{id, last});
  std::vector<std::string> own = old.own;
  own.insert(own.begin(), id);
  SetIds(IdsFromHistory(Clamp(std::move(h), last), std::move(own)));
  std::vector<std::shared_ptr<ReplicaLink>> links;
  {
    std::lock_guard<std::mutex> l(links_mu_);
    links = links_;
  }
  for (auto& link : links) {
    if (link.get() != keep) link->Stop();
  }
  return id;
}

void Manager::SetIds(const ReplIds& ids) {
  Status st = SaveIds(ids);
  if (!st.ok()) logging::Error("repl", "could not persist the replication ids", {{"error", st.ToString()}});
  std::lock_guard<std::mutex> l(ids_mu_);
  ids_ = ids;
}

}  // namespace levee::repl
