#include "repl/manager.h"

#include <pthread.h>

#include <filesystem>
#include <fstream>

#include "commands/args.h"
#include "common/clock.h"
#include "common/coding.h"
#include "common/config.h"
#include "common/file.h"
#include "common/logging.h"
#include "repl/handshake.h"
#include "repl/primary.h"
#include "repl/replica.h"
#include "repl/stream.h"
#include "resp/reply.h"
#include "storage/engine.h"
#include "wal/log.h"

namespace levee::repl {
namespace fs = std::filesystem;
namespace {

std::string Ip(const std::string& addr) {
  size_t colon = addr.rfind(':');
  std::string ip = colon == std::string::npos ? addr : addr.substr(0, colon);
  if (ip.size() > 1 && ip.front() == '[') ip = ip.substr(1, ip.size() - 2);
  return ip;
}

}  // namespace

Manager::Manager(Node* node) : node_(node), acks_(this, NowMs) {}

Manager::~Manager() { Stop(); }

void Manager::ReloadSettings() {
  Config& c = node_->config();
  min_replicas_ = c.GetInt("min-replicas-to-write");
  min_replicas_max_lag_s_ = c.GetInt("min-replicas-max-lag");
  acks_.Configure(SyncSettings{c.GetInt("sync-replicas"), c.GetInt("sync-timeout-ms"),
                               c.GetString("sync-timeout-policy") == "fail",
                               SplitCommaList(c.GetString("sync-key-prefixes"))});
}

Status Manager::Start(const std::string& replicaof) {
  LEVEE_RETURN_IF_ERROR(ids_.Load(node_->data_dir()));
  ReloadSettings();
  for (const char* name : {"min-replicas-to-write", "min-replicas-max-lag", "sync-replicas", "sync-timeout-ms",
                           "sync-timeout-policy", "sync-key-prefixes"}) {
    node_->config().OnChange(name, [this](const std::string&) { ReloadSettings(); });
  }
  cron_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "levee-repl-cron");
    Cron();
  });
  if (!replicaof.empty()) {
    size_t colon = replicaof.rfind(':');
    int port = 0;
    if (colon != std::string::npos) port = std::atoi(replicaof.c_str() + colon + 1);
    if (colon == std::string::npos || colon == 0 || port < 1 || port > 65535) {
      return Status::InvalidArgument("replicaof '" + replicaof + "' is not host:port (e.g. levee-0.levee:6379)");
    }
    std::string err = ReplicaOf(replicaof.substr(0, colon), port);
    if (!err.empty()) return Status::InvalidArgument(err);
  }
  return Status::OK();
}

void Manager::Stop() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> l(cron_mu_);
  }
  cron_cv_.notify_all();
  if (cron_.joinable()) cron_.join();
  {
    std::lock_guard<std::mutex> l(client_mu_);
    if (client_) retired_.push_back(std::move(client_));
    for (auto& c : retired_) c->Stop();
  }
  for (auto& c : retired_) c->Join();
  retired_.clear();
  std::vector<std::shared_ptr<ReplicaLink>> links;
  {
    std::lock_guard<std::mutex> l(links_mu_);
    links.swap(links_);
  }
  for (auto& link : links) link->Stop();
  for (auto& link : links) link->Join();
  acks_.ReleaseAll();
}

void Manager::StopClient() {
  std::lock_guard<std::mutex> l(client_mu_);
  if (client_) {
    client_->Stop();
    retired_.push_back(std::move(client_));
  }
  master_host_.clear();
  master_port_ = 0;
}

std::string Manager::ReplicaOf(const std::string& host, int port) {
  if (host.empty()) {
    if (!replica_.load()) return "";
    StopClient();
    // A new history starts here; the old one stays valid through our last
    // sequence, so replicas that followed it resync partially.
    ReplIds old = ids();
    uint64_t last = node_->last_sequence();
    History h = HistoryOf(old, last);
    std::string id = NewReplId();
    h.insert(h.begin(), HistoryEntry{id, last});
    std::vector<std::string> own = old.own;
    own.insert(own.begin(), id);
    ReplIds n = IdsFromHistory(Clamp(std::move(h), last), std::move(own));
    SetIds(n);
    replica_ = false;
    node_->SetReplicaMode(false);
    RecordReplicaOf("");
    {
      std::lock_guard<std::mutex> l(chain_mu_);
      upstream_chain_.clear();
    }
    DisconnectReplicas();
    logging::Info("repl", "promoted to primary (REPLICAOF NO ONE)",
                  {{"replid", n.replid}, {"replid2", n.replid2}, {"second_offset", n.second_offset}});
    return "";
  }
  {
    std::lock_guard<std::mutex> l(client_mu_);
    if (replica_.load() && client_ && master_host_ == host && master_port_ == port) return "";
  }
  StopClient();
  replica_ = true;
  node_->SetReplicaMode(true);
  // Writes held for acks can't be acked by replicas of a replica.
  acks_.ReleaseAll();
  DisconnectReplicas();
  std::lock_guard<std::mutex> l(client_mu_);
  master_host_ = host;
  master_port_ = port;
  RecordReplicaOf(host + ":" + std::to_string(port));
  client_ = std::make_unique<ReplicaClient>(this, host, port);
  client_->Start();
  logging::Info("repl", "following a primary", {{"primary", host + ":" + std::to_string(port)}});
  return "";
}

void Manager::RecordReplicaOf(const std::string& value) {
  // The running value of the replicaof setting (CONFIG GET, CONFIG REWRITE).
  Status st = node_->config().Set("replicaof", value, "REPLICAOF");
  if (!st.ok()) logging::Warn("repl", "could not record replicaof", {{"error", st.ToString()}});
}

void Manager::DisconnectReplicas() {
  std::vector<std::shared_ptr<ReplicaLink>> links;
  {
    std::lock_guard<std::mutex> l(links_mu_);
    links = links_;
  }
  for (auto& link : links) link->Stop();
}

bool Manager::has_replicas() {
  std::lock_guard<std::mutex> l(links_mu_);
  return !links_.empty();
}

int64_t Manager::KillReplicas() {
  std::vector<std::shared_ptr<ReplicaLink>> links;
  {
    std::lock_guard<std::mutex> l(links_mu_);
    links = links_;
  }
  for (auto& link : links) link->Stop();
  logging::Info("repl", "replica links closed by CLIENT KILL TYPE replica", {{"links", links.size()}});
  return static_cast<int64_t>(links.size());
}

int64_t Manager::KillMasterLink() {
  std::lock_guard<std::mutex> l(client_mu_);
  if (!replica_.load() || !client_) return 0;
  client_->DropLink();
  return 1;
}

void Manager::DisconnectReplicasAndWait() {
  std::vector<std::shared_ptr<ReplicaLink>> links;
  {
    std::lock_guard<std::mutex> l(links_mu_);
    links.swap(links_);
  }
  for (auto& link : links) link->Stop();
  for (auto& link : links) link->Join();
}

std::string Manager::Chain() {
  std::lock_guard<std::mutex> l(chain_mu_);
  std::string c = node_->run_id();
  if (replica_.load() && !upstream_chain_.empty()) c += "," + upstream_chain_;
  return c;
}

void Manager::SetUpstreamChain(const std::string& chain) {
  std::lock_guard<std::mutex> l(chain_mu_);
  upstream_chain_ = chain;
}

void Manager::Replconf(const std::shared_ptr<commands::ClientState>& client, const std::vector<std::string>& a,
                       resp::ReplyBuilder& rb) {
  if (a.size() % 2 == 0) return rb.Error(commands::kErrSyntax);
  Handshake& h = Handshake::Of(*client);
  for (size_t i = 1; i + 1 < a.size(); i += 2) {
    if (commands::EqualsIgnoreCase(a[i], "levee-id")) {
      h.node_id = a[i + 1];
      return Identify(a[i + 1], rb);
    }
    if (commands::EqualsIgnoreCase(a[i], "levee-history")) {
      h.history = a[i + 1];
      return rb.SimpleString(HistoryReply());
    }
    if (std::string err = h.Apply(a[i], a[i + 1]); !err.empty()) return rb.Error(err);
  }
  rb.Ok();
}

void Manager::Identify(const std::string& node_id, resp::ReplyBuilder& rb) {
  if (node_id == node_->run_id()) {
    return rb.Error("ERR replication loop: this server was asked to replicate from itself; point REPLICAOF at "
                    "another server");
  }
  std::string chain = Chain();
  if (("," + chain + ",").find("," + node_id + ",") != std::string::npos) {
    return rb.Error("ERR replication loop: the server asking to replicate is upstream of this one; point "
                    "REPLICAOF at its primary instead");
  }
  rb.SimpleString(chain);
}

void Manager::Psync(const std::shared_ptr<commands::ClientState>& client, const std::string& replid,
                    const std::string& offset, resp::ReplyBuilder& rb) {
  if (stopping_.load()) return rb.Error("ERR server is shutting down");
  int64_t want;
  if (!commands::ParseInt64(offset, &want)) return rb.Error("ERR value is not an integer or out of range");
  if (replica_.load()) {
    // A replica feeds replicas of its own only while it follows its primary
    // (as Redis): before that its data and ids may be about to be replaced
    // by a full copy, and a sub-replica would keep the old identity.
    std::lock_guard<std::mutex> l(client_mu_);
    if (!client_ || !client_->link_up()) {
      return rb.Error("NOMASTERLINK Can't SYNC while not connected with my master");
    }
  }
  ReplIds ids = this->ids();
  uint64_t last = node_->last_sequence();
  uint64_t have = want > 0 ? static_cast<uint64_t>(want - 1) : 0;
  bool partial = false;
  if (want > 0 && have <= last && replid != kNoId) {
    // The replica's records 1..have are ours when its history id is one
    // ours followed at least that far (as PSYNC2's replid/replid2, deeper).
    for (const auto& e : HistoryOf(ids, last)) {
      if (e.id == replid && have <= e.through) partial = true;
    }
  }
  if (partial && have < last) {
    uint64_t first = node_->log().first_sequence();
    if (first == 0 || first > have + 1) partial = false;  // trimmed away
  }
  // A replica ahead of us on our own history (we hold nothing past the
  // point where its data and ours part) that would otherwise refuse the copy
  // (it holds sync-class writes we lack: Sentinel promoted us from a stale
  // view of the offsets) sends us its extra records instead.
  History replica_history;
  bool backfill = false;
  static const Handshake kNone;
  const Handshake& hs = Handshake::Find(*client) ? *Handshake::Find(*client) : kNone;
  if (!partial && want > 0 && hs.backfill && !replica_.load() && DecodeHistory(hs.history, &replica_history)) {
    bool related = false;
    uint64_t common = CommonPrefix(HistoryOf(ids, last), replica_history, &related);
    backfill = related && common == last && replica_history.front().through > last;
  }
  ReplicaLink::Params p;
  p.ip = hs.ip.empty() ? Ip(client->addr) : hs.ip;
  p.listening_port = hs.listening_port;
  p.zstd = hs.capa_zstd;
  p.node_id = hs.node_id;
  p.full = !partial;
  p.after = have;
  if (partial) {
    p.reply = "+CONTINUE " + ids.replid + "\r\n";
  } else if (backfill) {
    p.full = false;
    p.backfill = true;
    p.after = last;
    p.replica_history = replica_history;
    p.reply = "+LEVEE-BACKFILL " + std::to_string(last) + "\r\n";
  } else if (replid != "?") {
    stats_.partial_syncs_err++;
  }
  logging::Info("repl", partial    ? "replica resyncs partially"
                        : backfill ? "replica is ahead of this primary; taking its records first"
                                   : "replica needs a full resync",
                {{"replica", p.ip + ":" + std::to_string(p.listening_port)},
                 {"asked_replid", replid},
                 {"asked_offset", want},
                 {"last_sequence", last}});
  client->handoff = [this, p](int fd, std::string unparsed) mutable {
    p.fd = fd;
    p.unparsed = std::move(unparsed);
    auto link = std::make_shared<ReplicaLink>(this, p);
    {
      std::lock_guard<std::mutex> l(links_mu_);
      if (stopping_.load()) return;  // the link's destructor closes fd
      links_.push_back(link);
    }
    link->Start();
  };
}

void Manager::Role(resp::ReplyBuilder& rb) {
  if (!replica_.load()) {
    std::vector<std::shared_ptr<ReplicaLink>> links;
    {
      std::lock_guard<std::mutex> l(links_mu_);
      links = links_;
    }
    size_t online = 0;
    for (auto& l : links) online += l->state() == ReplicaLink::State::kOnline;
    rb.ArrayHeader(3);
    rb.Bulk("master");
    rb.Integer(static_cast<int64_t>(node_->last_sequence()));
    rb.ArrayHeader(online);
    for (auto& l : links) {
      if (l->state() != ReplicaLink::State::kOnline) continue;
      rb.ArrayHeader(3);
      rb.Bulk(l->ip());
      rb.Bulk(std::to_string(l->port()));
      rb.Bulk(std::to_string(l->acked()));
    }
    return;
  }
  std::lock_guard<std::mutex> l(client_mu_);
  rb.ArrayHeader(5);
  rb.Bulk("slave");
  rb.Bulk(master_host_);
  rb.Integer(master_port_);
  rb.Bulk(client_ ? client_->state_name() : "connect");
  rb.Integer(static_cast<int64_t>(node_->last_sequence()));
}

std::string Manager::InfoSection() {
  std::string o = "# Replication\r\n";
  auto line = [&o](const std::string& k, const std::string& v) { o += k + ":" + v + "\r\n"; };
  auto num = [&line](const std::string& k, int64_t v) { line(k, std::to_string(v)); };
  int64_t now = NowMs();
  bool replica = replica_.load();
  line("role", replica ? "slave" : "master");
  uint64_t offset = node_->last_sequence();
  if (replica) {
    std::lock_guard<std::mutex> l(client_mu_);
    line("master_host", master_host_);
    num("master_port", master_port_);
    bool up = client_ && client_->link_up();
    line("master_link_status", up ? "up" : "down");
    int64_t io = client_ ? client_->last_io_ms() : 0;
    num("master_last_io_seconds_ago", io == 0 ? -1 : (now - io) / 1000);
    bool syncing = client_ && client_->state() == ReplicaClient::State::kTransfer;
    num("master_sync_in_progress", syncing ? 1 : 0);
    // While a full copy is owed, the data here is not the primary's history:
    // offer offset 1, as Redis does once it has discarded its cached
    // primary, so that Sentinel never promotes this replica over one that
    // follows (it promotes the highest slave_repl_offset; promoting a stale
    // or diverged copy would make the up-to-date replicas full-resync from
    // it and drop acknowledged writes).
    const int64_t offered = client_ && client_->copy_owed() ? 1 : static_cast<int64_t>(offset);
    num("slave_read_repl_offset", offered);
    num("slave_repl_offset", offered);
    if (syncing) {
      num("master_sync_total_bytes", static_cast<int64_t>(client_->transfer_total()));
      num("master_sync_read_bytes", static_cast<int64_t>(client_->transfer_done()));
    }
    if (!up) num("master_link_down_since_seconds", client_ ? (now - client_->link_down_since_ms()) / 1000 : -1);
    num("master_repl_lag_ms", client_ ? client_->lag_ms() : 0);
    if (client_ && !client_->last_error().empty() && !up) line("master_link_last_error", client_->last_error());
    if (client_ && client_->rollback_refused() > 0 && !up) {
      num("master_rollback_refused_records", static_cast<int64_t>(client_->rollback_refused()));
    }
    num("slave_priority", node_->config().GetInt("replica-priority"));
    num("slave_read_only", 1);
    num("replica_announced", 1);
  }
  std::vector<std::shared_ptr<ReplicaLink>> links;
  {
    std::lock_guard<std::mutex> l(links_mu_);
    links = links_;
  }
  int64_t connected = 0;
  for (auto& l : links) connected += !l->done();
  num("connected_slaves", connected);
  if (!replica && min_replicas_.load() > 0) num("min_slaves_good_slaves", GoodReplicas());
  int i = 0;
  for (auto& l : links) {
    if (l->done()) continue;
    o += "slave" + std::to_string(i++) + ":ip=" + l->ip() + ",port=" + std::to_string(l->port()) +
         ",state=" + l->state_name() + ",offset=" + std::to_string(l->acked()) +
         ",lag=" + std::to_string((now - l->last_ack_ms()) / 1000) + "\r\n";
  }
  ReplIds ids = this->ids();
  line("master_failover_state", "no-failover");
  line("master_replid", ids.replid);
  line("master_replid2", ids.replid2);
  num("master_repl_offset", static_cast<int64_t>(offset));
  num("second_repl_offset", ids.replid2 == kNoId ? -1 : static_cast<int64_t>(ids.second_offset + 1));
  num("repl_backlog_active", 1);
  num("repl_backlog_size", static_cast<int64_t>(node_->log().total_bytes()));
  uint64_t first = node_->log().first_sequence();
  num("repl_backlog_first_byte_offset", static_cast<int64_t>(first == 0 ? offset + 1 : first));
  num("repl_backlog_histlen", static_cast<int64_t>(first == 0 ? 0 : offset - first + 1));
  return o;
}

int64_t Manager::CountAcked(uint64_t sequence) {
  std::lock_guard<std::mutex> l(links_mu_);
  return CountAckedLocked(sequence);
}

int64_t Manager::CountAckedLocked(uint64_t sequence) {
  int64_t n = 0;
  for (auto& l : links_) n += l->state() == ReplicaLink::State::kOnline && l->acked() >= sequence;
  return n;
}

int64_t Manager::GoodReplicas() {
  int64_t now = NowMs(), max_lag = min_replicas_max_lag_s_.load() * 1000;
  std::lock_guard<std::mutex> l(links_mu_);
  int64_t good = 0;
  for (auto& lk : links_) good += lk->state() == ReplicaLink::State::kOnline && now - lk->last_ack_ms() <= max_lag;
  return good;
}

int64_t Manager::AckedBy(uint64_t sequence) { return CountAcked(sequence); }

std::string Manager::StaleRefusal() {
  if (!replica_.load() || node_->config().GetBool("replica-serve-stale-data")) return "";
  std::lock_guard<std::mutex> l(client_mu_);
  if (client_ && client_->link_up()) return "";
  return "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";
}

std::string Manager::ReadyRefusal() {
  if (!replica_.load()) return "";
  std::lock_guard<std::mutex> l(client_mu_);
  if (!client_ || !client_->link_up()) {
    return "replica: link to the primary " + master_host_ + ":" + std::to_string(master_port_) + " is down" +
           (client_ && !client_->last_error().empty() ? " (" + client_->last_error() + ")" : "");
  }
  int64_t lag = client_->lag_ms();
  int64_t max = node_->config().GetInt("replica-ready-max-lag-ms");
  if (lag > max) {
    return "replica: " + std::to_string(lag) + " ms behind the primary, more than replica-ready-max-lag-ms (" +
           std::to_string(max) + ")";
  }
  return "";
}

int64_t Manager::ReplicaLagMs() {
  std::lock_guard<std::mutex> l(client_mu_);
  return client_ ? client_->lag_ms() : 0;
}

void Manager::OnAppended(uint64_t) {
  std::lock_guard<std::mutex> l(links_mu_);
  for (auto& link : links_) link->Wake();
}

uint64_t Manager::RetainFrom() {
  uint64_t max_bytes = static_cast<uint64_t>(node_->config().GetInt("repl-backlog-max-mb")) << 20;
  if (node_->log().total_bytes() > max_bytes) return UINT64_MAX;  // past the bound: lagging replicas resync fully
  std::lock_guard<std::mutex> l(links_mu_);
  uint64_t need = UINT64_MAX;
  for (auto& link : links_) need = std::min(need, link->needs_from());
  return need;
}

std::string Manager::WriteRefusal() {
  int64_t min = min_replicas_.load();
  if (min <= 0) return "";
  if (GoodReplicas() >= min) return "";
  return "NOREPLICAS Not enough good replicas to write.";
}

bool Manager::IsSyncKey(std::string_view key) { return acks_.IsSyncKey(key); }

void Manager::HoldForAcks(std::unique_ptr<write::WriteJob> job) { acks_.HoldForAcks(std::move(job), replica_.load()); }

void Manager::HoldForWait(std::unique_ptr<write::WriteJob> job, uint64_t sequence, int64_t replicas,
                          int64_t timeout_ms) {
  acks_.HoldForWait(std::move(job), sequence, replicas, timeout_ms);
}

void Manager::OnAck(ReplicaLink*) { acks_.OnAck(); }

void Manager::Cron() {
  std::unique_lock<std::mutex> l(cron_mu_);
  int64_t last_reap = 0;
  while (!stopping_.load()) {
    cron_cv_.wait_for(l, std::chrono::milliseconds(10));
    if (stopping_.load()) break;
    l.unlock();
    acks_.Tick();
    int64_t now = NowMs();
    if (now - last_reap >= 200) {
      last_reap = now;
      std::vector<std::shared_ptr<ReplicaLink>> dead;
      {
        std::lock_guard<std::mutex> g(links_mu_);
        for (auto it = links_.begin(); it != links_.end();) {
          if ((*it)->done()) {
            dead.push_back(*it);
            it = links_.erase(it);
          } else {
            ++it;
          }
        }
      }
      for (auto& d : dead) d->Join();
      std::vector<std::unique_ptr<ReplicaClient>> finished;
      {
        std::lock_guard<std::mutex> g(client_mu_);
        for (auto it = retired_.begin(); it != retired_.end();) {
          if ((*it)->finished()) {
            finished.push_back(std::move(*it));
            it = retired_.erase(it);
          } else {
            ++it;
          }
        }
      }
      finished.clear();  // joins
    }
    l.lock();
  }
}

void Manager::RegisterMetrics(observe::Registry* r) {
  using observe::Family;
  using observe::SampleWriter;
  using observe::Type;
  auto counter = [r](const char* name, const char* help, std::atomic<uint64_t>* v) {
    r->Register(Family{name, help, Type::kCounter, {}, [v](SampleWriter& w) { w.Value({}, static_cast<double>(v->load())); }});
  };
  counter("levee_repl_full_syncs_total", "Full resyncs this server served to replicas.", &stats_.full_syncs);
  counter("levee_repl_partial_syncs_total", "Partial resyncs this server served to replicas.", &stats_.partial_syncs);
  counter("levee_repl_partial_syncs_refused_total",
          "PSYNCs that asked for a partial resync and got a full one (history differs or log trimmed).",
          &stats_.partial_syncs_err);
  counter("levee_repl_sent_bytes_total", "Bytes sent to replicas (records, checkpoints, heartbeats).", &stats_.bytes_sent);
  counter("levee_repl_received_bytes_total", "Bytes received from the primary.", &stats_.bytes_received);
  counter("levee_repl_replica_full_syncs_total", "Full resyncs this server did as a replica.", &stats_.replica_full_syncs);
  counter("levee_repl_rollbacks_refused_total",
          "Full resyncs this replica refused because they would discard sync-class writes it received from an "
          "earlier primary (replica-refuse-rollback).",
          &stats_.rollbacks_refused);
  counter("levee_repl_backfilled_records_total",
          "Records this primary took from a replica that was ahead of it on the same history (it would otherwise "
          "have refused a full resync that drops sync-class writes).",
          &stats_.backfilled_records);
  counter("levee_repl_replica_partial_syncs_total", "Partial resyncs this server did as a replica.",
          &stats_.replica_partial_syncs);
  counter("levee_repl_sync_writes_total", "Writes held until sync-replicas replicas acknowledged them.", &acks_.stats().sync_writes);
  counter("levee_repl_sync_timeouts_total", "Sync-class writes not acknowledged within sync-timeout-ms.",
          &acks_.stats().sync_timeouts);
  counter("levee_repl_sync_degraded_total",
          "Sync-class writes answered OK after a timeout because sync-timeout-policy is degrade.", &acks_.stats().sync_degraded);
  r->Register(Family{"levee_repl_sync_wait_seconds", "How long sync-class writes waited for replica acks.",
                     Type::kHistogram, acks_.stats().sync_wait_seconds.bounds(),
                     [this](SampleWriter& w) { w.Histogram({}, acks_.stats().sync_wait_seconds.Snapshot()); }});
  r->Register(Family{"levee_repl_role", "1 for the role this server has (master or replica).", Type::kGauge, {},
                     [this](SampleWriter& w) {
                       bool rep = replica_.load();
                       w.Value({{"role", "master"}}, rep ? 0 : 1);
                       w.Value({{"role", "replica"}}, rep ? 1 : 0);
                     }});
  r->Register(Family{"levee_repl_connected_replicas", "Replica links open now.", Type::kGauge, {},
                     [this](SampleWriter& w) {
                       std::lock_guard<std::mutex> l(links_mu_);
                       int64_t n = 0;
                       for (auto& lk : links_) n += !lk->done();
                       w.Value({}, static_cast<double>(n));
                     }});
  r->Register(Family{"levee_repl_replica_lag_operations", "Per replica: this server's last log sequence minus the sequence the replica acknowledged.",
                     Type::kGauge, {}, [this](SampleWriter& w) {
                       std::lock_guard<std::mutex> l(links_mu_);
                       uint64_t last = node_->last_sequence();
                       for (auto& lk : links_) {
                         if (lk->done()) continue;
                         w.Value({{"replica", lk->ip() + ":" + std::to_string(lk->port())}},
                                 static_cast<double>(last > lk->acked() ? last - lk->acked() : 0));
                       }
                     }});
  r->Register(Family{"levee_repl_replica_ack_age_seconds", "Per replica: seconds since its last ack.", Type::kGauge, {},
                     [this](SampleWriter& w) {
                       std::lock_guard<std::mutex> l(links_mu_);
                       int64_t now = NowMs();
                       for (auto& lk : links_) {
                         if (lk->done()) continue;
                         w.Value({{"replica", lk->ip() + ":" + std::to_string(lk->port())}},
                                 static_cast<double>(now - lk->last_ack_ms()) / 1000.0);
                       }
                     }});
  r->Register(Family{"levee_repl_lag_seconds",
                     "On a replica: how far its applied data is behind the primary's (0 when caught up or a primary).",
                     Type::kGauge, {}, [this](SampleWriter& w) { w.Value({}, static_cast<double>(ReplicaLagMs()) / 1000.0); }});
  r->Register(Family{"levee_repl_master_link_up", "On a replica: 1 while the link to the primary is up.", Type::kGauge,
                     {}, [this](SampleWriter& w) {
                       std::lock_guard<std::mutex> l(client_mu_);
                       w.Value({}, client_ && client_->link_up() ? 1 : 0);
                     }});
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

}  // namespace levee::repl
