#include "commands/instrument.h"

#include "observe/command_stats.h"

namespace levee::commands {

void RecordCommand(commands::Services& services, const commands::Spec& spec, const std::vector<std::string>& args,
                   const commands::ClientState& client, std::chrono::steady_clock::time_point start,
                   std::string_view reply) {
  auto elapsed = std::chrono::steady_clock::now() - start;
  int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
  observe::CommandCell& cell = services.command_stats().cell(spec.id);
  cell.calls.fetch_add(1, std::memory_order_relaxed);
  cell.usec.fetch_add(static_cast<uint64_t>(us), std::memory_order_relaxed);
  cell.latency.Observe(std::chrono::duration<double>(elapsed).count());
  // A reply that starts with '-' is an error (an EXEC's array is not).
  if (!reply.empty() && reply[0] == '-') {
    cell.failed.fetch_add(1, std::memory_order_relaxed);
    services.command_stats().RecordError(reply.substr(1));
  }
  observe::SlowLog& slow = services.slowlog();
  // AUTH and HELLO carry passwords: never into the slow log (as Redis).
  if (slow.WouldLog(us) && !(spec.flags & commands::kNoAuth)) {
    std::string name;
    {
      std::lock_guard<std::mutex> l(client.mu);
      name = client.name;
    }
    slow.MaybeAdd(us, args, client.addr, name);
  }
}

void RecordRejected(commands::Services& services, const commands::Spec* spec, std::string_view reply) {
  if (spec != nullptr) services.command_stats().cell(spec->id).rejected.fetch_add(1, std::memory_order_relaxed);
  if (!reply.empty() && reply[0] == '-') services.command_stats().RecordError(reply.substr(1));
}

}  // namespace levee::commands
