// A small blocking Redis-protocol client: one request, then its reply, on a
// net::Socket with a deadline. The CLI talks to a running levee with it
// (BACKUP OPEN/READ/STATUS); the replica's link to its primary encodes its
// commands with EncodeCommand (its replies are a stream, read by
// repl/replica.cc itself).
//
// Threads: a client belongs to one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "net/socket.h"

namespace levee::net {

// A command as a RESP array of bulk strings.
std::string EncodeCommand(const std::vector<std::string>& args);

// A reply: its RESP2 type and value.
struct RespValue {
  char type = 0;  // '+', '-', ':', '$', '*', '_' (nil)
  std::string str;
  int64_t integer = 0;
  std::vector<RespValue> elems;
  bool is_error() const { return type == '-'; }
  bool is_nil() const { return type == '_'; }
};

class RespClient {
 public:
  // host:port; password may be empty (else AUTH first). Errors name the
  // server.
  static StatusOr<std::unique_ptr<RespClient>> Connect(const std::string& server, const std::string& password);
  // Sends a command and reads its reply; a -ERR reply is returned, not an error.
  StatusOr<RespValue> Call(const std::vector<std::string>& args, int timeout_ms = 60000);

 private:
  Status ReadValue(RespValue* v, int timeout_ms);
  Socket sock_;
  std::string server_;
};

}  // namespace levee::net
