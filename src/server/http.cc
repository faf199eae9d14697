#include "server/http.h"

namespace levee::server {
namespace {

constexpr size_t kMaxHead = 8192;
constexpr int kMaxSessions = 64;

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
  }
  return "Error";
}

}  // namespace

class HttpServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer* owner, asio::ip::tcp::socket s)
      : owner_(owner), socket_(std::move(s)), timer_(socket_.get_executor()) {}
  ~Session() { owner_->sessions_--; }

  void Start() {
    auto self = shared_from_this();
    timer_.expires_after(std::chrono::seconds(5));
    timer_.async_wait([self](const asio::error_code& ec) {
      if (!ec) {
        asio::error_code ignored;
        self->socket_.close(ignored);
      }
    });
    Read();
  }

 private:
  void Read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(buf_), [self](const asio::error_code& ec, size_t n) {
      if (ec) return;
      self->head_.append(self->buf_, n);
      size_t end = self->head_.find("\r\n\r\n");
      if (end == std::string::npos) end = self->head_.find("\n\n");
      if (end == std::string::npos) {
        if (self->head_.size() > kMaxHead) return self->Reply(400, "text/plain", "request head too large\n", false);
        return self->Read();
      }
      self->Handle();
    });
  }

  void Handle() {
    size_t sp1 = head_.find(' ');
    size_t sp2 = sp1 == std::string::npos ? sp1 : head_.find(' ', sp1 + 1);
    size_t eol = head_.find_first_of("\r\n");
    if (sp1 == std::string::npos || sp2 == std::string::npos || sp2 > eol) {
      return Reply(400, "text/plain", "malformed request line\n", false);
    }
    std::string method = head_.substr(0, sp1);
    std::string path = head_.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t q = path.find('?');
    if (q != std::string::npos) path.resize(q);
    if (method != "GET" && method != "HEAD") {
      return Reply(405, "text/plain", "method not allowed: use GET or HEAD\n", false, "Allow: GET, HEAD\r\n");
    }
    Response r = owner_->handler_(path, Header("accept"));
    Reply(r.status, r.content_type, r.body, method == "HEAD");
  }

  // The value of a request header (name in lower case), or "".
  std::string Header(const std::string& name) const {
    size_t pos = head_.find('\n');
    while (pos != std::string::npos && pos + 1 < head_.size()) {
      size_t end = head_.find('\n', pos + 1);
      std::string line = head_.substr(pos + 1, end == std::string::npos ? std::string::npos : end - pos - 1);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string key = line.substr(0, colon);
        for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (key == name) {
          std::string v = line.substr(colon + 1);
          while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
          while (!v.empty() && (v.back() == '\r' || v.back() == ' ')) v.pop_back();
          return v;
        }
      }
      pos = end;
    }
    return "";
  }

  void Reply(int status, const std::string& type, const std::string& body, bool head_only,
             const std::string& extra = "") {
    out_ = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\nContent-Type: " + type +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n" + extra + "\r\n";
    if (!head_only) out_ += body;
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(out_), [self](const asio::error_code&, size_t) {
      asio::error_code ignored;
      self->socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      self->socket_.close(ignored);
      self->timer_.cancel();
    });
  }

  HttpServer* owner_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  char buf_[2048];
  std::string head_, out_;
};

Status HttpServer::Listen(const std::string& bind, uint16_t port) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(bind, ec);
  if (ec) return Status::InvalidArgument("bind address '" + bind + "' is not an IP address");
  acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(*io_);
  asio::ip::tcp::endpoint ep(addr, port);
  acceptor_->open(ep.protocol(), ec);
  if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_->bind(ep, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::IOError("cannot listen for HTTP on " + bind + ":" + std::to_string(port) + ": " + ec.message() +
                           " (set http-port to a free port)");
  }
  port_ = acceptor_->local_endpoint().port();
  Accept();
  return Status::OK();
}

void HttpServer::Accept() {
  acceptor_->async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket s) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      if (sessions_.load() >= kMaxSessions) {
        asio::error_code ignored;
        s.close(ignored);
      } else {
        sessions_++;
        std::make_shared<Session>(this, std::move(s))->Start();
      }
    }
    Accept();
  });
}

void HttpServer::Stop() {
  if (acceptor_) {
    asio::error_code ec;
    acceptor_->close(ec);
  }
}

}  // namespace levee::server
