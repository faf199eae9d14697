// In-process command tests: real Engine, handlers called directly, a clock
// the test sets (TTL tests without sleeping).
#include <gtest/gtest.h>

#include "commands/docs.h"
#include "harness.h"

namespace levee::commands {
namespace {

std::string Bulk(const std::string& s) { return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n"; }
const std::string kOk = "+OK\r\n", kNil = "$-1\r\n";
std::string Int(int64_t n) { return ":" + std::to_string(n) + "\r\n"; }

TEST(StringCommands, SetOptions) {
  Harness h;
  EXPECT_EQ(h.Run({"SET", "k", "v"}), kOk);
  EXPECT_EQ(h.Run({"SET", "k", "w", "NX"}), kNil);
  EXPECT_EQ(h.Run({"SET", "k", "w", "XX", "GET"}), Bulk("v"));
  EXPECT_EQ(h.Run({"SET", "missing", "w", "XX"}), kNil);
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("w"));
  EXPECT_EQ(h.Run({"SET", "k", "v", "NX", "XX"}), "-ERR syntax error\r\n");
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "0"}), "-ERR invalid expire time in 'set' command\r\n");
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "abc"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(h.Run({"SET", "k", "v", "EX", "10", "PX", "100"}), "-ERR syntax error\r\n");
  EXPECT_EQ(h.Run({"SET", "k", "v", "PX", "1500"}), kOk);
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(1500));
  EXPECT_EQ(h.Run({"SET", "k", "v2", "KEEPTTL"}), kOk);
  EXPECT_EQ(h.Run({"PTTL", "k"}), Int(1500));
  EXPECT_EQ(h.Run({"SET", "k", "v3"}), kOk);
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(-1));
  EXPECT_EQ(h.Run({"SET", "k", "v", "EXAT", std::to_string(h.now_ms / 1000 + 100)}), kOk);
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(100));
}

TEST(ServerCommands, ShutdownStopsWithoutAReplyAndRefusesWhatItCannotDo) {
  Harness h;
  EXPECT_EQ(h.Run({"SHUTDOWN", "ABORT"}), "-ERR No shutdown in progress.\r\n");
  EXPECT_EQ(h.Run({"SHUTDOWN", "LATER"}), "-ERR syntax error\r\n");
  EXPECT_EQ(h.shutdown_requested, 0);
  EXPECT_EQ(h.Run({"SHUTDOWN", "NOSAVE", "NOW"}), "");  // as Redis: the connection just closes
  EXPECT_EQ(h.shutdown_requested, 1);
  EXPECT_TRUE(h.client_->close_after_reply.load());
}

TEST(StringCommands, ExpiryIsEnforcedOnReadWithoutSleeping) {
  Harness h;
  EXPECT_EQ(h.Run({"SETEX", "k", "10", "v"}), kOk);
  h.now_ms += 9'999;
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("v"));
  h.now_ms += 1;
  EXPECT_EQ(h.Run({"GET", "k"}), kNil);
  EXPECT_EQ(h.Run({"EXISTS", "k"}), Int(0));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(-2));
  EXPECT_EQ(h.Run({"SETNX", "k", "new"}), Int(1));  // expired counts as absent
  EXPECT_EQ(h.Run({"GET", "k"}), Bulk("new"));
}

TEST(StringCommands, CountersAndTheirErrors) {
  Harness h;
  EXPECT_EQ(h.Run({"INCR", "n"}), Int(1));
  EXPECT_EQ(h.Run({"INCRBY", "n", "41"}), Int(42));
  EXPECT_EQ(h.Run({"DECRBY", "n", "2"}), Int(40));
  EXPECT_EQ(h.Run({"DECR", "n"}), Int(39));
  EXPECT_EQ(h.Run({"SET", "n", "9223372036854775807"}), kOk);
  EXPECT_EQ(h.Run({"INCR", "n"}), "-ERR increment or decrement would overflow\r\n");
  EXPECT_EQ(h.Run({"SET", "s", "abc"}), kOk);
  EXPECT_EQ(h.Run({"INCR", "s"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(h.Run({"SET", "s", " 1"}), kOk);
  EXPECT_EQ(h.Run({"INCR", "s"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(h.Run({"SET", "f", "10.50"}), kOk);
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "f", "0.1"}), Bulk("10.6"));
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "f", "-5"}), Bulk("5.6"));
  // Redis 7.0.15 answers exactly this (long double, %.17Lf, zeros trimmed).
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "f", "5.0e3"}), Bulk("5005.60000000000000009"));
  EXPECT_EQ(h.Run({"SET", "g", "5.0e3"}), kOk);
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "g", "2.0e2"}), Bulk("5200"));
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "f", "nan"}), "-ERR value is not a valid float\r\n");
  EXPECT_EQ(h.Run({"INCRBYFLOAT", "f", "inf"}), "-ERR increment would produce NaN or Infinity\r\n");
}

TEST(StringCommands, RangesAppendAndMulti) {
  Harness h;
  EXPECT_EQ(h.Run({"APPEND", "s", "Hello"}), Int(5));
  EXPECT_EQ(h.Run({"APPEND", "s", " World"}), Int(11));
  EXPECT_EQ(h.Run({"GETRANGE", "s", "0", "4"}), Bulk("Hello"));
  EXPECT_EQ(h.Run({"GETRANGE", "s", "-5", "-1"}), Bulk("World"));
  EXPECT_EQ(h.Run({"GETRANGE", "s", "5", "2"}), Bulk(""));
  EXPECT_EQ(h.Run({"GETRANGE", "s", "0", "100"}), Bulk("Hello World"));
  EXPECT_EQ(h.Run({"SETRANGE", "s", "6", "Redis"}), Int(11));
  EXPECT_EQ(h.Run({"GET", "s"}), Bulk("Hello Redis"));
  EXPECT_EQ(h.Run({"SETRANGE", "z", "3", "x"}), Int(4));
  EXPECT_EQ(h.Run({"GET", "z"}), Bulk(std::string("\0\0\0x", 4)));
  EXPECT_EQ(h.Run({"SETRANGE", "z", "-1", "x"}), "-ERR offset is out of range\r\n");
  EXPECT_EQ(h.Run({"SETRANGE", "z", "536870912", "x"}),
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n");
  EXPECT_EQ(h.Run({"STRLEN", "s"}), Int(11));
  EXPECT_EQ(h.Run({"MSET", "a", "1", "b", "2"}), kOk);
  EXPECT_EQ(h.Run({"MSET", "a", "1", "b"}), "-ERR wrong number of arguments for 'mset' command\r\n");
  EXPECT_EQ(h.Run({"MGET", "a", "nope", "b"}), "*3\r\n" + Bulk("1") + kNil + Bulk("2"));
  EXPECT_EQ(h.Run({"MSETNX", "a", "9", "c", "3"}), Int(0));
  EXPECT_EQ(h.Run({"EXISTS", "c"}), Int(0));
  EXPECT_EQ(h.Run({"MSETNX", "c", "3", "d", "4"}), Int(1));
  EXPECT_EQ(h.Run({"GETSET", "a", "x"}), Bulk("1"));
  EXPECT_EQ(h.Run({"GETDEL", "a"}), Bulk("x"));
  EXPECT_EQ(h.Run({"GETDEL", "a"}), kNil);
  EXPECT_EQ(h.Run({"GETEX", "b", "PX", "500"}), Bulk("2"));
  EXPECT_EQ(h.Run({"PTTL", "b"}), Int(500));
  EXPECT_EQ(h.Run({"GETEX", "b", "PERSIST"}), Bulk("2"));
  EXPECT_EQ(h.Run({"PTTL", "b"}), Int(-1));
}

TEST(KeyCommands, ExpireFamilyWithOptions) {
  Harness h;
  h.Run({"SET", "k", "v"});
  EXPECT_EQ(h.Run({"EXPIRE", "k", "100", "XX"}), Int(0));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "100", "NX"}), Int(1));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "50", "GT"}), Int(0));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "200", "GT"}), Int(1));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "10", "LT"}), Int(1));
  EXPECT_EQ(h.Run({"TTL", "k"}), Int(10));
  EXPECT_EQ(h.Run({"EXPIRETIME", "k"}), Int(h.now_ms / 1000 + 10));
  EXPECT_EQ(h.Run({"PEXPIRETIME", "k"}), Int(h.now_ms + 10000));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "1", "NX", "XX"}),
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n");
  EXPECT_EQ(h.Run({"PERSIST", "k"}), Int(1));
  EXPECT_EQ(h.Run({"PERSIST", "k"}), Int(0));
  EXPECT_EQ(h.Run({"PEXPIREAT", "k", std::to_string(h.now_ms - 1)}), Int(1));  // in the past: deleted
  EXPECT_EQ(h.Run({"EXISTS", "k"}), Int(0));
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(0));
  EXPECT_EQ(h.Run({"EXPIRE", "nokey", "10"}), Int(0));
  EXPECT_EQ(h.Run({"EXPIRE", "k", "9223372036854775807"}), "-ERR invalid expire time in 'expire' command\r\n");
}

TEST(KeyCommands, DelRenameTypeDbsizeFlush) {
  Harness h;
  h.Run({"MSET", "a", "1", "b", "2", "c", "3"});
  EXPECT_EQ(h.Run({"DEL", "a", "b", "zz"}), Int(2));
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(1));
  EXPECT_EQ(h.Run({"TYPE", "c"}), "+string\r\n");
  EXPECT_EQ(h.Run({"TYPE", "a"}), "+none\r\n");
  EXPECT_EQ(h.Run({"RENAME", "nope", "x"}), "-ERR no such key\r\n");
  h.Run({"SET", "d", "4", "EX", "100"});
  EXPECT_EQ(h.Run({"RENAME", "d", "e"}), kOk);
  EXPECT_EQ(h.Run({"TTL", "e"}), Int(100));
  EXPECT_EQ(h.Run({"RENAMENX", "e", "c"}), Int(0));
  EXPECT_EQ(h.Run({"RENAMENX", "e", "f"}), Int(1));
  EXPECT_EQ(h.Run({"GET", "f"}), Bulk("4"));
  EXPECT_EQ(h.Run({"FLUSHALL"}), kOk);
  EXPECT_EQ(h.Run({"DBSIZE"}), Int(0));
  EXPECT_EQ(h.Run({"FLUSHDB", "BOGUS"}), "-ERR syntax error\r\n");
}

TEST(KeyCommands, KeysScanAndOrderedRanges) {
  Harness h;
  for (int i = 0; i < 25; i++) h.Run({"SET", "user:" + std::to_string(100 + i), std::to_string(i)});
  h.Run({"SET", "other", "x"});
  h.Run({"SET", "user:gone", "x", "PX", "1"});
  h.now_ms += 10;
  std::string keys = h.Run({"KEYS", "user:1[01]*"});
  EXPECT_EQ(keys.substr(0, 5), "*20\r\n") << keys;
  EXPECT_EQ(h.Run({"KEYS", "nomatch*"}), "*0\r\n");

  // SCAN walks key order; every live key exactly once.
  std::set<std::string> seen;
  std::string cursor = "0";
  int rounds = 0;
  do {
    std::string r = h.Run({"SCAN", cursor, "MATCH", "user:*", "COUNT", "7"});
    ASSERT_EQ(r.substr(0, 4), "*2\r\n");
    size_t p = r.find("\r\n", 4);
    size_t q = r.find("\r\n", p + 2);
    cursor = r.substr(p + 2, q - p - 2);
    for (size_t pos = r.find("user:"); pos != std::string::npos; pos = r.find("user:", pos + 1)) {
      seen.insert(r.substr(pos, r.find("\r\n", pos) - pos));
    }
    ASSERT_LT(++rounds, 20);
  } while (cursor != "0");
  EXPECT_EQ(seen.size(), 25u);
  EXPECT_EQ(h.Run({"SCAN", "12345"}).substr(0, 19), "-ERR invalid cursor");

  EXPECT_EQ(h.Run({"PKSCANRANGE", "string", "user:110", "user:112"}),
            "*2\r\n$0\r\n\r\n*3\r\n" + Bulk("user:110") + Bulk("user:111") + Bulk("user:112"));
  EXPECT_EQ(h.Run({"PKSCANRANGE", "string_with_value", "user:110", "", "LIMIT", "2"}),
            "*2\r\n" + Bulk("user:112") + "*4\r\n" + Bulk("user:110") + Bulk("10") + Bulk("user:111") + Bulk("11"));
  EXPECT_EQ(h.Run({"PKRSCANRANGE", "string", "user:112", "user:110", "LIMIT", "2"}),
            "*2\r\n" + Bulk("user:110") + "*2\r\n" + Bulk("user:112") + Bulk("user:111"));
  EXPECT_EQ(h.Run({"PKRSCANRANGE", "string", "", "", "LIMIT", "1"}),
            "*2\r\n" + Bulk("user:123") + "*1\r\n" + Bulk("user:124"));
  EXPECT_EQ(h.Run({"PKSCANRANGE", "string", "b", "a"}), "-ERR error in given range\r\n");
  EXPECT_EQ(h.Run({"PKSCANRANGE", "string", "", "", "MATCH", "o*"}), "*2\r\n$0\r\n\r\n*1\r\n" + Bulk("other"));
}

TEST(Transactions, ExecRunsQueuedCommandsAndWatchAborts) {
  Harness h;
  EXPECT_EQ(h.Run({"MULTI"}), kOk);
  EXPECT_EQ(h.Run({"SET", "a", "1"}), "+QUEUED\r\n");
  EXPECT_EQ(h.Run({"INCR", "a"}), "+QUEUED\r\n");
  EXPECT_EQ(h.Run({"GET", "a"}), "+QUEUED\r\n");
  EXPECT_EQ(h.Run({"EXEC"}), "*3\r\n+OK\r\n:2\r\n" + Bulk("2"));
  EXPECT_EQ(h.Run({"EXEC"}), "-ERR EXEC without MULTI\r\n");

  auto other = h.NewClient();
  EXPECT_EQ(h.Run({"WATCH", "a"}), kOk);
  EXPECT_EQ(h.Run({"SET", "a", "changed"}, other), kOk);
  h.Run({"MULTI"});
  h.Run({"SET", "a", "mine"});
  EXPECT_EQ(h.Run({"EXEC"}), "*-1\r\n");
  EXPECT_EQ(h.Run({"GET", "a"}), Bulk("changed"));

  EXPECT_EQ(h.Run({"WATCH", "a"}), kOk);
  h.Run({"MULTI"});
  EXPECT_EQ(h.Run({"WATCH", "b"}), "-ERR WATCH inside MULTI is not allowed\r\n");
  h.Run({"SET", "a", "mine"});
  EXPECT_EQ(h.Run({"EXEC"}), "*1\r\n+OK\r\n");
  EXPECT_EQ(h.Run({"DISCARD"}), "-ERR DISCARD without MULTI\r\n");
}

TEST(ServerCommands, DigestIsEqualExactlyWhenDataIsEqual) {
  Harness a, b;
  EXPECT_EQ(a.Run({"DEBUG", "DIGEST"}), Bulk(std::string(40, '0')));
  for (Harness* h : {&a, &b}) {
    h->Run({"SET", "k1", "v1"});
    h->Run({"SET", "k2", "v2", "PXAT", "1800000000000"});
  }
  std::string da = a.Run({"DEBUG", "DIGEST"});
  EXPECT_EQ(da, b.Run({"DEBUG", "DIGEST"}));
  b.Run({"PEXPIREAT", "k2", "1800000000001"});  // only the expiry differs
  EXPECT_NE(da, b.Run({"DEBUG", "DIGEST"}));
  b.Run({"PEXPIREAT", "k2", "1800000000000"});
  EXPECT_EQ(da, b.Run({"DEBUG", "DIGEST"}));
  b.Run({"SET", "k1", "v1x"});
  EXPECT_NE(da, b.Run({"DEBUG", "DIGEST"}));
  std::string dv = a.Run({"DEBUG", "DIGEST-VALUE", "k1", "missing"});
  EXPECT_EQ(dv.substr(0, 4), "*2\r\n");
  EXPECT_NE(dv.find(std::string(40, '0')), std::string::npos);
}

TEST(ServerCommands, HelloAuthAndConfig) {
  Harness h;
  h.password = "s3cret";
  h.client_->authenticated = false;
  EXPECT_EQ(h.Run({"AUTH", "wrong"}), "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
  EXPECT_EQ(h.Run({"HELLO", "4"}), "-NOPROTO unsupported protocol version\r\n");
  std::string r = h.Run({"HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "me"});
  EXPECT_EQ(r.substr(0, 4), "%7\r\n") << r;
  EXPECT_TRUE(h.client_->authenticated);
  EXPECT_EQ(h.Run({"CLIENT", "GETNAME"}), Bulk("me"));
  EXPECT_EQ(h.Run({"GET", "nothing"}), "_\r\n");  // RESP3 null
  EXPECT_EQ(h.Run({"CONFIG", "GET", "maxcl*"}), "%1\r\n" + Bulk("maxclients") + Bulk("10000"));
  EXPECT_EQ(h.Run({"CONFIG", "SET", "maxclients", "5", "fsync", "bogus"}).substr(0, 22), "-ERR CONFIG SET failed");
  EXPECT_EQ(h.config().GetInt("maxclients"), 10000);  // rolled back
  EXPECT_EQ(h.Run({"CONFIG", "SET", "maxclients", "5", "fsync", "always"}), kOk);
  EXPECT_EQ(h.config().GetString("fsync"), "always");
  EXPECT_EQ(h.Run({"SELECT", "1"}), "-ERR DB index is out of range\r\n");
  EXPECT_EQ(h.Run({"PING", "a", "b"}), "-ERR wrong number of arguments for 'ping' command\r\n");
}

TEST(ServerCommands, CommandIntrospection) {
  Harness h;
  std::string count = h.Run({"COMMAND", "COUNT"});
  EXPECT_GE(std::stoi(count.substr(1)), 60);
  std::string info = h.Run({"COMMAND", "INFO", "get", "nosuch"});
  EXPECT_EQ(info.substr(0, 4), "*2\r\n");
  EXPECT_NE(info.find("readonly"), std::string::npos);
  EXPECT_NE(info.find("*-1\r\n"), std::string::npos);
  EXPECT_NE(h.Run({"COMMAND", "DOCS", "set"}).find("summary"), std::string::npos);
}

TEST(ServerCommands, EveryCommandHasDocumentedArguments) {
  Harness h;
  for (const auto& [name, spec] : h.table().all()) EXPECT_TRUE(HasSyntax(name)) << name << " has no syntax line";
  auto set = CommandArguments("set");
  ASSERT_EQ(set.size(), 5u);
  EXPECT_EQ(set[0].type, "key");
  EXPECT_EQ(set[2].type, "oneof");
  EXPECT_TRUE(set[2].optional);
  EXPECT_EQ(set[2].children[0].token, "NX");
  EXPECT_EQ(set[4].children[0].token, "EX");
  EXPECT_EQ(set[4].children[0].name, "seconds");
  auto mset = CommandArguments("mset");
  ASSERT_EQ(mset.size(), 3u);
  EXPECT_EQ(mset[2].type, "block");
  EXPECT_TRUE(mset[2].optional && mset[2].multiple);
  auto hello = CommandArguments("hello");
  ASSERT_EQ(hello.size(), 1u);
  EXPECT_EQ(hello[0].type, "block");
  EXPECT_EQ(hello[0].children[1].type, "block");  // [AUTH username password]
  EXPECT_EQ(hello[0].children[1].children[0].token, "AUTH");
}

TEST(PubSubTest, DeliversToChannelAndPatternSubscribersInTheirProtocol) {
  PubSub ps;
  auto a = std::make_shared<ClientState>();
  a->id = 1;
  auto b = std::make_shared<ClientState>();
  b->id = 2;
  b->protocol = 3;
  std::vector<std::string> got_a, got_b;
  a->deliver = [&](const std::string& s) { got_a.push_back(s); };
  b->deliver = [&](const std::string& s) { got_b.push_back(s); };
  EXPECT_TRUE(ps.Subscribe(a, "news", false));
  EXPECT_FALSE(ps.Subscribe(a, "news", false));  // already
  EXPECT_TRUE(ps.Subscribe(b, "n*", true));
  EXPECT_TRUE(a->subscribed() && b->subscribed());
  EXPECT_EQ(ps.Receivers("news"), 2);
  EXPECT_EQ(ps.Publish("news", "hi"), 2);
  ASSERT_EQ(got_a.size(), 1u);
  EXPECT_EQ(got_a[0], "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
  ASSERT_EQ(got_b.size(), 1u);
  EXPECT_EQ(got_b[0], ">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
  EXPECT_EQ(ps.Publish("other", "x"), 0);
  EXPECT_EQ(ps.Channels(""), std::vector<std::string>{"news"});
  EXPECT_EQ(ps.NumPat(), 1);
  ps.UnsubscribeAll(a.get());
  EXPECT_FALSE(a->subscribed());
  EXPECT_EQ(ps.NumSub("news"), 0);
  // A subscriber that went away is skipped, not delivered to.
  b.reset();
  EXPECT_EQ(ps.Publish("news", "late"), 0);
}

TEST(GlobTest, RedisPatterns) {
  EXPECT_TRUE(GlobMatch("h?llo", "hello"));
  EXPECT_TRUE(GlobMatch("h*llo", "heeeello"));
  EXPECT_TRUE(GlobMatch("h[ae]llo", "hallo"));
  EXPECT_FALSE(GlobMatch("h[^e]llo", "hello"));
  EXPECT_TRUE(GlobMatch("h[a-b]llo", "hbllo"));
  EXPECT_TRUE(GlobMatch("h\\*llo", "h*llo"));
  EXPECT_FALSE(GlobMatch("h\\*llo", "hello"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("MAXCL*", "maxclients", true));
}

}  // namespace
}  // namespace levee::commands
