// A replica's REPLCONF handshake, kept on its client until PSYNC.
#include "repl/handshake.h"

#include <gtest/gtest.h>

namespace levee::repl {
namespace {

TEST(Handshake, KeepsWhatTheReplicaSaysOnItsClient) {
  commands::ClientState client;
  EXPECT_EQ(Handshake::Find(client), nullptr);  // an ordinary client carries none
  Handshake& h = Handshake::Of(client);
  EXPECT_EQ(h.Apply("listening-port", "6380"), "");
  EXPECT_EQ(h.Apply("IP-ADDRESS", "levee-1.levee-headless"), "");  // options in any case, as Redis
  EXPECT_EQ(h.Apply("capa", "eof"), "");
  EXPECT_EQ(h.Apply("capa", "ZSTD"), "");
  EXPECT_EQ(h.Apply("levee-backfill", "1"), "");
  ASSERT_EQ(Handshake::Find(client), &h);
  EXPECT_EQ(&Handshake::Of(client), &h);  // one per client
  EXPECT_EQ(h.listening_port, 6380);
  EXPECT_EQ(h.ip, "levee-1.levee-headless");
  EXPECT_TRUE(h.capa_zstd);
  EXPECT_TRUE(h.backfill);
}

TEST(Handshake, RefusesWhatRedisRefusesAndIgnoresWhatItIgnores) {
  Handshake h;
  EXPECT_EQ(h.Apply("listening-port", "65536"), "ERR invalid listening-port");
  EXPECT_EQ(h.Apply("listening-port", "-1"), "ERR invalid listening-port");
  EXPECT_EQ(h.Apply("listening-port", "x"), "ERR invalid listening-port");
  EXPECT_EQ(h.listening_port, 0);
  EXPECT_EQ(h.Apply("Bogus", "1"), "ERR Unrecognized REPLCONF option: Bogus");
  for (const char* ignored : {"ack", "GETACK", "rdb-only", "rdb-filter-only"}) {
    EXPECT_EQ(h.Apply(ignored, "1"), "") << ignored;
  }
  EXPECT_EQ(h.Apply("capa", "psync2"), "");
  EXPECT_FALSE(h.capa_zstd);
  EXPECT_EQ(h.Apply("levee-backfill", "0"), "");
  EXPECT_FALSE(h.backfill);
}

}  // namespace
}  // namespace levee::repl
