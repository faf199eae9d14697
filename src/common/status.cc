#include "common/status.h"

namespace levee {

std::string Status::ToString() const {
  if (ok()) return "OK";
  const char* prefix = "";
  switch (rep_->code) {
    case Code::kOk: break;
    case Code::kInvalidArgument: prefix = "invalid argument: "; break;
    case Code::kNotFound: prefix = "not found: "; break;
    case Code::kCorruption: prefix = "corruption: "; break;
    case Code::kIOError: prefix = "I/O error: "; break;
    case Code::kBusy: prefix = "busy: "; break;
    case Code::kNoSpace: prefix = "no space: "; break;
  }
  return prefix + rep_->message;
}

}  // namespace levee
