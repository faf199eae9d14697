#include "server/connection.h"

#include <chrono>
#include <cstring>

#include "common/clock.h"
#include "common/logging.h"
#include "commands/args.h"
#include "commands/instrument.h"
#include "server/server.h"

namespace levee::server {
namespace {


constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxReadChunk = 1 << 20;
// Output an unauthenticated client may leave unread (Redis' figure): a
// client that never reads and never authenticates must not grow memory.
constexpr size_t kUnauthOutputLimit = 1024;
// Each failed AUTH holds the connection's next command back this long.
constexpr auto kFailedAuthPause = std::chrono::milliseconds(100);

// Each io thread reads into one buffer shared by its connections: an idle
// connection holds none.
char* SharedReadBuffer() {
  thread_local std::unique_ptr<char[]> buf(new char[kReadChunk]);
  return buf.get();
}

std::string Endpoint(const asio::ip::tcp::endpoint& e) {
  std::string a = e.address().to_string();
  if (e.address().is_v6()) a = "[" + a + "]";
  return a + ":" + std::to_string(e.port());
}

}  // namespace

bool IsLoopback(const asio::ip::address& a) {
  if (a.is_v4()) return (a.to_v4().to_uint() >> 24) == 127;
  const auto v6 = a.to_v6();
  if (v6.is_loopback()) return true;
  return v6.is_v4_mapped() && (asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_uint() >> 24) == 127;
}

Connection::Connection(Server* server, asio::ip::tcp::socket socket)
    : server_(server), socket_(std::move(socket)), parser_(server->limits()) {
  state_ = std::make_shared<commands::ClientState>();
  state_->id = server_->NextClientId();
  asio::error_code ec;
  auto remote = socket_.remote_endpoint(ec);
  if (!ec) state_->addr = Endpoint(remote);
  auto local = socket_.local_endpoint(ec);
  if (!ec) state_->laddr = Endpoint(local);
  state_->created_ms = NowMs();
  state_->last_active_ms = state_->created_ms;
  state_->local = !ec && IsLoopback(remote.address());
  state_->authenticated = !server_->RequiresPassword();
  parser_.set_authenticated(state_->authenticated);
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);
}

Connection::~Connection() { server_->ClientClosed(); }

void Connection::Start() {
  std::weak_ptr<Connection> weak = shared_from_this();
  auto executor = socket_.get_executor();
  state_->kill = [weak, executor] {
    asio::post(executor, [weak] {
      if (auto self = weak.lock()) self->Close("killed by CLIENT KILL");
    });
  };
  state_->deliver = [weak, executor](const std::string& bytes) {
    asio::post(executor, [weak, bytes] {
      auto self = weak.lock();
      if (!self || self->closed_) return;
      self->AppendOutput(bytes);
      self->Flush();
    });
  };
  server_->clients().Add(state_);
  DoRead();
}

void Connection::DoRead() {
  if (closed_ || reading_ || state_->handoff) return;
  reading_ = true;
  auto self = shared_from_this();
  socket_.async_wait(asio::ip::tcp::socket::wait_read,
                     [this, self](const asio::error_code& ec) { OnReadable(ec); });
}

void Connection::OnReadable(const asio::error_code& wait_ec) {
  reading_ = false;
  if (closed_) return;
  if (wait_ec) {
    Close(wait_ec.message());
    return;
  }
  size_t chunk = std::min(std::max(kReadChunk, parser_.bulk_bytes_wanted()), kMaxReadChunk);
  // The shared buffer when nothing is left over from before and no large
  // bulk is coming; else the connection's own buffer, which keeps the bytes.
  const bool shared = in_pos_ == in_len_ && chunk == kReadChunk;
  char* dst;
  if (shared) {
    in_pos_ = in_len_ = 0;
    dst = SharedReadBuffer();
  } else {
    // Move the unparsed bytes to the front once the parsed prefix dominates.
    if (in_pos_ > 0 && (in_pos_ == in_len_ || in_pos_ > in_len_ / 2)) {
      std::memmove(in_.data(), in_.data() + in_pos_, in_len_ - in_pos_);
      in_len_ -= in_pos_;
      in_pos_ = 0;
    }
    if (in_.size() < in_len_ + chunk) in_.resize(in_len_ + chunk);
    dst = in_.data() + in_len_;
  }
  asio::error_code ec;
  size_t n = socket_.read_some(asio::buffer(dst, chunk), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    DoRead();
    return;
  }
  if (ec) {
    Close(ec == asio::error::eof ? "" : ec.message());
    return;
  }
  if (shared) {
    ext_ = dst;
    ext_pos_ = 0;
    ext_len_ = n;
  } else {
    in_len_ += n;
  }
  server_->stats().net_input_bytes += n;
  state_->last_active_ms = NowMs();
  Process();  // leaves no byte in the shared buffer (KeepUnparsed)
  size_t qbuf = in_len_ - in_pos_ + parser_.buffered_bytes();
  state_->qbuf = qbuf;
  if (closed_) return;
  if (qbuf > server_->query_buffer_limit()) {
    server_->stats().query_limit_disconnects++;
    logging::Warn("net", "closing client: query buffer limit reached (client-query-buffer-limit)",
                  {{"client", state_->addr}, {"qbuf", qbuf}});
    Close("query buffer limit");
    return;
  }
  // Drop the connection's own buffer once it is drained: an idle
  // connection keeps none.
  if (in_pos_ == in_len_) {
    in_pos_ = in_len_ = 0;
    if (!in_.empty()) std::string().swap(in_);
  }
  if (!protocol_error_) DoRead();
}

void Connection::KeepUnparsed() {
  if (ext_ == nullptr) return;
  if (ext_pos_ < ext_len_) {
    // in_ is empty whenever the shared buffer is used.
    in_.assign(ext_ + ext_pos_, ext_len_ - ext_pos_);
    in_pos_ = 0;
    in_len_ = in_.size();
  }
  ext_ = nullptr;
  ext_pos_ = ext_len_ = 0;
}

void Connection::Process() {
  // The engine and writer stay put while this pass uses them (a replica's
  // full resync swaps them under the exclusive lock).
  std::shared_lock<std::shared_mutex> data_lock(server_->data_mutex());
  while (!closed_ && !waiting_ && !protocol_error_ && !state_->close_after_reply && !state_->handoff) {
    if (has_held_) {
      has_held_ = false;
      std::vector<std::string> args = std::move(held_);
      if (!Dispatch(args)) break;
      continue;
    }
    size_t consumed = 0;
    const bool ext = ext_ != nullptr;
    auto r = parser_.Parse(ext ? std::string_view(ext_ + ext_pos_, ext_len_ - ext_pos_)
                               : std::string_view(in_.data() + in_pos_, in_len_ - in_pos_),
                           &consumed);
    (ext ? ext_pos_ : in_pos_) += consumed;
    if (r == resp::RequestParser::Result::kNeedMore) break;
    if (r == resp::RequestParser::Result::kError) {
      SubmitPending();  // writes parsed before the error still run, in order
      server_->stats().protocol_errors++;
      protocol_error_ = true;
      held_ = {};
      // Replied after the pending job (if any) completes, to keep order.
      if (!waiting_) {
        AppendOutput("-ERR Protocol error: " + parser_.error() + "\r\n");
        state_->close_after_reply = true;
      }
      static logging::RateLimit limit(10);
      limit.Log(logging::Severity::kWarning, "net", "protocol error; closing client",
                {{"client", state_->addr}, {"error", parser_.error()}});
      break;
    }
    auto& args = parser_.args();
    if (args.empty()) continue;
    if (!Dispatch(args)) break;
  }
  if (!waiting_) SubmitPending();
  data_lock.unlock();
  KeepUnparsed();
  Flush();
}

bool Connection::RoutesToWriter(const commands::Spec* spec, const std::vector<std::string>& args) const {
  if (spec == nullptr || !(spec->flags & (commands::kWrite | commands::kOnWriter | commands::kLogged))) return false;
  if (!spec->ArityOk(args.size())) return false;
  if (!state_->authenticated && !(spec->flags & commands::kNoAuth)) return false;
  if (spec->flags & commands::kDisabled) return false;
  if (state_->in_multi && !(spec->flags & commands::kNoQueue)) return false;
  return true;
}

bool Connection::Dispatch(std::vector<std::string>& args) {
  state_->commands++;
  server_->stats().commands_processed++;
  const commands::Spec* spec = server_->table().Find(args[0]);  // the one lookup per command
  if (spec != nullptr && !(spec->flags & commands::kPubSubContext) && state_->protocol.load() == 2 &&
      state_->subscribed()) {
    if (pending_) {
      held_ = std::move(args);
      has_held_ = true;
      SubmitPending();
      return false;
    }
    resp::ReplyBuilder rb(&out_, 2);
    const size_t before = out_.size();
    rb.Error("ERR Can't execute '" + spec->name +
             "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
    commands::RecordRejected(*server_, spec, std::string_view(out_).substr(before));
    return true;
  }
  if (RoutesToWriter(spec, args)) {
    if (!pending_) {
      pending_ = std::make_unique<write::WriteJob>();
      pending_->client = state_;
    }
    pending_->commands.push_back(std::move(args));
    pending_->specs.push_back(spec);
    // EXEC and WATCH change what the next command may do: send them alone.
    if (spec->flags & commands::kOnWriter) {
      SubmitPending();
      return false;
    }
    return true;
  }
  if (pending_) {
    // Replies must stay in order and reads must see earlier writes.
    held_ = std::move(args);
    has_held_ = true;
    SubmitPending();
    return false;
  }
  RunInline(spec, args);
  return !waiting_;
}

void Connection::RunInline(const commands::Spec* spec, std::vector<std::string>& args) {
  resp::ReplyBuilder rb(&out_, state_->protocol);
  const size_t before = out_.size();
  if (spec) state_->last_cmd.store(spec, std::memory_order_relaxed);
  if (spec == nullptr) {
    std::string msg = "ERR unknown command '" + args[0].substr(0, 128) + "', with args beginning with: ";
    for (size_t i = 1; i < args.size() && i < 8; i++) msg += "'" + args[i].substr(0, 128) + "' ";
    if (state_->in_multi) state_->multi_error = true;
    rb.Error(msg);
    commands::RecordRejected(*server_, nullptr, std::string_view(out_).substr(before));
  } else if (!state_->authenticated && !(spec->flags & commands::kNoAuth)) {
    rb.Error(commands::kErrNoAuth);
    commands::RecordRejected(*server_, spec, std::string_view(out_).substr(before));
  } else if (spec->flags & commands::kDisabled) {
    if (state_->in_multi) state_->multi_error = true;
    rb.Error(commands::DisabledError(args[0]));
    commands::RecordRejected(*server_, spec, std::string_view(out_).substr(before));
  } else if (!spec->ArityOk(args.size())) {
    if (state_->in_multi) state_->multi_error = true;
    rb.Error(commands::WrongArgsError(args[0]));
    commands::RecordRejected(*server_, spec, std::string_view(out_).substr(before));
  } else if (state_->in_multi && !(spec->flags & commands::kNoQueue)) {
    state_->queued.push_back(std::move(args));
    state_->queued_count = state_->queued.size();
    rb.SimpleString("QUEUED");
  } else if (std::string stale = (spec->flags & commands::kReadOnly) ? server_->repl().StaleRefusal() : "";
             !stale.empty()) {
    rb.Error(stale);
    commands::RecordRejected(*server_, spec, std::string_view(out_).substr(before));
  } else {
    commands::CommandContext ctx{state_, *server_, server_->read_view(), nullptr, rb, NowMs()};
    auto start = std::chrono::steady_clock::now();
    spec->handler(ctx, args);
    commands::RecordCommand(*server_, *spec, args, *state_, start, std::string_view(out_).substr(before));
    if (state_->authenticated) parser_.set_authenticated(true);
    if (state_->auth_failed) {
      state_->auth_failed = false;
      PauseAfterFailedAuth();
    }
  }
  largest_reply_ = std::max(largest_reply_, out_.size() - before);
}

void Connection::PauseAfterFailedAuth() {
  // Guessing passwords costs 100 ms per guess on a connection (Redis does
  // not slow them at all); the reply itself goes out at once.
  if (!auth_pause_) auth_pause_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
  waiting_ = true;
  auth_pause_->expires_after(kFailedAuthPause);
  auto self = shared_from_this();
  auth_pause_->async_wait([this, self](const asio::error_code&) {
    waiting_ = false;
    if (closed_) return;
    Process();
    if (!closed_ && !reading_ && !protocol_error_) DoRead();
  });
}

void Connection::HandOff() {
  // Replies before PSYNC are written; no read is outstanding (Process runs
  // between reads, and DoRead starts none once a hand-off is set).
  auto handoff = std::move(state_->handoff);
  state_->handoff = nullptr;
  std::string unparsed(in_.data() + in_pos_, in_len_ - in_pos_);
  asio::error_code ec;
  socket_.non_blocking(false, ec);
  int fd = socket_.release(ec);
  closed_ = true;
  server_->clients().UnwatchAll(state_.get());
  server_->pubsub().UnsubscribeAll(state_.get());
  server_->clients().Remove(state_->id);
  if (ec || fd < 0) {
    logging::Warn("repl", "could not hand the replica's socket over", {{"error", ec.message()}});
    return;
  }
  handoff(fd, std::move(unparsed));
}

void Connection::SubmitPending() {
  if (!pending_) return;
  auto job = std::move(pending_);
  waiting_ = true;
  state_->last_cmd.store(job->specs.back(), std::memory_order_relaxed);
  // A strong reference: the job may be the only thing keeping this
  // connection alive (no read outstanding after a protocol error), and its
  // replies must still be delivered.
  auto self = shared_from_this();
  job->done = [self](std::unique_ptr<write::WriteJob> j) {
    std::shared_ptr<write::WriteJob> sj(j.release());  // asio handlers must be copyable
    asio::post(self->socket_.get_executor(), [self, sj] { self->OnJobDone(*sj); });
  };
  server_->writer().Submit(std::move(job));
}

void Connection::OnJobDone(write::WriteJob& job) {
  waiting_ = false;
  if (closed_) return;
  AppendOutput(job.reply);
  if (protocol_error_) {
    AppendOutput("-ERR Protocol error: " + parser_.error() + "\r\n");
    state_->close_after_reply = true;
    Flush();
    return;
  }
  Process();
  if (!closed_ && !reading_ && !protocol_error_) DoRead();
}

void Connection::AppendOutput(std::string_view s) {
  out_.append(s);
  largest_reply_ = std::max(largest_reply_, s.size());
}

void Connection::Flush() {
  if (closed_) return;
  size_t pending = out_.size() + sending_.size();
  state_->omem = pending;
  // The largest reply pending is not counted: one reply is never too big by
  // itself (a value the server let in must be readable); what is limited is
  // what a client leaves unread besides it.
  const bool authenticated = state_->authenticated;
  const size_t limit = authenticated ? server_->output_buffer_limit() : kUnauthOutputLimit;
  if (pending - std::min(pending, largest_reply_) > limit) {
    server_->stats().output_limit_disconnects++;
    static logging::RateLimit log_limit(10);
    log_limit.Log(logging::Severity::kWarning, "net",
                  authenticated ? "closing client: output buffer limit reached (client-output-buffer-limit)"
                                : "closing unauthenticated client: it left more than 1 KiB of replies unread",
                  {{"client", state_->addr}, {"omem", pending}});
    Close("output buffer limit");
    return;
  }
  if (writing_) return;
  if (out_.empty()) {
    if (state_->close_after_reply) Close("");
    else if (state_->handoff) HandOff();
    return;
  }
  sending_.swap(out_);
  out_.clear();
  writing_ = true;
  auto self = shared_from_this();
  asio::async_write(socket_, asio::buffer(sending_),
                    [this, self](const asio::error_code& ec, size_t n) { OnWritten(ec, n); });
}

void Connection::OnWritten(const asio::error_code& ec, size_t n) {
  writing_ = false;
  if (closed_) return;
  if (ec) {
    Close(ec.message());
    return;
  }
  server_->stats().net_output_bytes += n;
  sending_.clear();
  if (sending_.capacity() > kReadChunk) std::string().swap(sending_);
  if (out_.empty()) largest_reply_ = 0;
  state_->omem = out_.size();
  Flush();
}

void Connection::Close(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  (void)why;
  asio::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  server_->clients().UnwatchAll(state_.get());
  server_->pubsub().UnsubscribeAll(state_.get());
  server_->clients().Remove(state_->id);
}

}  // namespace levee::server
