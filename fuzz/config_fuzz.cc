// libFuzzer target for the configuration loader (fuzz/README.md): a YAML
// file levee.yaml or a ConfigMap supplies. Bad input is an InvalidArgument
// naming the setting, never a crash or an exception out of the loader.
#include <cstdint>
#include <string>

#include "common/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  levee::Config c;
  levee::Status st = c.LoadYamlText(in, "fuzz.yaml");
  if (st.ok()) {
    // Whatever was accepted reads back as its type.
    for (const auto& e : levee::Config::Entries()) {
      if (e.type == levee::Config::Type::kInt || e.type == levee::Config::Type::kBytes) (void)c.GetInt(e.name);
      if (e.type == levee::Config::Type::kBool) (void)c.GetBool(e.name);
    }
  }
  return 0;
}
