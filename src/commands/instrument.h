// Recording what a command did: per-command calls, latency and errors, error
// codes (INFO errorstats) and the slow log. Called by the io threads for the
// commands they run and by the writer for its own; lock-free unless the
// command failed or was slow.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "commands/client.h"
#include "commands/services.h"
#include "commands/spec.h"

namespace levee::commands {

// `reply` is exactly what the command appended to its client's output.
void RecordCommand(commands::Services& services, const commands::Spec& spec, const std::vector<std::string>& args,
                   const commands::ClientState& client, std::chrono::steady_clock::time_point start,
                   std::string_view reply);

// A command refused before it ran (unknown, wrong arity, not authenticated).
void RecordRejected(commands::Services& services, const commands::Spec* spec, std::string_view reply);

}  // namespace levee::commands
