#include "repl/handshake.h"

#include "commands/args.h"

namespace levee::repl {

Handshake& Handshake::Of(commands::ClientState& client) {
  if (!client.replica_handshake) client.replica_handshake = std::make_unique<Handshake>();
  return static_cast<Handshake&>(*client.replica_handshake);
}

const Handshake* Handshake::Find(const commands::ClientState& client) {
  return static_cast<const Handshake*>(client.replica_handshake.get());
}

std::string Handshake::Apply(const std::string& sent, const std::string& value) {
  std::string option = commands::ToLower(sent);
  if (option == "listening-port") {
    int64_t p;
    if (!commands::ParseInt64(value, &p) || p < 0 || p > 65535) return "ERR invalid listening-port";
    listening_port = static_cast<int>(p);
  } else if (option == "capa") {
    if (commands::EqualsIgnoreCase(value, "zstd")) capa_zstd = true;
    // eof, psync2: what levee always does; unknown capabilities are ignored, as Redis does.
  } else if (option == "levee-backfill") {
    backfill = value == "1";
  } else if (option == "ip-address") {
    ip = value;
  } else if (option == "ack" || option == "getack" || option == "rdb-only" || option == "rdb-filter-only") {
    // ACK on an ordinary connection means nothing; replicas' acks come on
    // their replication link.
  } else {
    return "ERR Unrecognized REPLCONF option: " + sent;
  }
  return "";
}

}  // namespace levee::repl
