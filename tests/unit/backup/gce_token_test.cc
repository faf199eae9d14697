#include "backup/gce_token.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <gtest/gtest.h>
#include <string>
#include <thread>
#include <vector>

namespace levee::backup {
namespace {

using Clock = std::chrono::steady_clock;

TEST(ParseTokenResponse, ReadsTokenAndExpiry) {
  auto now = Clock::now();
  auto t = ParseTokenResponse(R"({"access_token":"ya29.abc","expires_in":3599,"token_type":"Bearer"})", now);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t.value().value, "ya29.abc");
  EXPECT_EQ(t.value().expires, now + std::chrono::seconds(3599));
}

TEST(ParseTokenResponse, RefusesBadAnswersWithoutEchoingThem) {
  auto now = Clock::now();
  for (const char* body : {"", "not json", "[]", R"({"expires_in":10})", R"({"access_token":"","expires_in":10})",
                           R"({"access_token":"secret","expires_in":0})", R"({"access_token":"secret","expires_in":"10"})",
                           R"({"access_token":"secret","expires_in":10,"token_type":"MAC"})"}) {
    auto t = ParseTokenResponse(body, now);
    ASSERT_FALSE(t.ok()) << body;
    EXPECT_NE(t.status().message().find("token answer"), std::string::npos) << t.status().message();
    EXPECT_EQ(t.status().message().find("secret"), std::string::npos) << t.status().message();
  }
}

// A one-connection-at-a-time HTTP server on 127.0.0.1 that hands each
// request's head to `answer` and writes back what it returns.
class FakeMetadataServer {
 public:
  explicit FakeMetadataServer(std::function<std::string(const std::string&)> answer) : answer_(std::move(answer)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(fd_, 8);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeMetadataServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }

 private:
  void Serve() {
    while (!stop_) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        head.append(buf, n);
      }
      requests_++;
      std::string reply = answer_(head);
      (void)!write(c, reply.data(), reply.size());
      close(c);
    }
  }

  std::function<std::string(const std::string&)> answer_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

std::string Http(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// As the real metadata server: the token path only, and only with the
// Metadata-Flavor header (which stops a browser-style SSRF from reading it).
std::function<std::string(const std::string&)> Metadata(int expires_in) {
  auto issued = std::make_shared<int>(0);
  return [issued, expires_in](const std::string& head) {
    if (head.rfind("GET /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.1\r\n", 0) != 0) {
      return Http(404, "not found");
    }
    if (head.find("\r\nMetadata-Flavor: Google\r\n") == std::string::npos) return Http(403, "missing flavor");
    return Http(200, R"({"access_token":"tok)" + std::to_string(++*issued) + R"(","expires_in":)" +
                         std::to_string(expires_in) + R"(,"token_type":"Bearer"})");
  };
}

TEST(GceTokenSource, FetchesOnceAndReusesUntilInvalidated) {
  FakeMetadataServer server(Metadata(3599));
  GceTokenSource source(server.host());
  auto t1 = source.Token();
  ASSERT_TRUE(t1.ok()) << t1.status().message();
  EXPECT_EQ(t1.value(), "tok1");
  EXPECT_EQ(source.Token().value(), "tok1");
  EXPECT_EQ(server.requests(), 1);
  source.Invalidate("some-older-token");  // not the cached one: kept
  EXPECT_EQ(source.Token().value(), "tok1");
  source.Invalidate("tok1");
  EXPECT_EQ(source.Token().value(), "tok2");
  EXPECT_EQ(server.requests(), 2);
  EXPECT_EQ(source.fetches(), 2u);
}

TEST(GceTokenSource, RefetchesATokenAboutToExpire) {
  FakeMetadataServer server(Metadata(30));  // inside the one-minute margin
  GceTokenSource source(server.host());
  EXPECT_EQ(source.Token().value(), "tok1");
  EXPECT_EQ(source.Token().value(), "tok2");
}

TEST(GceTokenSource, ConcurrentCallersShareOneFetch) {
  FakeMetadataServer server(Metadata(3599));
  GceTokenSource source(server.host());
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; i++) threads.emplace_back([&] { EXPECT_EQ(source.Token().value(), "tok1"); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(server.requests(), 1);
}

TEST(GceTokenSource, NoIdentityIsAClearNonRetryableError) {
  FakeMetadataServer server([](const std::string&) { return Http(404, "service account not found"); });
  GceTokenSource source(server.host());
  auto t = source.Token();
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(t.status().message().find("HTTP 404"), std::string::npos) << t.status().message();
  EXPECT_NE(t.status().message().find("Workload Identity"), std::string::npos) << t.status().message();
  EXPECT_NE(t.status().message().find("HMAC"), std::string::npos) << t.status().message();
}

TEST(GceTokenSource, ServerTroubleAndUnreachableAreRetryable) {
  {
    FakeMetadataServer server([](const std::string&) { return Http(503, "busy"); });
    GceTokenSource source(server.host());
    auto t = source.Token();
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), Status::Code::kIOError);
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);  // a port nobody listens on
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  GceTokenSource source("127.0.0.1:" + std::to_string(ntohs(a.sin_port)));
  auto t = source.Token();
  close(fd);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Status::Code::kIOError);
  EXPECT_NE(t.status().message().find("cannot be reached"), std::string::npos) << t.status().message();
}

TEST(GceTokenSource, HostComesFromGceMetadataHost) {
  setenv("GCE_METADATA_HOST", "169.254.169.254:8080", 1);
  EXPECT_EQ(GceTokenSource().host(), "169.254.169.254:8080");
  unsetenv("GCE_METADATA_HOST");
  EXPECT_EQ(GceTokenSource().host(), "metadata.google.internal");
}

}  // namespace
}  // namespace levee::backup
