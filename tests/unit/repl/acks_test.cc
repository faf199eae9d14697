// The ack tracker on its own: a fake count of acknowledging replicas and a
// fake clock stand in for the links and time.
#include "repl/acks.h"

#include <gtest/gtest.h>

#include <map>

#include "commands/client.h"

namespace levee::repl {
namespace {

class FakeAcks : public AckCounter {
 public:
  // How many replicas acknowledged each sequence or later.
  int64_t CountAcked(uint64_t sequence) override {
    int64_t n = 0;
    for (uint64_t a : acked) n += a >= sequence;
    return n;
  }
  std::vector<uint64_t> acked;  // one entry per online replica: its last ack
};

struct Answer {
  bool done = false;
  std::string reply;
};

// A finished job whose reply holds `parts`; the parts named in `sync` are
// sync-class replies.
std::unique_ptr<write::WriteJob> Job(Answer* out, const std::vector<std::string>& parts, std::vector<size_t> sync,
                                     uint64_t sync_sequence) {
  auto job = std::make_unique<write::WriteJob>();
  job->client = std::make_shared<commands::ClientState>();
  for (size_t i = 0; i < parts.size(); i++) {
    size_t b = job->reply.size();
    job->reply += parts[i];
    if (std::find(sync.begin(), sync.end(), i) != sync.end()) job->sync_replies.emplace_back(b, job->reply.size());
  }
  job->sync_sequence = sync_sequence;
  job->done = [out](std::unique_ptr<write::WriteJob> j) {
    out->done = true;
    out->reply = j->reply;
  };
  return job;
}

class AckTrackerTest : public ::testing::Test {
 protected:
  FakeAcks links;
  int64_t now = 1000;
  AckTracker acks{&links, [this] { return now; }};
  void Sync(int64_t replicas, int64_t timeout_ms, bool fail, std::vector<std::string> prefixes = {}) {
    acks.Configure(SyncSettings{replicas, timeout_ms, fail, std::move(prefixes)});
  }
};

TEST_F(AckTrackerTest, SyncWriteIsAnsweredOnceEnoughReplicasAcknowledgedIt) {
  Sync(2, 500, true);
  links.acked = {5, 5};
  Answer a;
  acks.HoldForAcks(Job(&a, {"+OK\r\n"}, {0}, 7), false);
  EXPECT_FALSE(a.done);
  links.acked = {7, 5};  // one of two
  acks.OnAck();
  EXPECT_FALSE(a.done);
  links.acked = {7, 9};
  acks.OnAck();
  EXPECT_TRUE(a.done);
  EXPECT_EQ(a.reply, "+OK\r\n");
  EXPECT_EQ(acks.held(), 0u);
  EXPECT_EQ(acks.stats().sync_writes.load(), 1u);
  EXPECT_EQ(acks.stats().sync_timeouts.load(), 0u);
}

TEST_F(AckTrackerTest, AlreadyAcknowledgedIsAnsweredAtOnce) {
  Sync(1, 500, true);
  links.acked = {10};
  Answer a;
  acks.HoldForAcks(Job(&a, {"+OK\r\n"}, {0}, 7), false);
  EXPECT_TRUE(a.done);
  EXPECT_EQ(a.reply, "+OK\r\n");
}

TEST_F(AckTrackerTest, TimeoutWithPolicyFailReplacesOnlyTheSyncClassReplies) {
  Sync(1, 500, true);
  links.acked = {0};
  Answer a;
  // MULTI/EXEC-like: a plain reply, a sync-class one, another plain one.
  acks.HoldForAcks(Job(&a, {":1\r\n", "+OK\r\n", "$1\r\nx\r\n"}, {1}, 3), false);
  now += 499;
  acks.Tick();
  EXPECT_FALSE(a.done) << "answered before sync-timeout-ms";
  now += 1;
  acks.Tick();
  ASSERT_TRUE(a.done);
  EXPECT_EQ(a.reply.substr(0, 4), ":1\r\n");
  EXPECT_NE(a.reply.find("-ERR sync replication timeout: fewer than 1 replicas"), std::string::npos) << a.reply;
  EXPECT_EQ(a.reply.find("+OK"), std::string::npos) << a.reply;
  EXPECT_EQ(a.reply.substr(a.reply.size() - 7), "$1\r\nx\r\n");
  EXPECT_EQ(acks.stats().sync_timeouts.load(), 1u);
  EXPECT_EQ(acks.stats().sync_degraded.load(), 0u);
}

TEST_F(AckTrackerTest, TimeoutWithPolicyDegradeAnswersAsIsAndCountsIt) {
  Sync(1, 500, false);
  links.acked = {0};
  Answer a;
  acks.HoldForAcks(Job(&a, {"+OK\r\n"}, {0}, 3), false);
  now += 600;
  acks.Tick();
  ASSERT_TRUE(a.done);
  EXPECT_EQ(a.reply, "+OK\r\n");
  EXPECT_EQ(acks.stats().sync_timeouts.load(), 1u);
  EXPECT_EQ(acks.stats().sync_degraded.load(), 1u);
}

TEST_F(AckTrackerTest, AnAckDoesNotTimeOutOthers) {
  Sync(1, 500, true);
  links.acked = {0};
  Answer a, b;
  acks.HoldForAcks(Job(&a, {"+OK\r\n"}, {0}, 3), false);
  acks.HoldForAcks(Job(&b, {"+OK\r\n"}, {0}, 4), false);
  now += 1000;  // both past their deadline, but only Tick times out
  links.acked = {3};
  acks.OnAck();
  EXPECT_TRUE(a.done);
  EXPECT_EQ(a.reply, "+OK\r\n");
  EXPECT_FALSE(b.done);
  acks.Tick();
  EXPECT_TRUE(b.done);
  EXPECT_NE(b.reply.find("sync replication timeout"), std::string::npos);
}

TEST_F(AckTrackerTest, OnAReplicaASyncWriteIsAnsweredAtOnceAsTimedOut) {
  Sync(1, 500, true);
  links.acked = {100};
  Answer a;
  acks.HoldForAcks(Job(&a, {"+OK\r\n"}, {0}, 3), true);
  ASSERT_TRUE(a.done);
  EXPECT_NE(a.reply.find("sync replication timeout"), std::string::npos);
}

TEST_F(AckTrackerTest, WaitAnswersTheCountWhenReachedOrAtItsTimeout) {
  links.acked = {4, 2};
  Answer enough, late, forever;
  acks.HoldForWait(Job(&enough, {}, {}, 0), 5, 2, 1000);
  acks.HoldForWait(Job(&late, {}, {}, 0), 5, 2, 300);
  acks.HoldForWait(Job(&forever, {}, {}, 0), 9, 1, 0);  // WAIT 1 0: no limit
  links.acked = {5, 2};
  acks.OnAck();
  EXPECT_FALSE(enough.done);
  now += 300;
  acks.Tick();
  ASSERT_TRUE(late.done);
  EXPECT_EQ(late.reply, ":1\r\n") << "WAIT answers how many acknowledged, at its timeout";
  links.acked = {5, 6};
  acks.OnAck();
  ASSERT_TRUE(enough.done);
  EXPECT_EQ(enough.reply, ":2\r\n");
  now += 1000000;
  acks.Tick();
  EXPECT_FALSE(forever.done) << "WAIT with timeout 0 never times out";
  links.acked = {9, 6};
  acks.OnAck();
  ASSERT_TRUE(forever.done);
  EXPECT_EQ(forever.reply, ":1\r\n");
}

TEST_F(AckTrackerTest, WaitForZeroReplicasIsAnsweredAtOnce) {
  links.acked = {};
  Answer a;
  acks.HoldForWait(Job(&a, {}, {}, 0), 5, 0, 1000);
  ASSERT_TRUE(a.done);
  EXPECT_EQ(a.reply, ":0\r\n");
}

TEST_F(AckTrackerTest, ReleaseAllAnswersEveryHeldJob) {
  Sync(1, 500, true);
  links.acked = {0};
  Answer w, s;
  acks.HoldForWait(Job(&w, {}, {}, 0), 5, 1, 0);
  acks.HoldForAcks(Job(&s, {"+OK\r\n"}, {0}, 5), false);
  EXPECT_EQ(acks.held(), 2u);
  acks.ReleaseAll();
  ASSERT_TRUE(w.done);
  ASSERT_TRUE(s.done);
  EXPECT_EQ(w.reply, ":0\r\n");
  EXPECT_NE(s.reply.find("sync replication timeout"), std::string::npos);
  EXPECT_EQ(acks.held(), 0u);
}

TEST_F(AckTrackerTest, SyncKeysFollowSyncReplicasAndPrefixes) {
  EXPECT_FALSE(acks.IsSyncKey("user:1")) << "sync-replicas 0: nothing is sync-class";
  Sync(1, 500, true);
  EXPECT_TRUE(acks.IsSyncKey("anything")) << "no prefixes: every key";
  Sync(1, 500, true, {"order:", "pay:"});
  EXPECT_TRUE(acks.IsSyncKey("order:7"));
  EXPECT_TRUE(acks.IsSyncKey("pay:"));
  EXPECT_FALSE(acks.IsSyncKey("orders"));
  EXPECT_FALSE(acks.IsSyncKey("user:1"));
  Sync(0, 500, true, {"order:"});
  EXPECT_FALSE(acks.IsSyncKey("order:7"));
}

TEST_F(AckTrackerTest, SyncTimeoutIsTakenWhenTheWriteIsHeld) {
  Sync(1, 500, true);
  links.acked = {0};
  Answer a;
  acks.HoldForAcks(Job(&a, {"+OK\r\n"}, {0}, 3), false);
  Sync(1, 10000, true);  // CONFIG SET later: the held write keeps its deadline
  now += 500;
  acks.Tick();
  EXPECT_TRUE(a.done);
}

}  // namespace
}  // namespace levee::repl
