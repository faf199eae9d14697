// The write path: every job queued at once is one group, run in order (a
// later command sees an earlier one's write), one log sequence per command
// that changed data, and replication's hooks asked at the right moments
// (refusal before running, sync-class writes held for acks, the log's end
// announced once appended).
#include "write/writer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "../commands/harness.h"
#include "storage/engine.h"
#include "common/coding.h"
#include "storage/view.h"
#include "wal/cursor.h"
#include "wal/record.h"

namespace levee::write {
namespace {

using commands::Harness;

// Replication as the writer sees it, recording what it is asked.
class FakeHooks : public ReplicationHooks {
 public:
  void OnAppended(uint64_t last) override {
    std::lock_guard<std::mutex> l(mu);
    appended.push_back(last);
  }
  uint64_t RetainFrom() override { return UINT64_MAX; }
  std::string WriteRefusal() override {
    std::lock_guard<std::mutex> l(mu);
    return refusal;
  }
  bool IsSyncKey(std::string_view key) override { return key.substr(0, 2) == "s:"; }
  void HoldForAcks(std::unique_ptr<WriteJob> job) override {
    {
      std::lock_guard<std::mutex> l(mu);
      held.push_back(job->sync_sequence);
      held_replies.push_back(job->sync_replies);
    }
    auto done = std::move(job->done);
    done(std::move(job));  // acked at once
  }
  void HoldForWait(std::unique_ptr<WriteJob> job, uint64_t, int64_t, int64_t) override {
    auto done = std::move(job->done);
    done(std::move(job));
  }

  void SetRefusal(std::string r) {
    std::lock_guard<std::mutex> l(mu);
    refusal = std::move(r);
  }

  std::mutex mu;
  std::string refusal;
  std::vector<uint64_t> appended, held;
  std::vector<std::vector<std::pair<size_t, size_t>>> held_replies;
};

class WriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Writer::Options o;
    o.fsync = FsyncPolicy::kNo;
    o.min_free_disk_bytes = 0;
    o.data_dir = h.dir();
    writer = std::make_unique<Writer>(&h.engine(), &h.log(), &h, o);
    uint64_t replayed = 0;
    ASSERT_TRUE(writer->Recover(&replayed).ok());
  }
  void TearDown() override {
    if (writer) writer->Stop();
  }

  // Queues one job of a client's commands; its reply lands in replies[i].
  void Submit(size_t i, std::vector<std::vector<std::string>> cmds,
              std::shared_ptr<commands::ClientState> client = nullptr) {
    auto job = std::make_unique<WriteJob>();
    job->client = client ? client : h.NewClient();
    for (auto& c : cmds) job->specs.push_back(h.table().Find(c[0]));
    job->commands = std::move(cmds);
    if (replies.size() <= i) replies.resize(i + 1);
    job->done = [this, i](std::unique_ptr<WriteJob> j) {
      std::lock_guard<std::mutex> l(mu);
      replies[i] = j->reply;
      order.push_back(i);
    };
    writer->Submit(std::move(job));
  }

  // Polls (deadline 10 s) until n jobs came back.
  void WaitDone(size_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> l(mu);
        if (order.size() >= n) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    FAIL() << "only " << order.size() << " of " << n << " jobs came back";
  }

  std::string Get(const std::string& key) {
    storage::EngineView v(&h.engine());
    storage::StoredValue sv;
    bool found = false;
    EXPECT_TRUE(v.Get(key, &sv, &found).ok());
    return found ? sv.payload : "(nil)";
  }

  // (sequence, first mutation's key) of every record in the log.
  std::vector<std::pair<uint64_t, std::string>> LogRecords() {
    std::vector<std::pair<uint64_t, std::string>> out;
    wal::LogCursor cursor(&h.log());
    EXPECT_TRUE(cursor.Seek(0).ok());
    std::string framed;
    uint64_t last = 0;
    EXPECT_TRUE(cursor.Read(1 << 20, &framed, &last).ok());
    for (size_t at = 0; at + wal::kFrameHeaderSize <= framed.size();) {
      uint32_t len = DecodeFixed32(framed.data() + at);
      wal::Record rec;
      EXPECT_TRUE(wal::DecodePayload(std::string_view(framed).substr(at + wal::kFrameHeaderSize, len), &rec));
      out.emplace_back(rec.sequence, rec.mutations.empty() ? "" : rec.mutations[0].key);
      at += wal::kFrameHeaderSize + len;
    }
    return out;
  }

  Harness h;
  FakeHooks hooks;  // outlives the writer's thread (stopped in TearDown)
  std::unique_ptr<Writer> writer;
  std::mutex mu;
  std::vector<std::string> replies;
  std::vector<size_t> order;
};

TEST_F(WriterTest, EveryQueuedJobIsOneGroupRunInOrder) {
  Submit(0, {{"SET", "k", "1"}});
  Submit(1, {{"INCR", "k"}, {"APPEND", "k", "x"}});  // sees job 0's write, not yet in LevelDB
  Submit(2, {{"SET", "other", "v"}, {"GET", "k"}});
  writer->Start();
  WaitDone(3);
  EXPECT_EQ(writer->stats().groups.load(), 1u);
  EXPECT_EQ(writer->stats().commands.load(), 5u);
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(replies[0], "+OK\r\n");
  EXPECT_EQ(replies[1], ":2\r\n:2\r\n");
  EXPECT_EQ(replies[2], "+OK\r\n$2\r\n2x\r\n");
  // One sequence per command that changed data (the GET logged nothing),
  // gap-free and in submission order; LevelDB holds the group.
  EXPECT_EQ(writer->last_sequence(), 4u);
  EXPECT_EQ(LogRecords(), (std::vector<std::pair<uint64_t, std::string>>{{1, "k"}, {2, "k"}, {3, "k"}, {4, "other"}}));
  EXPECT_EQ(Get("k"), "2x");
  EXPECT_EQ(h.engine().applied_sequence(), 4u);
}

TEST_F(WriterTest, AGroupHoldsAtMostMaxGroupJobs) {
  writer->set_max_group(2);
  for (size_t i = 0; i < 5; i++) Submit(i, {{"INCR", "n"}});
  writer->Start();
  WaitDone(5);
  EXPECT_EQ(writer->stats().groups.load(), 3u);  // 2 + 2 + 1
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3, 4}));
  for (size_t i = 0; i < 5; i++) EXPECT_EQ(replies[i], ":" + std::to_string(i + 1) + "\r\n");
}

TEST_F(WriterTest, ReplicationRefusesBeforeAnythingRunsAndHoldsSyncClassWrites) {
  writer->set_hooks(&hooks);
  hooks.SetRefusal("NOREPLICAS Not enough good replicas to write.");
  writer->Start();
  Submit(0, {{"SET", "k", "v"}});
  WaitDone(1);
  EXPECT_EQ(replies[0], "-NOREPLICAS Not enough good replicas to write.\r\n");
  EXPECT_EQ(writer->last_sequence(), 0u);  // nothing logged
  EXPECT_EQ(Get("k"), "(nil)");

  hooks.SetRefusal("");
  auto client = h.NewClient();
  Submit(1, {{"SET", "plain", "1"}, {"SET", "s:1", "2"}, {"SET", "plain", "3"}}, client);
  WaitDone(2);
  EXPECT_EQ(replies[1], "+OK\r\n+OK\r\n+OK\r\n");
  std::lock_guard<std::mutex> l(hooks.mu);
  // Held until replicas ack its sync-class write (sequence 2), with the
  // reply of that command marked; the log's end announced before.
  EXPECT_EQ(hooks.held, (std::vector<uint64_t>{2}));
  ASSERT_EQ(hooks.held_replies.size(), 1u);
  EXPECT_EQ(hooks.held_replies[0], (std::vector<std::pair<size_t, size_t>>{{5, 10}}));
  EXPECT_EQ(hooks.appended, (std::vector<uint64_t>{3}));
  EXPECT_EQ(client->last_write_sequence, 3u);
}

TEST_F(WriterTest, AReplicasWriterRefusesClientWrites) {
  writer->set_replica_mode(true);
  writer->Start();
  Submit(0, {{"SET", "k", "v"}});
  WaitDone(1);
  EXPECT_EQ(replies[0].rfind("-READONLY", 0), 0u) << replies[0];
  EXPECT_EQ(Get("k"), "(nil)");
}

}  // namespace
}  // namespace levee::write
