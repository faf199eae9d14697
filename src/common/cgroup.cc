#include "common/cgroup.h"

#include <fstream>
#include <sstream>

namespace levee {
namespace {

// path and each of its ancestors under base: /a/b -> base/a/b, base/a, base.
void AddWithAncestors(const std::string& base, std::string path, bool v2, std::vector<CgroupDir>* out) {
  while (!path.empty() && path != "/") {
    out->push_back(CgroupDir{base + path, v2});
    size_t slash = path.rfind('/');
    path = slash == std::string::npos ? "" : path.substr(0, slash);
  }
  out->push_back(CgroupDir{base, v2});
}

}  // namespace

std::vector<CgroupDir> CgroupDirs(const std::string& root, const std::string& v1_controller) {
  std::vector<CgroupDir> dirs;
  const std::string v2_base = root + "/sys/fs/cgroup", v1_base = root + "/sys/fs/cgroup/" + v1_controller;
  bool saw_v2 = false, saw_v1 = false;
  std::ifstream f(root + "/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    // hierarchy-id:controllers:path
    size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) {
      AddWithAncestors(v2_base, path, true, &dirs);
      saw_v2 = true;
      continue;
    }
    std::stringstream ss(controllers);
    std::string c;
    while (std::getline(ss, c, ',')) {
      if (c != v1_controller) continue;
      AddWithAncestors(v1_base, path, false, &dirs);
      saw_v1 = true;
    }
  }
  if (!saw_v2) dirs.push_back(CgroupDir{v2_base, true});
  if (!saw_v1) dirs.push_back(CgroupDir{v1_base, false});
  return dirs;
}

std::string FirstLine(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (!f || !std::getline(f, line)) return "";
  return line;
}

}  // namespace levee
