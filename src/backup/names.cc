#include "backup/names.h"

namespace levee::backup {
namespace {

bool SafeChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

bool SafeSegment(std::string_view s) {
  if (s.empty() || s.size() > 255 || s == "." || s == "..") return false;
  for (char c : s) {
    if (!SafeChar(c)) return false;
  }
  return true;
}

}  // namespace

bool IsBackupId(std::string_view id) {
  return id.size() <= 128 && SafeSegment(id) && id[0] != '.' && id[0] != '-';
}

bool IsObjectId(std::string_view id) {
  if (id.size() != 64) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsStoreKey(std::string_view key) {
  if (key.empty() || key.size() > 1024) return false;
  size_t start = 0;
  for (;;) {
    size_t slash = key.find('/', start);
    std::string_view seg = key.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!SafeSegment(seg)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool IsDataPath(std::string_view path) { return IsStoreKey(path); }

Status CheckStoreKey(std::string_view key, const std::string& url) {
  if (IsStoreKey(key)) return Status::OK();
  std::string shown(key.substr(0, 200));
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return Status::InvalidArgument("repository " + url + ": refusing key '" + shown +
                                 "': a key is '/'-separated names of letters, digits, '.', '_' and '-' (no '.' or "
                                 "'..' name); the repository may hold a planted object: check who can write to it");
}

}  // namespace levee::backup
