// Arguments and errors with Redis' strictness: the error strings clients
// match on, number parsing, case-insensitive comparison and glob patterns.
// Pure functions: any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace levee::commands {

// Error strings users and client libraries match on.
inline constexpr std::string_view kErrSyntax = "ERR syntax error";
inline constexpr std::string_view kErrNotInteger = "ERR value is not an integer or out of range";
inline constexpr std::string_view kErrNotFloat = "ERR value is not a valid float";
inline constexpr std::string_view kErrWrongType =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
inline constexpr std::string_view kErrNoAuth = "NOAUTH Authentication required.";
// The reply to a command in disabled-commands.
std::string DisabledError(std::string_view cmd);
std::string WrongArgsError(std::string_view cmd);

// Parsing helpers with Redis' strictness.
bool ParseInt64(std::string_view s, int64_t* v);
bool ParseDouble(std::string_view s, double* v);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string ToLower(std::string_view s);
// Redis glob: * ? [abc] [^a-z] and \ escapes.
bool GlobMatch(std::string_view pattern, std::string_view s, bool nocase = false);

}  // namespace levee::commands
