// HttpServer: the operations endpoint (GET /healthz, GET /readyz).
//
// A deliberately small HTTP/1.0-style server: one request per connection,
// request head at most 8 KiB, 5 s to send it, at most 64 connections at
// once; anything else gets 400/404/405/503 and the connection closes. It runs
// on io thread 0 and never touches the writer, so a slow or hostile HTTP
// client can't block RESP traffic.
#pragma once

#include <asio.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace levee::server {

class HttpServer {
 public:
  struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
  };
  // Answers a GET/HEAD for path, given the request's Accept header (empty
  // if none); called on the io thread.
  using Handler = std::function<Response(const std::string& path, const std::string& accept)>;

  HttpServer(asio::io_context* io, Handler handler) : io_(io), handler_(std::move(handler)) {}
  Status Listen(const std::string& bind, uint16_t port);
  uint16_t port() const { return port_; }
  void Stop();
  // Destroys the acceptor; call before its io_context is destroyed.
  void CloseAcceptor() { acceptor_.reset(); }

 private:
  class Session;
  void Accept();
  asio::io_context* io_;
  Handler handler_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  uint16_t port_ = 0;
  std::atomic<int> sessions_{0};
};

}  // namespace levee::server
