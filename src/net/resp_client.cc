#include "net/resp_client.h"

#include <cstdlib>

namespace levee::net {

std::string EncodeCommand(const std::vector<std::string>& args) {
  size_t n = 16;
  for (const auto& a : args) n += a.size() + 16;
  std::string out;
  out.reserve(n);
  out += "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) {
    out += "$" + std::to_string(a.size()) + "\r\n";
    out += a;
    out += "\r\n";
  }
  return out;
}

StatusOr<std::unique_ptr<RespClient>> RespClient::Connect(const std::string& server, const std::string& password) {
  size_t colon = server.rfind(':');
  if (colon == std::string::npos) return Status::InvalidArgument("the server address must be HOST:PORT, not '" + server + "'");
  int port = std::atoi(server.substr(colon + 1).c_str());
  if (port <= 0 || port > 65535) return Status::InvalidArgument("the server address must be HOST:PORT, not '" + server + "'");
  std::unique_ptr<RespClient> c(new RespClient());
  c->server_ = server;
  LEVEE_RETURN_IF_ERROR(Socket::Connect(server.substr(0, colon), port, 10000, &c->sock_));
  if (!password.empty()) {
    auto r = c->Call({"AUTH", password});
    if (!r.ok()) return r.status();
    if (r.value().is_error()) return Status::InvalidArgument("levee at " + server + " refused the password: " + r.value().str);
  }
  return c;
}

Status RespClient::ReadValue(RespValue* v, int timeout_ms) {
  std::string line;
  LEVEE_RETURN_IF_ERROR(sock_.ReadLine(timeout_ms, &line));
  if (line.empty()) return Status::IOError("empty reply line from " + server_);
  v->type = line[0];
  std::string rest = line.substr(1);
  switch (v->type) {
    case '+':
    case '-':
      v->str = rest;
      return Status::OK();
    case ':':
      v->integer = std::strtoll(rest.c_str(), nullptr, 10);
      return Status::OK();
    case '$': {
      int64_t n = std::strtoll(rest.c_str(), nullptr, 10);
      if (n < 0) {
        v->type = '_';
        return Status::OK();
      }
      std::string data;
      LEVEE_RETURN_IF_ERROR(sock_.ReadExact(static_cast<size_t>(n) + 2, timeout_ms, &data));
      data.resize(static_cast<size_t>(n));
      v->str = std::move(data);
      return Status::OK();
    }
    case '*': {
      int64_t n = std::strtoll(rest.c_str(), nullptr, 10);
      if (n < 0) {
        v->type = '_';
        return Status::OK();
      }
      v->elems.resize(static_cast<size_t>(n));
      for (auto& e : v->elems) LEVEE_RETURN_IF_ERROR(ReadValue(&e, timeout_ms));
      return Status::OK();
    }
    case '_':
      return Status::OK();
    default:
      return Status::IOError("unexpected reply type '" + std::string(1, v->type) + "' from " + server_);
  }
}

StatusOr<RespValue> RespClient::Call(const std::vector<std::string>& args, int timeout_ms) {
  LEVEE_RETURN_IF_ERROR(sock_.WriteAll(EncodeCommand(args), timeout_ms));
  RespValue v;
  Status st = ReadValue(&v, timeout_ms);
  if (!st.ok()) return Status::IOError("levee at " + server_ + ": " + st.message());
  return v;
}

}  // namespace levee::net
