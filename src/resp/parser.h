// RequestParser: turns client bytes into commands (RESP multibulk or inline).
//
// The parser is incremental and keeps its own state between calls, so a
// command that arrives one byte at a time, or a 512 MB bulk that arrives in
// thousands of reads, is scanned once. Every input has a limit (Limits); a
// violation is a protocol error with Redis' wording, after which the caller
// replies "-ERR Protocol error: ..." and closes the connection.
//
// Not thread-safe: one parser per connection.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace levee::resp {

struct Limits {
  size_t max_bulk_len = 512ull << 20;       // proto-max-bulk-len
  size_t max_multibulk_len = 1024 * 1024;   // arguments in one command
  size_t max_inline_len = 64 * 1024;        // inline line / header line
  // Before AUTH on a server with a password (Redis' limits).
  size_t unauth_max_multibulk_len = 10;
  size_t unauth_max_bulk_len = 16384;
};

class RequestParser {
 public:
  enum class Result {
    kCommand,     // args() holds a complete command (possibly empty: skip it)
    kNeedMore,    // all of the input was consumed or is a partial element
    kError,       // protocol error; error() says which
  };

  explicit RequestParser(Limits limits = Limits()) : limits_(limits) {}
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses from the front of buf. *consumed is set to the bytes the parser
  // has taken (they belong to it now; the caller drops them from its buffer)
  // whatever the result.
  Result Parse(std::string_view buf, size_t* consumed);

  // The command after kCommand. The caller may move the strings out; the
  // next Parse starts a new command.
  std::vector<std::string>& args() { return args_; }
  // Protocol error text after kError, without the "ERR Protocol error: " prefix.
  const std::string& error() const { return error_; }

  // Bytes held in partial arguments of the command being parsed (for the
  // query buffer limit).
  size_t buffered_bytes() const { return buffered_bytes_; }
  // When inside a bulk payload: bytes still wanted; lets the caller size reads.
  size_t bulk_bytes_wanted() const { return bulk_len_ >= 0 ? static_cast<size_t>(bulk_len_) + 2 : 0; }

  void set_authenticated(bool a) { authenticated_ = a; }

 private:
  Result ParseInline(std::string_view buf, size_t* consumed);
  Result Fail(std::string msg);
  void Reset();

  Limits limits_;
  bool authenticated_ = true;
  std::vector<std::string> args_;
  std::string error_;
  long long multibulk_left_ = 0;  // 0: not inside a multibulk command
  long long bulk_len_ = -1;       // -1: expecting a '$' header next
  size_t buffered_bytes_ = 0;
};

// Splits an inline command line the way redis-cli and Redis do: whitespace
// separated, "double quoted" with \n \r \t \b \a \\ \" \xHH escapes, 'single
// quoted' with \' escape. Returns false on unbalanced quotes.
bool SplitInlineArgs(std::string_view line, std::vector<std::string>* out);

}  // namespace levee::resp
