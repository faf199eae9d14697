// `levee check`: offline verification of a data directory.
#pragma once

#include <string>

namespace levee::cli {

// Verifies every LevelDB block checksum and every log record of data_dir
// without changing it; prints a report (text or JSON). Returns the exit
// code: 0 healthy, 1 damage found, 2 could not check (in use, unreadable).
int RunCheck(const std::string& data_dir, bool json);

}  // namespace levee::cli
