#include "commands/args.h"
#include "repl/primary.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <filesystem>
#include <map>
#include <thread>

#include "common/clock.h"
#include "common/coding.h"
#include "common/config.h"
#include "common/logging.h"
#include "repl/link_host.h"
#include "repl/node.h"
#include "repl/stream.h"
#include "resp/parser.h"
#include "write/writer.h"
#include "storage/checkpoint.h"
#include "storage/engine.h"
#include "wal/cursor.h"

namespace levee::repl {
namespace fs = std::filesystem;
namespace {

constexpr int kSendTimeoutMs = 60000;
constexpr size_t kChunk = 1 << 20;
constexpr size_t kStreamRead = 256 << 10;
constexpr size_t kMaxBackfillBytes = 64u << 20;  // more than this behind is not worth holding in memory


}  // namespace

ReplicaLink::ReplicaLink(LinkHost* host, Params p) : m_(host), p_(std::move(p)), sock_(p_.fd) {
  sock_.in() = std::move(p_.unparsed);
  if (!p_.full) needs_from_ = p_.after + 1;
  last_ack_ms_ = NowMs();
  acked_ = p_.full ? 0 : p_.after;
}

ReplicaLink::~ReplicaLink() {
  Stop();
  Join();
}

const char* ReplicaLink::state_name() const {
  switch (state_.load()) {
    case State::kCheckpoint: return "wait_bgsave";
    case State::kSendFiles: return "send_bulk";
    case State::kOnline: return "online";
    case State::kClosed: return "closed";
  }
  return "unknown";
}

void ReplicaLink::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "levee-repl-out");
    Run();
  });
}

void ReplicaLink::Stop() {
  stop_ = true;
  waker_.Signal();
}

void ReplicaLink::Join() {
  if (thread_.joinable()) thread_.join();
}

void ReplicaLink::Run() {
  std::string peer = p_.ip + ":" + std::to_string(p_.listening_port);
  Status st;
  uint64_t after = p_.after;
  if (p_.full) {
    st = FullSync(&after);
  } else {
    st = Send(p_.reply);
    if (st.ok() && p_.backfill) st = Backfill(&after);
  }
  if (st.ok()) st = Stream(after);
  if (!stop_.load()) {
    logging::Warn("repl", "replica link closed", {{"replica", peer}, {"reason", st.ToString()}});
  } else {
    logging::Info("repl", "replica link closed", {{"replica", peer}});
  }
  needs_from_ = UINT64_MAX;
  state_ = State::kClosed;
  sock_.Close();
}

Status ReplicaLink::Send(std::string_view data) {
  Status st = sock_.WriteAll(data, kSendTimeoutMs);
  if (st.ok()) m_->stats().bytes_sent += data.size();
  return st;
}

void ReplicaLink::Throttle(size_t bytes) {
  int64_t rate = m_->node()->config().GetInt("repl-full-sync-max-bytes-per-sec");
  if (rate <= 0) return;
  while (!stop_.load()) {
    int64_t now = NowMs();
    if (tokens_ms_ == 0) tokens_ms_ = now;
    tokens_ = std::min<double>(static_cast<double>(rate), tokens_ + static_cast<double>(now - tokens_ms_) * rate / 1000.0);
    tokens_ms_ = now;
    if (tokens_ >= static_cast<double>(bytes) || tokens_ >= static_cast<double>(rate)) {
      tokens_ -= static_cast<double>(bytes);
      return;
    }
    double wait_ms = (static_cast<double>(bytes) - tokens_) * 1000.0 / rate;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::max<int64_t>(1, std::min<int64_t>(100, static_cast<int64_t>(wait_ms)))));
  }
}

Status ReplicaLink::EachCommand(const std::function<Status(std::vector<std::string>&)>& fn) {
  std::string& in = sock_.in();
  size_t pos = 0;
  Status st;
  while (st.ok() && pos < in.size()) {
    size_t consumed = 0;
    auto r = parser_.Parse(std::string_view(in).substr(pos), &consumed);
    pos += consumed;
    if (r == resp::RequestParser::Result::kError) return Status::Corruption("replica sent bad input: " + parser_.error());
    if (r == resp::RequestParser::Result::kNeedMore) break;
    st = fn(parser_.args());
  }
  in.erase(0, pos);
  return st;
}

Status ReplicaLink::HandleInput(const std::string& expect_cmd, std::vector<std::string>* got) {
  return EachCommand([&](std::vector<std::string>& a) {
    if (a.size() >= 3 && commands::EqualsIgnoreCase(a[0], "replconf") && commands::EqualsIgnoreCase(a[1], "ack")) {
      int64_t v;
      if (commands::ParseInt64(a[2], &v) && v >= 0) {
        acked_ = static_cast<uint64_t>(v);
        last_ack_ms_ = NowMs();
        if (state_.load() == State::kOnline) needs_from_ = static_cast<uint64_t>(v) + 1;
        m_->OnAck(this);
      }
    } else if (got != nullptr && a.size() >= 2 && commands::EqualsIgnoreCase(a[0], "replconf") &&
               commands::EqualsIgnoreCase(a[1], expect_cmd)) {
      *got = std::move(a);
    }
    return Status::OK();
  });
}

Status ReplicaLink::Backfill(uint64_t* after) {
  Node* node = m_->node();
  std::string peer = p_.ip + ":" + std::to_string(p_.listening_port);
  auto batch = std::make_unique<write::ReplicatedBatch>();
  uint64_t next = *after + 1;
  int64_t end = -1;
  int64_t deadline = NowMs() + node->config().GetInt("repl-timeout-ms");
  while (end < 0) {
    LEVEE_RETURN_IF_ERROR(EachCommand([&](std::vector<std::string>& a) {
      if (end >= 0 || a.size() != 3 || !commands::EqualsIgnoreCase(a[0], "replconf")) return Status::OK();
      if (commands::EqualsIgnoreCase(a[1], "levee-records")) {
        LEVEE_RETURN_IF_ERROR(DecodeFrames(a[2], &next, &batch->records));
        batch->frames += a[2];
        if (batch->frames.size() > kMaxBackfillBytes) {
          return Status::InvalidArgument("replica is more than " + std::to_string(kMaxBackfillBytes >> 20) +
                                         " MiB of records ahead; not taking them");
        }
        deadline = NowMs() + m_->node()->config().GetInt("repl-timeout-ms");
      } else if (commands::EqualsIgnoreCase(a[1], "levee-records-end")) {
        if (!commands::ParseInt64(a[2], &end) || end < 0 || static_cast<uint64_t>(end) != next - 1) {
          return Status::Corruption("backfill ended at " + a[2] + " after records through " + std::to_string(next - 1));
        }
      }
      return Status::OK();
    }));
    if (end >= 0) break;
    if (stop_.load()) return Status::IOError("stopped");
    if (NowMs() > deadline) return Status::IOError("replica stopped sending its records (repl-timeout-ms)");
    Status st = sock_.ReadSome(200, &waker_, nullptr);
    if (!st.ok() && !net::IsTimeout(st)) return st;
  }
  uint64_t last = static_cast<uint64_t>(end);
  size_t count = batch->records.size();
  if (count > 0) {
    // The writer appends them only if nothing was written here since the
    // PSYNC (they must follow our last sequence): else the link fails and
    // the replica's next PSYNC is answered from what we have then.
    auto applied = std::make_shared<std::promise<Status>>();
    std::future<Status> result = applied->get_future();
    batch->done = [applied](const Status& st) { applied->set_value(st); };
    node->SubmitReplicated(std::move(batch));
    while (result.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
      if (stop_.load()) return Status::IOError("stopped while the writer applied the replica's records");
    }
    LEVEE_RETURN_IF_ERROR(result.get());
  }
  std::string id = m_->AdoptBackfill(p_.replica_history, last, this);
  m_->stats().backfilled_records += count;
  logging::Warn("repl", "took records from a replica that was ahead of this primary",
                {{"replica", peer}, {"from_sequence", *after + 1}, {"through", last}, {"records", count},
                 {"replid", id}});
  acked_ = last;
  needs_from_ = last + 1;
  *after = last;
  return Send("+CONTINUE " + id + "\r\n");
}

Status ReplicaLink::FullSync(uint64_t* through) {
  state_ = State::kCheckpoint;
  Node* node = m_->node();
  std::unique_ptr<storage::Checkpoint> cp;
  Status cst;
  uint64_t seq = 0;
  // On the writer, between groups: LevelDB holds exactly `seq` then, and
  // the log is kept from seq+1 before any trim can run.
  node->RunOnWriter([&] {
    auto r = node->engine().TakeCheckpoint();
    if (!r.ok()) {
      cst = r.status();
      return;
    }
    cp = std::move(r.value());
    seq = node->engine().applied_sequence();
    needs_from_ = seq + 1;
  });
  LEVEE_RETURN_IF_ERROR(cst);
  m_->stats().full_syncs++;
  logging::Info("repl", "full resync: sending a checkpoint",
                {{"replica", p_.ip + ":" + std::to_string(p_.listening_port)},
                 {"sequence", seq},
                 {"files", cp->files().size()},
                 {"bytes", cp->total_bytes()}});
  LEVEE_RETURN_IF_ERROR(Send("+FULLRESYNC " + m_->ids().replid + " " + std::to_string(seq) + "\r\n"));
  SyncManifest man;
  man.instance_id = node->instance_id();
  man.sequence = seq;
  for (const auto& f : cp->files()) man.files.push_back(SyncFile{f.name, f.size});
  std::string out;
  AppendBlock(BlockType::kSyncBegin, EncodeManifest(man), &out);
  LEVEE_RETURN_IF_ERROR(Send(out));

  // The replica answers with what it already has of these files.
  std::vector<std::string> have_cmd;
  int64_t deadline = NowMs() + 60000;
  while (have_cmd.empty()) {
    LEVEE_RETURN_IF_ERROR(HandleInput("levee-have", &have_cmd));
    if (!have_cmd.empty()) break;
    if (stop_.load()) return Status::IOError("stopped");
    if (NowMs() > deadline) return Status::IOError("replica did not answer the checkpoint description");
    Status st = sock_.ReadSome(1000, &waker_, nullptr);
    if (!st.ok() && !net::IsTimeout(st)) return st;
  }
  std::map<std::string, uint64_t> have;
  for (size_t i = 2; i + 1 < have_cmd.size(); i += 2) {
    int64_t v;
    if (commands::ParseInt64(have_cmd[i + 1], &v) && v >= 0) have[have_cmd[i]] = static_cast<uint64_t>(v);
  }

  state_ = State::kSendFiles;
  uint64_t skipped = 0, sent = 0;
  std::string buf;
  for (const auto& f : cp->files()) {
    uint64_t from = 0;
    if (auto it = have.find(f.name); it != have.end() && it->second <= f.size) from = it->second;
    skipped += from;
    std::string path = (fs::path(cp->dir()) / f.name).string();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::IOError("cannot open checkpoint file " + path + ": " + std::strerror(errno));
    Status st;
    for (uint64_t off = from; off < f.size && st.ok();) {
      if (stop_.load()) st = Status::IOError("stopped");
      size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, f.size - off));
      std::string payload;
      PutLengthPrefixed(&payload, f.name);
      PutFixed64(&payload, off);
      size_t at = payload.size();
      payload.resize(at + n);
      ssize_t r = ::pread(fd, payload.data() + at, n, static_cast<off_t>(off));
      if (r != static_cast<ssize_t>(n)) {
        st = Status::IOError("short read of checkpoint file " + path);
        break;
      }
      Throttle(n);
      buf.clear();
      AppendBlock(BlockType::kFileChunk, payload, &buf);
      st = Send(buf);
      off += n;
      sent += n;
      // Acks keep flowing (the replica acks its old offset meanwhile).
      if (st.ok()) {
        Status rs = sock_.ReadSome(0, nullptr, nullptr);
        if (!rs.ok() && !net::IsTimeout(rs)) st = rs;
        else st = HandleInput("", nullptr);
      }
    }
    ::close(fd);
    LEVEE_RETURN_IF_ERROR(st);
  }
  std::string end;
  PutFixed64(&end, seq);
  buf.clear();
  AppendBlock(BlockType::kSyncEnd, end, &buf);
  LEVEE_RETURN_IF_ERROR(Send(buf));
  logging::Info("repl", "full resync: checkpoint sent",
                {{"replica", p_.ip + ":" + std::to_string(p_.listening_port)},
                 {"bytes_sent", sent},
                 {"bytes_already_there", skipped}});
  cp.reset();  // releases the files to compaction
  *through = seq;
  last_ack_ms_ = NowMs();
  return Status::OK();
}

Status ReplicaLink::Stream(uint64_t after) {
  Node* node = m_->node();
  wal::LogCursor cursor(&node->log());
  Status st = cursor.Seek(after);
  if (!st.ok()) return Status::NotFound("the replica needs records the log no longer has (" + st.message() + ")");
  state_ = State::kOnline;
  sent_ = after;
  if (!p_.full) m_->stats().partial_syncs++;
  std::string frames, block;
  int64_t last_send_ms = NowMs();
  while (!stop_.load()) {
    frames.clear();
    uint64_t last = sent_.load();
    LEVEE_RETURN_IF_ERROR(cursor.Read(kStreamRead, &frames, &last));
    int64_t now = NowMs();
    if (!frames.empty()) {
      block.clear();
      AppendRecordsBlock(frames, p_.zstd ? 1 : 0, &block);
      LEVEE_RETURN_IF_ERROR(Send(block));
      sent_ = last;
      last_send_ms = now;
    } else if (now - last_send_ms >= 1000) {
      std::string hb;
      PutFixed64(&hb, node->last_sequence());
      PutFixed64(&hb, static_cast<uint64_t>(now));
      block.clear();
      AppendBlock(BlockType::kHeartbeat, hb, &block);
      LEVEE_RETURN_IF_ERROR(Send(block));
      last_send_ms = now;
    }
    int64_t timeout = node->config().GetInt("repl-timeout-ms");
    if (now - last_ack_ms_.load() > timeout) {
      return Status::IOError("no ack from the replica for " + std::to_string(now - last_ack_ms_.load()) +
                             " ms (repl-timeout-ms)");
    }
    // More to send: only drain input. Caught up: wait for input or a wake.
    st = sock_.ReadSome(frames.empty() ? 200 : 0, &waker_, nullptr);
    if (!st.ok() && !net::IsTimeout(st)) return st;
    LEVEE_RETURN_IF_ERROR(HandleInput("", nullptr));
  }
  return Status::OK();
}

}  // namespace levee::repl
