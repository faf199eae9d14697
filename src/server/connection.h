// Connection: one client socket on one io thread.
//
// Reads into a buffer, parses every complete command, runs reads at once
// and gathers consecutive writes into one WriteJob for the writer. While a
// job is out, the connection parses no further (a later command must see
// the earlier writes, and replies must stay in order); the writer's
// completion appends the job's replies and resumes. Replies produced in one
// pass are sent with one write.
//
// Memory: an idle connection holds no read buffer. It waits for the socket
// to become readable, then reads into its io thread's shared buffer and
// parses from there; only bytes a pass leaves unparsed (a partial command,
// or commands behind a write that is out) are copied into the connection's
// own buffer.
//
// Limits: the query buffer (unparsed input + parsed arguments) and the output
// buffer (unsent replies) each have a bound; a client past one is closed.
// The output bound never counts the largest reply pending, so any value a
// client could store (proto-max-bulk-len) can be read back; before AUTH it is
// 1 KiB, as in Redis. A protocol error is answered with
// "-ERR Protocol error: ..." and closes.
//
// Threads: everything runs on the owning io_context, except Kill(), which
// posts there.
#pragma once

#include <asio.hpp>
#include <memory>
#include <string>
#include <vector>

#include "commands/client.h"
#include "commands/spec.h"
#include "resp/parser.h"

namespace levee::write {
struct WriteJob;
}

namespace levee::server {

class Server;

// Whether a client at this address is on this host's loopback interface
// (127.0.0.0/8, ::1, or 127.x mapped into IPv6): protected mode and
// enable-debug-command local trust these.
bool IsLoopback(const asio::ip::address& a);

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server* server, asio::ip::tcp::socket socket);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Start();
  asio::any_io_executor executor() { return socket_.get_executor(); }

 private:
  void DoRead();
  void OnReadable(const asio::error_code& ec);
  // Moves input a pass left unparsed from the shared buffer into in_.
  void KeepUnparsed();
  // After a failed AUTH: no further command is read for a while.
  void PauseAfterFailedAuth();
  void Process();
  // Handles one parsed command; false when processing must pause.
  bool Dispatch(std::vector<std::string>& args);
  // spec: the command's, or nullptr for an unknown command.
  bool RoutesToWriter(const commands::Spec* spec, const std::vector<std::string>& args) const;
  void RunInline(const commands::Spec* spec, std::vector<std::string>& args);
  void SubmitPending();
  void OnJobDone(write::WriteJob& job);
  // s is one reply (or one writer job's replies, or one pushed message).
  void AppendOutput(std::string_view s);
  void Flush();
  void OnWritten(const asio::error_code& ec, size_t n);
  void Close(const std::string& why);
  // Gives the socket to replication (after PSYNC).
  void HandOff();

  Server* server_;
  asio::ip::tcp::socket socket_;
  std::shared_ptr<commands::ClientState> state_;
  resp::RequestParser parser_;
  std::string in_;         // storage; bytes [in_pos_, in_len_) are received, unparsed
  size_t in_pos_ = 0;
  size_t in_len_ = 0;
  // During one pass over the io thread's shared read buffer: its unparsed
  // bytes [ext_pos_, ext_len_); null otherwise.
  const char* ext_ = nullptr;
  size_t ext_pos_ = 0, ext_len_ = 0;
  std::string out_;        // replies not yet handed to the socket
  std::string sending_;    // replies being written
  size_t largest_reply_ = 0;  // the largest single reply in out_ and sending_ (exempt from the output limit)
  std::unique_ptr<asio::steady_timer> auth_pause_;  // made on the first failed AUTH
  bool writing_ = false;
  bool reading_ = false;
  bool closed_ = false;
  bool waiting_ = false;   // a WriteJob is out
  bool protocol_error_ = false;
  std::unique_ptr<write::WriteJob> pending_;            // writes gathered, not yet submitted
  std::vector<std::string> held_;                // a command parsed while a job was out
  bool has_held_ = false;
};

}  // namespace levee::server
