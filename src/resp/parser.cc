#include "resp/parser.h"

#include <charconv>
#include <cstring>

namespace levee::resp {
namespace {

// Parses the decimal integer in [p, end); false unless the whole range is one.
bool ParseLongLong(const char* p, const char* end, long long* v) {
  if (p == end) return false;
  auto [ptr, ec] = std::from_chars(p, end, *v);
  return ec == std::errc() && ptr == end;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

RequestParser::Result RequestParser::Fail(std::string msg) {
  error_ = std::move(msg);
  Reset();
  return Result::kError;
}

void RequestParser::Reset() {
  multibulk_left_ = 0;
  bulk_len_ = -1;
  buffered_bytes_ = 0;
}

RequestParser::Result RequestParser::Parse(std::string_view buf, size_t* consumed) {
  *consumed = 0;
  size_t pos = 0;
  if (multibulk_left_ == 0) {
    args_.clear();
    if (buf.empty()) return Result::kNeedMore;
    if (buf[0] != '*') return ParseInline(buf, consumed);
    const char* nl = static_cast<const char*>(memchr(buf.data(), '\n', buf.size()));
    if (nl == nullptr) {
      if (buf.size() > limits_.max_inline_len) return Fail("too big mbulk count string");
      return Result::kNeedMore;
    }
    const char* end = nl;
    if (end > buf.data() && end[-1] == '\r') end--;
    long long n;
    if (!ParseLongLong(buf.data() + 1, end, &n) ||
        n > static_cast<long long>(limits_.max_multibulk_len)) {
      return Fail("invalid multibulk length");
    }
    if (!authenticated_ && n > static_cast<long long>(limits_.unauth_max_multibulk_len)) {
      return Fail("unauthenticated multibulk length");
    }
    pos = nl - buf.data() + 1;
    if (n <= 0) {  // "*0" and "*-1" are empty commands, as in Redis
      *consumed = pos;
      return Result::kCommand;
    }
    multibulk_left_ = n;
    args_.reserve(static_cast<size_t>(std::min<long long>(n, 1024)));
  }

  while (multibulk_left_ > 0) {
    if (bulk_len_ < 0) {
      if (pos >= buf.size()) break;
      if (buf[pos] != '$') {
        std::string got(1, buf[pos]);
        return Fail("expected '$', got '" + got + "'");
      }
      const char* start = buf.data() + pos;
      const char* nl = static_cast<const char*>(memchr(start, '\n', buf.size() - pos));
      if (nl == nullptr) {
        if (buf.size() - pos > limits_.max_inline_len) return Fail("too big bulk count string");
        break;
      }
      const char* end = nl;
      if (end > start && end[-1] == '\r') end--;
      long long len;
      if (!ParseLongLong(start + 1, end, &len) || len < 0 ||
          static_cast<unsigned long long>(len) > limits_.max_bulk_len) {
        return Fail("invalid bulk length");
      }
      if (!authenticated_ && static_cast<size_t>(len) > limits_.unauth_max_bulk_len) {
        return Fail("unauthenticated bulk length");
      }
      bulk_len_ = len;
      pos = nl - buf.data() + 1;
    }
    size_t need = static_cast<size_t>(bulk_len_) + 2;
    if (buf.size() - pos < need) break;
    args_.emplace_back(buf.data() + pos, static_cast<size_t>(bulk_len_));
    buffered_bytes_ += static_cast<size_t>(bulk_len_) + sizeof(std::string);
    pos += need;
    bulk_len_ = -1;
    multibulk_left_--;
  }
  *consumed = pos;
  if (multibulk_left_ > 0) return Result::kNeedMore;
  Reset();
  return Result::kCommand;
}

RequestParser::Result RequestParser::ParseInline(std::string_view buf, size_t* consumed) {
  const char* nl = static_cast<const char*>(memchr(buf.data(), '\n', buf.size()));
  if (nl == nullptr) {
    if (buf.size() > limits_.max_inline_len) return Fail("too big inline request");
    return Result::kNeedMore;
  }
  size_t len = nl - buf.data();
  std::string_view line = buf.substr(0, len);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!SplitInlineArgs(line, &args_)) return Fail("unbalanced quotes in request");
  if (!authenticated_ && args_.size() > limits_.unauth_max_multibulk_len) {
    return Fail("unauthenticated multibulk length");
  }
  *consumed = len + 1;
  return Result::kCommand;
}

bool SplitInlineArgs(std::string_view line, std::vector<std::string>* out) {
  out->clear();
  size_t i = 0;
  const size_t n = line.size();
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
  while (true) {
    while (i < n && is_space(line[i])) i++;
    if (i >= n) return true;
    std::string cur;
    bool in_dq = false, in_sq = false;
    while (true) {
      if (in_dq) {
        if (i >= n) return false;
        if (line[i] == '\\' && i + 3 < n && line[i + 1] == 'x' && HexDigit(line[i + 2]) >= 0 &&
            HexDigit(line[i + 3]) >= 0) {
          cur.push_back(static_cast<char>(HexDigit(line[i + 2]) * 16 + HexDigit(line[i + 3])));
          i += 3;
        } else if (line[i] == '\\' && i + 1 < n) {
          i++;
          char c = line[i];
          switch (c) {
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'b': c = '\b'; break;
            case 'a': c = '\a'; break;
            default: break;
          }
          cur.push_back(c);
        } else if (line[i] == '"') {
          // A closing quote must be followed by a space or the end.
          if (i + 1 < n && !is_space(line[i + 1])) return false;
          in_dq = false;
          i++;
          break;
        } else {
          cur.push_back(line[i]);
        }
      } else if (in_sq) {
        if (i >= n) return false;
        if (line[i] == '\\' && i + 1 < n && line[i + 1] == '\'') {
          i++;
          cur.push_back('\'');
        } else if (line[i] == '\'') {
          if (i + 1 < n && !is_space(line[i + 1])) return false;
          in_sq = false;
          i++;
          break;
        } else {
          cur.push_back(line[i]);
        }
      } else {
        if (i >= n || is_space(line[i])) break;
        if (line[i] == '"') {
          in_dq = true;
        } else if (line[i] == '\'') {
          in_sq = true;
        } else {
          cur.push_back(line[i]);
        }
      }
      i++;
    }
    out->push_back(std::move(cur));
  }
}

}  // namespace levee::resp
