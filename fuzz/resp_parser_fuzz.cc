// libFuzzer target for the RESP request parser (fuzz/README.md).
//
// Differential: the input parsed whole and the input parsed in pieces (cut
// at points derived from the input) must give the same commands, and the
// same protocol error if any. Run under ASan/UBSan this also finds memory
// errors and overflows.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "resp/parser.h"

namespace {

struct Outcome {
  std::vector<std::vector<std::string>> commands;
  std::string error;
};

Outcome Run(const std::string& input, size_t step, bool authenticated) {
  levee::resp::Limits limits;
  limits.max_bulk_len = 1 << 16;
  limits.max_multibulk_len = 1 << 12;
  limits.max_inline_len = 1 << 12;
  levee::resp::RequestParser p(limits);
  p.set_authenticated(authenticated);
  Outcome out;
  std::string buf;
  for (size_t i = 0; i < input.size(); i += step) {
    buf.append(input, i, step);
    while (true) {
      size_t consumed = 0;
      auto r = p.Parse(buf, &consumed);
      if (consumed > buf.size()) std::abort();
      buf.erase(0, consumed);
      if (r == levee::resp::RequestParser::Result::kNeedMore) break;
      if (r == levee::resp::RequestParser::Result::kError) {
        out.error = p.error();
        return out;
      }
      if (!p.args().empty()) out.commands.push_back(p.args());
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  bool authenticated = data[0] & 1;
  size_t step = 1 + data[1] % 17;
  std::string input(reinterpret_cast<const char*>(data + 2), size - 2);
  Outcome whole = Run(input, input.size() + 1, authenticated);
  Outcome pieces = Run(input, step, authenticated);
  // An error found whole is found in pieces, and the commands before it agree.
  if (whole.error != pieces.error || whole.commands != pieces.commands) std::abort();
  return 0;
}
