#include "repl/replica.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "common/clock.h"
#include "common/coding.h"
#include "common/config.h"
#include "common/file.h"
#include "common/logging.h"
#include "net/resp_client.h"
#include "repl/link_host.h"
#include "repl/node.h"
#include "write/writer.h"
#include "wal/log.h"
#include "wal/record.h"

namespace levee::repl {
namespace fs = std::filesystem;
namespace {

constexpr int kHandshakeTimeoutMs = 10000;
constexpr int kMaxInFlight = 16;
constexpr uint64_t kSyncEvery = 16ull << 20;  // staging files are fsynced and their progress recorded this often

}  // namespace

ReplicaClient::ReplicaClient(ClientHost* owner, std::string host, int port)
    : m_(owner), host_(std::move(host)), port_(port) {
  down_since_ms_ = NowMs();
}

ReplicaClient::~ReplicaClient() {
  Stop();
  Join();
}

void ReplicaClient::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "levee-repl-in");
    Run();
    finished_ = true;
  });
}

void ReplicaClient::Stop() {
  stop_ = true;
  waker_.Signal();
}

void ReplicaClient::DropLink() {
  drop_ = true;
  waker_.Signal();
}

void ReplicaClient::Join() {
  if (thread_.joinable()) thread_.join();
}

const char* ReplicaClient::state_name() const {
  switch (state_.load()) {
    case State::kConnect: return "connect";
    case State::kConnecting: return "connecting";
    case State::kHandshake: return "handshake";
    case State::kTransfer: return "sync";
    case State::kConnected: return "connected";
  }
  return "unknown";
}

std::string ReplicaClient::last_error() const {
  std::lock_guard<std::mutex> l(mu_);
  return error_;
}

void ReplicaClient::SetError(const std::string& e) {
  std::lock_guard<std::mutex> l(mu_);
  error_ = e;
}

int64_t ReplicaClient::lag_ms() const {
  if (m_->node()->last_sequence() >= primary_last_.load()) return 0;
  int64_t t = applied_time_ms_.load();
  return t == 0 ? 0 : std::max<int64_t>(0, NowMs() - t);
}

void ReplicaClient::Run() {
  int backoff_ms = 100;
  while (!stop_.load()) {
    state_ = State::kConnecting;
    Status st = Session();
    sock_.Close();
    bool was_up = state_.load() == State::kConnected;
    state_ = State::kConnect;
    if (was_up) down_since_ms_ = NowMs();
    // Let batches in flight finish before the next PSYNC names our offset.
    for (int i = 0; i < 1000 && in_flight_.load() > 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (stop_.load()) break;
    SetError(st.ToString());
    logging::Warn("repl", "link to the primary is down; reconnecting",
                  {{"primary", host_ + ":" + std::to_string(port_)}, {"reason", st.ToString()},
                   {"retry_ms", backoff_ms}});
    // Wait before retrying, waking at once on Stop.
    pollfd p{waker_.fd(), POLLIN, 0};
    ::poll(&p, 1, backoff_ms);
    backoff_ms = std::min(backoff_ms * 2, 2000);
    if (was_up) backoff_ms = 100;
  }
}

Status ReplicaClient::Command(const std::vector<std::string>& args, std::string* reply) {
  LEVEE_RETURN_IF_ERROR(sock_.WriteAll(net::EncodeCommand(args), kHandshakeTimeoutMs));
  LEVEE_RETURN_IF_ERROR(sock_.ReadLine(kHandshakeTimeoutMs, reply));
  last_io_ms_ = NowMs();
  if (!reply->empty() && reply->front() == '-') {
    return Status::InvalidArgument("primary answered " + args[0] + " with " + reply->substr(1));
  }
  return Status::OK();
}

Status ReplicaClient::Session() {
  Node* node = m_->node();
  Config& cfg = node->config();
  LEVEE_RETURN_IF_ERROR(net::Socket::Connect(host_, port_, 3000, &sock_));
  state_ = State::kHandshake;
  std::string reply;
  std::string pass_file = cfg.GetString("masterauth-file");
  if (!pass_file.empty()) {
    std::ifstream f(pass_file);
    std::string pass;
    if (!f || !std::getline(f, pass) || pass.empty()) {
      return Status::InvalidArgument("cannot read a password from masterauth-file " + pass_file);
    }
    while (!pass.empty() && (pass.back() == '\r' || pass.back() == ' ')) pass.pop_back();
    std::string user = cfg.GetString("masteruser");
    if (user.empty()) LEVEE_RETURN_IF_ERROR(Command({"AUTH", pass}, &reply));
    else LEVEE_RETURN_IF_ERROR(Command({"AUTH", user, pass}, &reply));
  }
  LEVEE_RETURN_IF_ERROR(Command({"PING"}, &reply));
  // Behind NAT or a Kubernetes Service the primary can't see the address
  // other servers (and Sentinel) must use: replica-announce-ip/-port.
  int64_t announce_port = cfg.GetInt("replica-announce-port");
  std::string port = std::to_string(announce_port != 0 ? announce_port : node->listen_port());
  LEVEE_RETURN_IF_ERROR(Command({"REPLCONF", "listening-port", port}, &reply));
  if (std::string ip = cfg.GetString("replica-announce-ip"); !ip.empty()) {
    LEVEE_RETURN_IF_ERROR(Command({"REPLCONF", "ip-address", ip}, &reply));
  }
  std::vector<std::string> capa = {"REPLCONF", "capa", "eof", "capa", "psync2"};
  if (cfg.GetBool("repl-compression")) {
    capa.push_back("capa");
    capa.push_back("zstd");
  }
  LEVEE_RETURN_IF_ERROR(Command(capa, &reply));
  // Our id: the primary refuses us if we are upstream of it (a loop), and
  // answers its own chain of ids so we can check the other way.
  Status st = Command({"REPLCONF", "levee-id", node->run_id()}, &reply);
  if (!st.ok()) {
    if (reply.find("unknown") != std::string::npos || reply.find("Unrecognized") != std::string::npos) {
      return Status::InvalidArgument("the primary at " + host_ + ":" + std::to_string(port_) +
                                     " is not a levee server; levee replicates from levee");
    }
    return st;
  }
  std::string chain = reply.substr(1);
  if (("," + chain + ",").find("," + node->run_id() + ",") != std::string::npos) {
    return Status::InvalidArgument("replication loop: " + host_ + ":" + std::to_string(port_) +
                                   " is this server or one of its replicas; point REPLICAOF elsewhere");
  }
  m_->SetUpstreamChain(chain);

  // Histories both ways: where the primary's data and ours part, so that we
  // never take a copy that would discard records we hold for clients
  // (CheckRollback), and the primary can tell we are ahead of it.
  ReplIds ids = m_->ids();
  uint64_t have = node->last_sequence();
  History theirs;
  Status hs = Command({"REPLCONF", "levee-history", EncodeHistory(HistoryOf(ids, have))}, &reply);
  if (hs.ok() && !DecodeHistory(std::string_view(reply).substr(1), &theirs)) {
    return Status::Corruption("bad REPLCONF levee-history reply: " + reply.substr(0, 200));
  }
  std::optional<uint64_t> backfill_after;
  Status refusal = hs.ok() ? CheckRollback(ids, have, theirs, &backfill_after) : Status::OK();
  if (!refusal.ok() && !backfill_after) {
    m_->stats().rollbacks_refused++;
    return refusal;
  }
  if (!refusal.ok()) LEVEE_RETURN_IF_ERROR(Command({"REPLCONF", "levee-backfill", "1"}, &reply));
  // Data that is no prefix of the primary's and that we will give up for a
  // copy: from now on offer offset 1 (see copy_owed()), not only once the
  // primary has answered FULLRESYNC.
  if (hs.ok() && refusal.ok() && have > 0 && CommonPrefix(HistoryOf(ids, have), theirs) < have) copy_owed_ = true;
  LEVEE_RETURN_IF_ERROR(sock_.WriteAll(net::EncodeCommand({"PSYNC", ids.replid, std::to_string(have + 1)}), kHandshakeTimeoutMs));
  LEVEE_RETURN_IF_ERROR(sock_.ReadLine(kHandshakeTimeoutMs, &reply));
  last_io_ms_ = NowMs();
  std::istringstream words(reply);
  std::string verb, replid;
  words >> verb >> replid;
  if (verb == "+LEVEE-BACKFILL") {
    // The primary holds nothing past where we part: it takes our extra
    // records, then continues from our last one.
    if (refusal.ok()) return Status::Corruption("unasked LEVEE-BACKFILL reply: " + reply);
    LEVEE_RETURN_IF_ERROR(SendBackfill(*backfill_after, have));
    LEVEE_RETURN_IF_ERROR(sock_.ReadLine(kHandshakeTimeoutMs, &reply));
    last_io_ms_ = NowMs();
    words = std::istringstream(reply);
    words >> verb >> replid;
    if (verb != "+CONTINUE") return Status::Corruption("after a backfill the primary answered " + reply.substr(0, 100));
    logging::Info("repl", "the primary took the records it lacked from this replica",
                  {{"primary", host_ + ":" + std::to_string(port_)}, {"from_sequence", *backfill_after + 1},
                   {"through", have}});
    rollback_ = 0;
  } else if (!refusal.ok() && verb == "+FULLRESYNC") {
    m_->stats().rollbacks_refused++;
    return refusal;  // it wrote since it told us its history, or would not take them
  }
  // Whose history we follow after the resync: the primary's as it told us,
  // when the PSYNC answer names the same id (else just that id).
  auto adopt = [&](uint64_t last) {
    ReplIds now = m_->ids();
    if (!theirs.empty() && theirs.front().id == replid) {
      m_->SetIds(IdsFromHistory(Clamp(theirs, last), now.own));
    } else if (replid != now.replid) {
      History h = HistoryOf(now, last);
      h.insert(h.begin(), HistoryEntry{replid, last});
      m_->SetIds(IdsFromHistory(Clamp(std::move(h), last), now.own));
    }
  };
  if (verb == "+CONTINUE") {
    // Our history is a prefix of the primary's (perhaps newly promoted).
    if (replid.size() == 40) adopt(have);
    copy_owed_ = false;
    m_->stats().replica_partial_syncs++;
    logging::Info("repl", "partial resync from the primary",
                  {{"primary", host_ + ":" + std::to_string(port_)}, {"from_sequence", have + 1}});
    expect_next_ = have + 1;
  } else if (verb == "+FULLRESYNC") {
    uint64_t seq = 0;
    words >> seq;
    if (replid.size() != 40) return Status::Corruption("bad FULLRESYNC reply: " + reply);
    state_ = State::kTransfer;
    copy_owed_ = true;  // until the copy is in, even across cuts and retries
    LEVEE_RETURN_IF_ERROR(Transfer(seq));
    m_->SetIds(ReplIds{replid, kNoId, 0, {}, m_->ids().own});
    adopt(seq);
    copy_owed_ = false;
    m_->stats().replica_full_syncs++;
    expect_next_ = seq + 1;
  } else if (!reply.empty() && reply[0] == '-') {
    return Status::InvalidArgument("primary refused PSYNC: " + reply.substr(1));
  } else {
    return Status::Corruption("unexpected PSYNC reply: " + reply.substr(0, 100));
  }
  state_ = State::kConnected;
  SetError("");
  last_acked_ = 0;
  return Stream();
}

Status ReplicaClient::CheckRollback(const ReplIds& ids, uint64_t have, const History& theirs,
                                    std::optional<uint64_t>* backfill_after) {
  backfill_after->reset();
  bool related = false;
  uint64_t common = CommonPrefix(HistoryOf(ids, have), theirs, &related);
  rollback_ = 0;
  if (!related || common >= have) return Status::OK();  // another data set, or nothing of ours is lost
  // A full copy would discard our records (common, have]. Records we wrote
  // as a primary and no replica confirmed may go (async writes, as
  // documented); records we received from a primary may hold sync-class
  // writes its clients were told are on a replica: this one.
  uint64_t received = ReceivedAfter(HistoryOf(ids, have), common, ids.own);
  if (received == 0 || !m_->HoldsSyncWritesAfter(common)) return Status::OK();
  if (!m_->node()->config().GetBool("replica-refuse-rollback")) {
    logging::Warn("repl", "taking a full copy that discards records received from an earlier primary "
                  "(replica-refuse-rollback is no)",
                  {{"primary", host_ + ":" + std::to_string(port_)}, {"common_sequence", common},
                   {"discarded_records", have - common}});
    return Status::OK();
  }
  // A primary with nothing past that point (promoted from a stale view of
  // the offsets, or restarted behind us) can take our records instead.
  uint64_t first = m_->node()->log().first_sequence();
  if (!theirs.empty() && theirs.front().through == common && first != 0 && first <= common + 1) {
    *backfill_after = common;  // the primary takes our records after this
  }
  rollback_ = have - common;
  return Status::InvalidArgument(
      "refusing a full resync from " + host_ + ":" + std::to_string(port_) + ": it lacks " +
      std::to_string(have - common) + " records this replica holds after sequence " + std::to_string(common) +
      " (received from an earlier primary, with sync-class writes clients were told are safe). Promote this "
      "replica or point it at one that has them; to discard them, CONFIG SET replica-refuse-rollback no");
}

Status ReplicaClient::SendBackfill(uint64_t after, uint64_t last) {
  std::string frames;
  uint64_t sent_through = after;
  Status io;
  Status st = m_->node()->log().ReadFrom(after, [&](wal::Record&& rec) {
    if (rec.sequence > last) return false;
    wal::AppendFramed(rec, &frames);
    sent_through = rec.sequence;
    if (frames.size() >= (1u << 20)) {
      io = sock_.WriteAll(net::EncodeCommand({"REPLCONF", "levee-records", frames}), kHandshakeTimeoutMs);
      frames.clear();
    }
    return io.ok();
  });
  LEVEE_RETURN_IF_ERROR(io);
  LEVEE_RETURN_IF_ERROR(st);
  if (sent_through != last) {
    return Status::IOError("the log no longer holds records " + std::to_string(sent_through + 1) + ".." +
                           std::to_string(last) + " to send to the primary");
  }
  if (!frames.empty()) {
    LEVEE_RETURN_IF_ERROR(sock_.WriteAll(net::EncodeCommand({"REPLCONF", "levee-records", frames}), kHandshakeTimeoutMs));
  }
  return sock_.WriteAll(net::EncodeCommand({"REPLCONF", "levee-records-end", std::to_string(last)}), kHandshakeTimeoutMs);
}

Status ReplicaClient::ReadBlock(BlockType* type, std::string* payload, uint32_t* crc, int timeout_ms) {
  std::string header;
  LEVEE_RETURN_IF_ERROR(sock_.ReadExact(kBlockHeaderSize, timeout_ms, &header));
  uint32_t len;
  if (!ParseBlockHeader(header.data(), type, &len, crc)) {
    return Status::Corruption("malformed replication block header (type " +
                              std::to_string(static_cast<uint8_t>(header[0])) + ")");
  }
  LEVEE_RETURN_IF_ERROR(sock_.ReadExact(len, timeout_ms, payload));
  m_->stats().bytes_received += kBlockHeaderSize + len;
  last_io_ms_ = NowMs();
  return Status::OK();
}

Status ReplicaClient::Transfer(uint64_t sequence) {
  Node* node = m_->node();
  int timeout = static_cast<int>(node->config().GetInt("repl-timeout-ms"));
  BlockType type;
  std::string payload;
  uint32_t crc;
  LEVEE_RETURN_IF_ERROR(ReadBlock(&type, &payload, &crc, timeout));
  SyncManifest man;
  if (type != BlockType::kSyncBegin || Crc32(payload) != crc || !DecodeManifest(payload, &man) ||
      man.sequence != sequence) {
    return Status::Corruption("full resync did not start with a valid checkpoint description");
  }
  fs::path staging = fs::path(node->data_dir()) / "sync-staging";
  fs::path db = staging / "db";
  std::error_code ec;
  // A copy from another database can't be resumed: file names repeat.
  std::string source;
  {
    std::ifstream f(staging / "SOURCE");
    std::getline(f, source);
  }
  if (source != man.instance_id) {
    fs::remove_all(staging, ec);
    fs::create_directories(db, ec);
    if (ec) return Status::IOError("cannot create " + db.string() + ": " + ec.message());
    LEVEE_RETURN_IF_ERROR(WriteFileAtomic((staging / "SOURCE").string(), man.instance_id + "\n"));
  }
  fs::remove(staging / "COMPLETE", ec);
  // What earlier attempts left: only bytes recorded as synced count.
  std::map<std::string, uint64_t> have;
  {
    std::ifstream f(staging / "PROGRESS");
    std::string name;
    uint64_t size;
    while (f >> name >> size) have[name] = size;
  }
  std::map<std::string, uint64_t> want;
  for (const auto& f : man.files) want[f.name] = f.size;
  for (const auto& entry : fs::directory_iterator(db, ec)) {
    std::string name = entry.path().filename().string();
    auto w = want.find(name);
    auto h = have.find(name);
    if (w == want.end() || h == have.end() || h->second > w->second) {
      fs::remove(entry.path(), ec);
      have.erase(name);
    } else {
      fs::resize_file(entry.path(), h->second, ec);
    }
  }
  for (auto it = have.begin(); it != have.end();) {
    if (!fs::exists(db / it->first)) it = have.erase(it);
    else ++it;
  }
  auto save_progress = [&]() {
    std::string s;
    for (const auto& [n, sz] : have) s += n + " " + std::to_string(sz) + "\n";
    return WriteFileAtomic((staging / "PROGRESS").string(), s);
  };
  LEVEE_RETURN_IF_ERROR(save_progress());
  std::vector<std::string> reply = {"REPLCONF", "levee-have"};
  uint64_t total = 0, already = 0;
  for (const auto& f : man.files) {
    total += f.size;
    if (auto h = have.find(f.name); h != have.end()) {
      reply.push_back(f.name);
      reply.push_back(std::to_string(h->second));
      already += h->second;
    }
  }
  transfer_total_ = total;
  transfer_done_ = already;
  LEVEE_RETURN_IF_ERROR(sock_.WriteAll(net::EncodeCommand(reply), kHandshakeTimeoutMs));
  logging::Info("repl", "full resync: receiving a checkpoint",
                {{"primary", host_ + ":" + std::to_string(port_)}, {"sequence", sequence},
                 {"bytes", total}, {"bytes_resumed", already}});

  std::map<std::string, int> fds;
  std::map<std::string, uint64_t> unsynced;
  auto close_all = [&]() {
    for (auto& [n, fd] : fds) ::close(fd);
    fds.clear();
  };
  Status st;
  while (st.ok()) {
    if (stop_.load()) {
      st = Status::IOError("stopped");
      break;
    }
    if (drop_.exchange(false)) {
      st = Status::IOError("link closed by CLIENT KILL TYPE master");
      break;
    }
    st = ReadBlock(&type, &payload, &crc, timeout);
    if (!st.ok()) break;
    if (Crc32(payload) != crc) {
      st = Status::Corruption("checkpoint chunk fails its checksum");
      break;
    }
    if (type == BlockType::kSyncEnd) break;
    if (type == BlockType::kHeartbeat) continue;
    if (type != BlockType::kFileChunk) {
      st = Status::Corruption("unexpected block during full resync");
      break;
    }
    std::string_view in(payload);
    std::string_view name;
    uint64_t off;
    if (!GetLengthPrefixed(&in, &name) || !GetFixed64(&in, &off)) {
      st = Status::Corruption("malformed checkpoint chunk");
      break;
    }
    std::string n(name);
    auto w = want.find(n);
    if (w == want.end() || off != have[n] || off + in.size() > w->second) {
      st = Status::Corruption("checkpoint chunk for " + n + " at " + std::to_string(off) + " does not follow " +
                              std::to_string(have[n]));
      break;
    }
    int& fd = fds[n];
    if (fd == 0) {
      fd = ::open((db / n).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) {
        st = Status::IOError("cannot write " + (db / n).string() + ": " + std::strerror(errno));
        fds.erase(n);
        break;
      }
    }
    if (::pwrite(fd, in.data(), in.size(), static_cast<off_t>(off)) != static_cast<ssize_t>(in.size())) {
      st = Status::IOError("cannot write " + (db / n).string() + ": " + std::strerror(errno));
      break;
    }
    have[n] = off + in.size();
    unsynced[n] += in.size();
    transfer_done_ += in.size();
    m_->stats().full_sync_bytes += in.size();
    if (unsynced[n] >= kSyncEvery || have[n] == w->second) {
      if (::fdatasync(fd) != 0) {
        st = Status::IOError("fsync " + (db / n).string() + ": " + std::strerror(errno));
        break;
      }
      unsynced[n] = 0;
      st = save_progress();
    }
    if (st.ok()) st = SendAck(false);
  }
  close_all();
  LEVEE_RETURN_IF_ERROR(st);
  std::string_view end(payload);
  uint64_t end_seq;
  if (!GetFixed64(&end, &end_seq) || end_seq != sequence) return Status::Corruption("bad end of full resync");
  for (const auto& f : man.files) {
    if (have[f.name] != f.size) {
      return Status::Corruption("full resync ended with " + f.name + " incomplete (" +
                                std::to_string(have[f.name]) + " of " + std::to_string(f.size) + " bytes)");
    }
  }
  LEVEE_RETURN_IF_ERROR(save_progress());
  // From here a restart finishes the install instead of starting over.
  LEVEE_RETURN_IF_ERROR(WriteFileAtomic((staging / "COMPLETE").string(), std::to_string(sequence) + "\n"));
  m_->DisconnectReplicasAndWait();
  LEVEE_RETURN_IF_ERROR(node->InstallCopy(db.string(), sequence));
  logging::Info("repl", "full resync complete: now serving the primary's data",
                {{"primary", host_ + ":" + std::to_string(port_)}, {"sequence", sequence}});
  return Status::OK();
}

Status ReplicaClient::SendAck(bool force) {
  uint64_t applied = m_->node()->last_sequence();
  int64_t now = NowMs();
  if (!force && applied == last_acked_ && now - last_ack_ms_ < 1000) return Status::OK();
  LEVEE_RETURN_IF_ERROR(sock_.WriteAll(net::EncodeCommand({"REPLCONF", "ACK", std::to_string(applied)}), 10000));
  last_acked_ = applied;
  last_ack_ms_ = now;
  return Status::OK();
}

Status ReplicaClient::ApplyRecords(std::string frames) {
  auto batch = std::make_unique<write::ReplicatedBatch>();
  LEVEE_RETURN_IF_ERROR(DecodeFrames(frames, &expect_next_, &batch->records));
  if (batch->records.empty()) return Status::OK();
  batch->frames = std::move(frames);
  int64_t t = batch->records.back().time_ms;
  in_flight_++;
  batch->done = [this, t](const Status& st) {
    if (!st.ok()) {
      std::lock_guard<std::mutex> l(mu_);
      apply_error_ = st.ToString();
    } else {
      applied_time_ms_ = t;
    }
    in_flight_--;
    waker_.Signal();
  };
  m_->node()->SubmitReplicated(std::move(batch));
  return Status::OK();
}

Status ReplicaClient::Stream() {
  Node* node = m_->node();
  std::string frames;
  LEVEE_RETURN_IF_ERROR(SendAck(true));
  while (!stop_.load()) {
    if (drop_.exchange(false)) return Status::IOError("link closed by CLIENT KILL TYPE master");
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!apply_error_.empty()) {
        std::string e = std::move(apply_error_);
        apply_error_.clear();
        return Status::IOError("applying the stream failed: " + e);
      }
    }
    int64_t timeout = node->config().GetInt("repl-timeout-ms");
    int64_t now = NowMs();
    if (now - last_io_ms_.load() > timeout) {
      return Status::IOError("no data from the primary for " + std::to_string(now - last_io_ms_.load()) +
                             " ms (repl-timeout-ms)");
    }
    LEVEE_RETURN_IF_ERROR(SendAck(false));
    // Complete blocks already buffered are handled before reading more.
    std::string& in = sock_.in();
    bool handled = false;
    if (in.size() >= kBlockHeaderSize && in_flight_.load() < kMaxInFlight) {
      BlockType type;
      uint32_t len, crc;
      if (!ParseBlockHeader(in.data(), &type, &len, &crc)) {
        return Status::Corruption("malformed replication block header (type " +
                                  std::to_string(static_cast<uint8_t>(in[0])) + ")");
      }
      if (in.size() >= kBlockHeaderSize + len) {
        std::string_view payload(in.data() + kBlockHeaderSize, len);
        m_->stats().bytes_received += kBlockHeaderSize + len;
        if (type == BlockType::kRecords || type == BlockType::kRecordsZstd) {
          frames.clear();
          LEVEE_RETURN_IF_ERROR(OpenRecordsBlock(type, payload, crc, &frames));
          LEVEE_RETURN_IF_ERROR(ApplyRecords(std::move(frames)));
          frames = std::string();
        } else if (type == BlockType::kHeartbeat) {
          if (Crc32(payload) != crc) return Status::Corruption("heartbeat fails its checksum");
          uint64_t last = DecodeFixed64(payload.data());
          primary_last_ = last;
        } else {
          return Status::Corruption("unexpected block type " + std::to_string(static_cast<int>(type)) +
                                    " in the record stream");
        }
        in.erase(0, kBlockHeaderSize + len);
        handled = true;
        last_io_ms_ = NowMs();
        if (expect_next_ - 1 > primary_last_.load()) primary_last_ = expect_next_ - 1;
      }
    }
    if (handled) continue;
    bool woken = false;
    int wait = in_flight_.load() >= kMaxInFlight ? 50 : 200;
    Status st = in_flight_.load() >= kMaxInFlight ? Status::IOError("timed out") : sock_.ReadSome(wait, &waker_, &woken);
    if (in_flight_.load() >= kMaxInFlight) {
      pollfd p{waker_.fd(), POLLIN, 0};
      ::poll(&p, 1, wait);
      waker_.Drain();
    }
    if (!st.ok() && !net::IsTimeout(st)) return st;
  }
  return Status::OK();
}

}  // namespace levee::repl
