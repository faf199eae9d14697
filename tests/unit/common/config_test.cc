#include "common/config.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#ifndef LEVEE_SOURCE_DIR
#define LEVEE_SOURCE_DIR "."
#endif

namespace levee {
namespace {

std::string WriteTemp(const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("levee-config-" + std::to_string(::getpid()) + "-" +
                                                        std::to_string(std::rand()) + ".yaml");
  std::ofstream(path) << text;
  return path.string();
}

TEST(ConfigTest, SampleFileDocumentsEverySettingAtItsDefault) {
  std::string path = std::string(LEVEE_SOURCE_DIR) + "/levee.yaml";
  Config c;
  ASSERT_TRUE(c.LoadYamlFile(path).ok()) << c.LoadYamlFile(path).ToString();
  YAML::Node root = YAML::LoadFile(path);
  for (const auto& e : Config::Entries()) {
    ASSERT_TRUE(root[e.name]) << "levee.yaml does not document '" << e.name << "'";
    Config fresh;
    EXPECT_EQ(c.GetString(e.name), fresh.GetString(e.name)) << e.name << " in levee.yaml is not the default";
  }
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

TEST(ConfigTest, RewriteEditsChangedLinesKeepsCommentsAndAppendsTheRest) {
  std::string path = WriteTemp(
      "# header comment\n"
      "maxclients: 100   # trailing comment\n"
      "\n"
      "# about the log\n"
      "log-level: info\n"
      "sync-key-prefixes: \"a:\"  # quoted # not a comment start\n");
  Config c;
  ASSERT_TRUE(c.LoadYamlFile(path).ok());
  ASSERT_TRUE(c.Set("maxclients", "250", "CONFIG SET").ok());
  ASSERT_TRUE(c.Set("sync-key-prefixes", "order:,pay \"x\"", "CONFIG SET").ok());
  ASSERT_TRUE(c.Set("replicaof", "10.0.0.1:6379", "REPLICAOF").ok());
  ASSERT_TRUE(c.Rewrite(path).ok());
  std::string text = ReadAll(path);
  EXPECT_EQ(text,
            "# header comment\n"
            "maxclients: 250   # trailing comment\n"
            "\n"
            "# about the log\n"
            "log-level: info\n"
            "sync-key-prefixes: \"order:,pay \\\"x\\\"\"  # quoted # not a comment start\n"
            "\n"
            "# Added by CONFIG REWRITE (settings that differ from their defaults).\n"
            "replicaof: \"10.0.0.1:6379\"\n");
  // Loading the result gives the running values back; a second rewrite
  // changes nothing.
  Config again;
  ASSERT_TRUE(again.LoadYamlFile(path).ok());
  for (const auto& e : Config::Entries()) EXPECT_EQ(again.GetString(e.name), c.GetString(e.name)) << e.name;
  ASSERT_TRUE(again.Rewrite(path).ok());
  EXPECT_EQ(ReadAll(path), text);
  std::filesystem::remove(path);
}

TEST(ConfigTest, RewriteIntoAnUnwritableDirectoryNamesThePathAndChangesNothing) {
  Config c;
  Status st = c.Rewrite("/proc/levee-no-such-dir/levee.yaml");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/proc/levee-no-such-dir/levee.yaml"), std::string::npos) << st.ToString();
}

TEST(ConfigTest, UnknownKeySuggestsTheClosestName) {
  Config c;
  Status st = c.LoadYamlFile(WriteTemp("prot: 7000\n"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("unknown setting 'prot'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("did you mean 'port'"), std::string::npos) << st.message();
}

TEST(ConfigTest, WrongTypesAndRangesNameTheKeyAndWhatIsAllowed) {
  Config c;
  Status st = c.LoadYamlFile(WriteTemp("port: seventy\n"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'port'"), std::string::npos);
  EXPECT_NE(st.message().find("from 0 to 65535"), std::string::npos) << st.message();

  st = c.Set("port", "70000", "flag --port");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("flag --port"), std::string::npos);

  st = c.Set("fsync", "sometimes", "flag --fsync");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("one of always, everysec, no"), std::string::npos) << st.message();

  // A number that may also be a word.
  EXPECT_TRUE(c.Set("blob-cache-mb", "AUTO", "flag --blob-cache-mb").ok());
  EXPECT_EQ(c.GetString("blob-cache-mb"), "auto");
  EXPECT_TRUE(c.Set("blob-cache-mb", "512", "flag --blob-cache-mb").ok());
  EXPECT_EQ(c.GetInt("blob-cache-mb"), 512);
  st = c.Set("blob-cache-mb", "lots", "flag --blob-cache-mb");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("an integer from 0 to 16777216, or auto"), std::string::npos) << st.message();

  st = c.LoadYamlFile(WriteTemp("port: [1, 2]\n"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("single value"), std::string::npos);

  st = c.LoadYamlFile(WriteTemp("port: 1\n  bad indentation: [\n"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not valid YAML"), std::string::npos);
}

TEST(ConfigTest, EnvironmentOverridesFileAndNamesTheVariable) {
  Config c;
  ASSERT_TRUE(c.LoadYamlFile(WriteTemp("port: 7000\nfsync: always\n")).ok());
  std::string e1 = "LEVEE_PORT=7100", e2 = "LEVEE_DATA_DIR=/tmp/x", e3 = "OTHER=1";
  std::string e4 = "LEVEE_SERVICE_HOST=10.0.0.1", e5 = "LEVEE_PORT_6379_TCP=tcp://10.0.0.1:6379";
  char* env[] = {e1.data(), e2.data(), e3.data(), e4.data(), e5.data(), nullptr};
  std::vector<std::string> warnings;
  ASSERT_TRUE(c.LoadEnvironment(env, &warnings).ok());
  EXPECT_EQ(warnings.size(), 2u);  // Kubernetes service-link variables are not settings
  EXPECT_EQ(c.GetInt("port"), 7100);
  EXPECT_EQ(c.GetString("data-dir"), "/tmp/x");
  EXPECT_EQ(c.GetString("fsync"), "always");

  std::string bad = "LEVEE_MAXCLIENTS=0";
  char* env2[] = {bad.data(), nullptr};
  Status st = c.LoadEnvironment(env2, &warnings);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("LEVEE_MAXCLIENTS"), std::string::npos) << st.message();
}

TEST(ConfigTest, KubernetesServiceLinkValuesAreIgnoredNotFatal) {
  Config c;
  std::string e = "LEVEE_PORT=tcp://10.96.0.12:6379";
  char* env[] = {e.data(), nullptr};
  std::vector<std::string> warnings;
  ASSERT_TRUE(c.LoadEnvironment(env, &warnings).ok());
  EXPECT_EQ(c.GetInt("port"), 6379);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("enableServiceLinks"), std::string::npos);
}

TEST(ConfigTest, SizesTakeRedisUnits) {
  Config c;
  ASSERT_TRUE(c.Set("proto-max-bulk-len", "1mb", "test").ok());
  EXPECT_EQ(c.GetInt("proto-max-bulk-len"), 1 << 20);
  ASSERT_TRUE(c.Set("proto-max-bulk-len", "2000k", "test").ok());
  EXPECT_EQ(c.GetInt("proto-max-bulk-len"), 2000000);
  EXPECT_FALSE(c.Set("proto-max-bulk-len", "12parsecs", "test").ok());
  EXPECT_FALSE(c.Set("proto-max-bulk-len", "-5", "test").ok());
}

TEST(ConfigTest, ConfigSetRefusesStartupOnlySettingsAndNotifiesWatchers) {
  Config c;
  Status st = c.Set("port", "7000", "CONFIG SET");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("can't be changed at run time"), std::string::npos);
  std::string seen;
  c.OnChange("fsync", [&](const std::string& v) { seen = v; });
  ASSERT_TRUE(c.Set("fsync", "ALWAYS", "CONFIG SET").ok());
  EXPECT_EQ(seen, "always");
}

// Found by fuzz/config_fuzz.cc: a key that is a list or mapping made
// yaml-cpp throw out of the loader (levee crashed on the file).
TEST(ConfigTest, NonScalarKeysAreAnErrorNotAnException) {
  Config c;
  for (const char* text : {"? [a, b]\n: 1\n", "? {a: 1}\n: b\n", "? \n: 1\n", "port: [1, 2]\n", "port:\n"}) {
    Status st = c.LoadYamlText(text, "x.yaml");
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << text << " -> " << st.ToString();
  }
}

}  // namespace
}  // namespace levee
