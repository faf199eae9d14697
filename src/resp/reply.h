// ReplyBuilder: writes replies in RESP2 or RESP3 so command code never has
// to know which one the client negotiated (HELLO 2|3).
//
// Where RESP3 has a richer type the RESP2 form follows Redis: a map is a flat
// array of 2n elements, a set is an array, a double is a bulk string, a
// boolean is the integer 0/1, null is "$-1" (or "*-1" for a null array), a
// verbatim string is a bulk string.
//
// Appends to a caller-owned std::string; not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace levee::resp {

class ReplyBuilder {
 public:
  ReplyBuilder(std::string* out, int protocol) : out_(out), protocol_(protocol) {}

  int protocol() const { return protocol_; }
  void set_protocol(int p) { protocol_ = p; }
  std::string* buffer() { return out_; }

  void SimpleString(std::string_view s);
  void Ok() { out_->append("+OK\r\n"); }
  // msg starts with the error code ("ERR ...", "WRONGTYPE ..."). CR and LF in
  // it are replaced by spaces so a reply can never break the framing.
  void Error(std::string_view msg);
  void Integer(int64_t v);
  void Bulk(std::string_view s);
  void Null();
  void NullArray();
  void ArrayHeader(size_t n);
  // Out-of-band data (pub/sub messages, subscribe confirmations): a RESP3
  // push, or an array in RESP2.
  void PushHeader(size_t n);
  void MapHeader(size_t n);
  void SetHeader(size_t n);
  void Double(double v);
  void Bool(bool v);
  void Verbatim(std::string_view s);

 private:
  void Header(char type, int64_t n);
  std::string* out_;
  int protocol_;
};

// Formats a double as Redis does for replies (%.17g, "inf", "-inf").
std::string FormatDouble(double v);

}  // namespace levee::resp
