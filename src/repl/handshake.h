// Handshake: what a replica says about itself with REPLCONF before PSYNC
// (its port and address, capabilities, node id, history, whether it would
// rather send its extra records than lose them). Kept on the replica's
// client (commands::ClientState::replica_handshake) until PSYNC hands the
// connection to a ReplicaLink.
//
// Threads: the replica's connection's io thread (REPLCONF and PSYNC run
// there).
#pragma once

#include <string>

#include "commands/client.h"

namespace levee::repl {

struct Handshake final : commands::ClientAttachment {
  int listening_port = 0;
  std::string ip;  // REPLCONF ip-address (the replica's replica-announce-ip)
  bool capa_zstd = false;
  std::string node_id;  // REPLCONF levee-id
  std::string history;  // REPLCONF levee-history: the replica's history (repl/history.h)
  bool backfill = false;  // REPLCONF levee-backfill

  // The client's handshake, created on first use.
  static Handshake& Of(commands::ClientState& client);
  // The client's handshake, or nullptr if it sent no REPLCONF.
  static const Handshake* Find(const commands::ClientState& client);

  // Applies one REPLCONF option (any case) that needs no answer of its own:
  // "" when taken, or ignored as Redis ignores it; else the error to reply.
  // levee-id and levee-history answer: the manager handles those.
  std::string Apply(const std::string& option, const std::string& value);
};

}  // namespace levee::repl
