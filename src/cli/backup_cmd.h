// `levee backup …`: create, list, verify, restore, prune, freeze, thaw,
// keygen (docs/runbooks/backup.md).
#pragma once

#include <CLI/CLI.hpp>

namespace levee::cli {

// Adds the subcommand tree to app; returns the "backup" subcommand.
CLI::App* AddBackupCommand(CLI::App& app);
// Runs whichever backup subcommand was parsed; the process exit code.
int RunBackupCommand();

}  // namespace levee::cli
