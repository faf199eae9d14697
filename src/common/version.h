// levee's version, reported by `levee version`, INFO and HELLO.
#pragma once

namespace levee {
inline constexpr const char* kVersion = "0.1.0";
}
