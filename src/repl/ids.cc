// Replication ids and history: persisting them (<data-dir>/replication-ids),
// and the changes a promotion or a backfill makes (docs/formats/replication.md).
#include <openssl/rand.h>

#include <filesystem>
#include <fstream>

#include "common/coding.h"
#include "common/file.h"
#include "common/logging.h"
#include "repl/ids.h"

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
std::string IdStore::path() const { return (fs::path(dir_) / "replication-ids").string(); }

Status IdStore::Load(const std::string& data_dir) {
  dir_ = data_dir;
  std::ifstream f(path());
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
    std::lock_guard<std::mutex> l(mu_);
    ids_ = ids;
    return Status::OK();
  }
  if (fs::exists(path())) logging::Warn("repl", "replication-ids is unreadable; starting a new replication history", {{"file", path()}});
  std::string id = NewReplId();
  ids = ReplIds{id, kNoId, 0, {}, {id}};
  LEVEE_RETURN_IF_ERROR(Save(ids));
  std::lock_guard<std::mutex> l(mu_);
  ids_ = ids;
  return Status::OK();
}

Status IdStore::Save(const ReplIds& ids) {
  std::string text = ids.replid + " " + ids.replid2 + " " + std::to_string(ids.second_offset) + "\n";
  for (const auto& e : ids.older) text += "older " + e.id + " " + std::to_string(e.through) + "\n";
  for (const auto& id : ids.own) text += "own " + id + "\n";
  return WriteFileAtomic(path(), text);
}

ReplIds IdStore::Get() {
  std::lock_guard<std::mutex> l(mu_);
  return ids_;
}

void IdStore::Set(const ReplIds& ids) {
  Status st = Save(ids);
  if (!st.ok()) logging::Error("repl", "could not persist the replication ids", {{"error", st.ToString()}});
  std::lock_guard<std::mutex> l(mu_);
  ids_ = ids;
}

}  // namespace levee::repl
