// Fixed-width and varint encodings shared by every on-disk and wire format.
// Fixed-width integers are little-endian except where a format needs byte
// order to equal numeric order (PutBigEndian64, used in LevelDB keys).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace levee {

void PutFixed32(std::string* dst, uint32_t v);
void PutFixed64(std::string* dst, uint64_t v);
void PutBigEndian64(std::string* dst, uint64_t v);
void PutVarint64(std::string* dst, uint64_t v);
// A varint length followed by the bytes.
void PutLengthPrefixed(std::string* dst, std::string_view s);

uint32_t DecodeFixed32(const char* p);
uint64_t DecodeFixed64(const char* p);
uint64_t DecodeBigEndian64(const char* p);

// The Get* functions consume from the front of *in; false if *in is too short
// or malformed (then *in is unspecified).
bool GetFixed32(std::string_view* in, uint32_t* v);
bool GetFixed64(std::string_view* in, uint64_t* v);
bool GetVarint64(std::string_view* in, uint64_t* v);
bool GetLengthPrefixed(std::string_view* in, std::string_view* s);

// CRC-32 (zlib's polynomial) of data.
uint32_t Crc32(std::string_view data);
// The CRC-32 of the bytes whose CRC is seed followed by data:
// Crc32Extend(Crc32(a), b) == Crc32(a + b).
uint32_t Crc32Extend(uint32_t seed, std::string_view data);

// Lowercase hex of bytes.
std::string HexEncode(std::string_view bytes);

}  // namespace levee
