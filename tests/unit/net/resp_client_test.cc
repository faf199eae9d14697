// The shared RESP client against a scripted server on loopback: what it
// sends, how it reads each reply type, and its errors.
#include "net/resp_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

namespace levee::net {
namespace {

// Accepts one connection, and for each expected request reads exactly that
// many bytes, records them and writes the scripted reply.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::pair<size_t, std::string>> script) : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 1);
    thread_ = std::thread([this] {
      int c = ::accept(fd_, nullptr, nullptr);
      for (auto& [n, reply] : script_) {
        std::string got;
        char buf[4096];
        while (got.size() < n) {
          ssize_t r = ::read(c, buf, std::min(sizeof(buf), n - got.size()));
          if (r <= 0) break;
          got.append(buf, static_cast<size_t>(r));
        }
        received.push_back(got);
        if (::write(c, reply.data(), reply.size()) < 0) break;
      }
      ::close(c);
    });
  }
  ~ScriptedServer() {
    Join();
    ::close(fd_);
  }
  // Waits until the script has run (then `received` is complete).
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> received;

 private:
  std::vector<std::pair<size_t, std::string>> script_;
  int fd_;
  int port_ = 0;
  std::thread thread_;
};

TEST(RespClientTest, EncodesACommandAsAnArrayOfBulkStrings) {
  EXPECT_EQ(EncodeCommand({"SET", "k", ""}), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
  std::string binary("a\r\nb\0c", 6);
  EXPECT_EQ(EncodeCommand({binary}), "*1\r\n$6\r\n" + binary + "\r\n");
}

TEST(RespClientTest, AuthenticatesFirstThenReadsEveryReplyType) {
  std::string auth = EncodeCommand({"AUTH", "pw"});
  std::string cmd = EncodeCommand({"X"});
  ScriptedServer s({{auth.size(), "+OK\r\n"},
                    {cmd.size(), "*5\r\n:42\r\n$5\r\nhe\r\no\r\n$-1\r\n*2\r\n+a\r\n-ERR b\r\n*-1\r\n"},
                    {cmd.size(), "-WRONGTYPE no\r\n"}});
  auto c = RespClient::Connect(s.address(), "pw");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto r = c.value()->Call({"X"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const RespValue& v = r.value();
  ASSERT_EQ(v.type, '*');
  ASSERT_EQ(v.elems.size(), 5u);
  EXPECT_EQ(v.elems[0].integer, 42);
  EXPECT_EQ(v.elems[1].str, "he\r\no") << "a bulk string is read by its length";
  EXPECT_TRUE(v.elems[2].is_nil());
  EXPECT_EQ(v.elems[3].elems[0].str, "a");
  EXPECT_TRUE(v.elems[3].elems[1].is_error());
  EXPECT_TRUE(v.elems[4].is_nil());
  auto e = c.value()->Call({"X"});
  ASSERT_TRUE(e.ok()) << "an error reply is a reply, not a failure";
  EXPECT_TRUE(e.value().is_error());
  EXPECT_EQ(e.value().str, "WRONGTYPE no");
  c.value().reset();
  s.Join();
  ASSERT_EQ(s.received.size(), 3u);
  EXPECT_EQ(s.received[0], auth);
}

TEST(RespClientTest, ARefusedPasswordNamesTheServer) {
  std::string auth = EncodeCommand({"AUTH", "bad"});
  ScriptedServer s({{auth.size(), "-WRONGPASS invalid username-password pair\r\n"}});
  auto c = RespClient::Connect(s.address(), "bad");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().ToString().find(s.address()), std::string::npos) << c.status().ToString();
  EXPECT_NE(c.status().ToString().find("WRONGPASS"), std::string::npos) << c.status().ToString();
}

TEST(RespClientTest, AServerThatHangsUpMidReplyIsAnErrorNamingIt) {
  std::string cmd = EncodeCommand({"X"});
  ScriptedServer s({{cmd.size(), "$10\r\nabc"}});
  auto c = RespClient::Connect(s.address(), "");
  ASSERT_TRUE(c.ok());
  auto r = c.value()->Call({"X"}, 2000);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().ToString().find(s.address()), std::string::npos) << r.status().ToString();
}

TEST(RespClientTest, AnAddressWithoutAPortIsRefused) {
  for (const std::string bad : {"localhost", "host:0", "host:70000", "host:x"}) {
    auto c = RespClient::Connect(bad, "");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().ToString().find("HOST:PORT"), std::string::npos) << c.status().ToString();
  }
}

}  // namespace
}  // namespace levee::net
