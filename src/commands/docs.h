// Command argument documentation for COMMAND DOCS (see docs.cc).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "resp/reply.h"

namespace levee::commands {

struct DocArg {
  std::string name;
  std::string type;   // key, string, integer, double, pattern, pure-token, oneof, block
  std::string token;  // the literal word that introduces it, if any
  bool optional = false;
  bool multiple = false;
  std::vector<DocArg> children;  // oneof and block
};

std::vector<DocArg> CommandArguments(std::string_view command);
bool HasSyntax(std::string_view command);
void ReplyArguments(resp::ReplyBuilder& r, const std::vector<DocArg>& args);

}  // namespace levee::commands
