// Whole numbers read from a backup repository's JSON (manifests, the
// config object, locks, timeline histories): only an integer in the target
// type's range is accepted. nlohmann's get<int64_t>() of a float or of a
// number out of range is undefined behaviour, and repository content is
// anyone's who can write to the bucket (fuzz/backup_object_fuzz.cc found it).
//
// Throws std::invalid_argument naming the field; callers already turn
// exceptions from parsing into a Corruption status.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace levee::backup {

template <typename T>
T JsonInt(const nlohmann::json& v, const char* field) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(u);
  } else if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (std::numeric_limits<T>::is_signed ? i >= static_cast<int64_t>(std::numeric_limits<T>::min()) : i >= 0) {
      if (i < 0 || static_cast<uint64_t>(i) <= static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        return static_cast<T>(i);
      }
    }
  }
  throw std::invalid_argument(std::string("field '") + field + "' is not a whole number in range");
}

// A required field of object j.
template <typename T>
T JsonIntAt(const nlohmann::json& j, const char* field) {
  return JsonInt<T>(j.at(field), field);
}

// An optional field of object j: def when it is absent.
template <typename T>
T JsonIntOr(const nlohmann::json& j, const char* field, T def) {
  if (!j.is_object()) throw std::invalid_argument("not a JSON object");
  auto it = j.find(field);
  return it == j.end() ? def : JsonInt<T>(*it, field);
}

}  // namespace levee::backup
