// Plugin loader: the good test plugin loads; every broken fixture is refused
// with its exact user-facing message, and nothing of it stays registered.
#include "expect_error.hpp"
#include "platform/errors.hpp"
#include "platform/version_info.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"

#include <qsdk/version.hpp>

#include <gtest/gtest.h>

#include <string>

using qtool_test::expect_error;

namespace qhost {
namespace {

const std::string kRoot = QTOOL_TEST_PLUGIN_ROOT;

std::string lib(const std::string& folder, const std::string& name) {
  return kRoot + "/" + folder + "/libqplug_" + name + ".so";
}

std::string rebuild_hint(const std::string& name) {
  return "rebuild the plugin against this qtool: in the qtool build tree `cmake --build <build dir> --target qplug_" +
         name + "`; out of tree, configure it with -DCMAKE_PREFIX_PATH=<this qtool's install prefix> and rebuild";
}

// The message of the qsdk::Error that `fn` throws (and checks its category).
TEST(PluginLoader, LoadsTheTestPluginByName) {
  Registry registry;
  PluginLoader loader(registry, {kRoot + "/good"});
  const LoadedPlugin& p = loader.load("testkit");
  EXPECT_EQ(p.name, "testkit");
  EXPECT_EQ(p.version, "1.2.3");
  EXPECT_EQ(p.summary, "components for the platform tests");
  EXPECT_EQ(p.path, lib("good", "testkit"));
  const Component* tq = registry.find(qsdk::Kind::quantizer, "tq");
  ASSERT_NE(tq, nullptr);
  EXPECT_EQ(tq->provider.describe(), "plugin 'testkit' 1.2.3 (" + lib("good", "testkit") + ")");
  EXPECT_EQ(registry.names(qsdk::Kind::scheduler), std::vector<std::string>{"tconst"});
  // Loading again (by name or by path) returns the same plugin, registering nothing twice.
  EXPECT_EQ(&loader.load("testkit"), &p);
  EXPECT_EQ(&loader.load(lib("good", "testkit")), &p);
  EXPECT_EQ(loader.loaded().size(), 1u);
}

TEST(PluginLoader, NoEntryPoint) {
  Registry registry;
  PluginLoader loader(registry, {});
  std::string path = lib("no_entry", "no_entry");
  EXPECT_EQ(expect_error([&] { loader.load(path); }, qsdk::ErrorCategory::plugin),
            path +
                ": is not a qtool plugin (no build stamp: it has no .qtool_stamp section) (hint: a plugin is a "
                "shared library built with QSDK_PLUGIN(...) from <qsdk/plugin.hpp> (plugin ABI " +
                std::to_string(QTOOL_PLUGIN_ABI_VERSION) + "); a plugin built for plugin ABI 1 must be rebuilt)");
}

TEST(PluginLoader, WrongAbiVersion) {
  Registry registry;
  PluginLoader loader(registry, {});
  std::string path = lib("wrong_abi_version", "wrong_abi_version");
  // Only the stable prefix of another ABI's stamp is read: no compiler to name.
  EXPECT_EQ(expect_error([&] { loader.load(path); }, qsdk::ErrorCategory::plugin),
            path + ": plugin 'wrong_abi_version' was built for plugin ABI 99; this qhost uses plugin ABI " +
                std::to_string(QTOOL_PLUGIN_ABI_VERSION) + " (hint: " + rebuild_hint("wrong_abi_version") + ")");
}

TEST(PluginLoader, WrongTorchStampReportsEveryMismatchAtOnce) {
  Registry registry;
  PluginLoader loader(registry, {});
  std::string path = lib("wrong_torch_stamp", "wrong_torch_stamp");
  auto host = host_stamp();
  EXPECT_EQ(expect_error([&] { loader.load(path); }, qsdk::ErrorCategory::plugin),
            path +
                ": plugin 'wrong_torch_stamp' was built for libtorch 1.12.0 (CPU), cxx11-abi 0; this qhost uses "
                "libtorch " +
                torch_description(host) + ", cxx11-abi " + std::to_string(host.glibcxx_cxx11_abi) +
                " (plugin compiled with GNU 10.2.1, qhost with " + host.compiler +
                ") (hint: " + rebuild_hint("wrong_torch_stamp") + ")");
}

TEST(PluginLoader, StampMismatchListsFieldsInOrder) {
  qtool_build_stamp host = host_stamp();
  qtool_build_stamp p = host;
  EXPECT_TRUE(stamp_mismatches(p, host).empty());
  p.sdk_version = QSDK_PACK_VERSION_(9, 0, 1);
  p.torch_cuda = 12040;
  auto m = stamp_mismatches(p, host);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].plugin, "SDK 9.0.1");
  EXPECT_EQ(m[0].host, "SDK " + qsdk::version_string(host.sdk_version));
  EXPECT_EQ(m[1].plugin, "libtorch " + qsdk::version_string(host.torch_version) + " (CUDA 12.4)");
}

TEST(PluginLoader, NameMismatch) {
  Registry registry;
  PluginLoader loader(registry, {});
  std::string path = lib("name_mismatch", "name_mismatch");
  EXPECT_EQ(expect_error([&] { loader.load(path); }, qsdk::ErrorCategory::plugin),
            path +
                ": file is named for plugin 'name_mismatch' but the plugin declares itself as 'other_name' (hint: "
                "rename the file to libqplug_other_name.so or change the name in QSDK_PLUGIN(\"other_name\", ...))");
}

TEST(PluginLoader, ThrowsInRegisterLeavesNothingRegistered) {
  Registry registry;
  PluginLoader loader(registry, {});
  std::string path = lib("throws_in_register", "throws_in_register");
  EXPECT_EQ(expect_error([&] { loader.load(path); }, qsdk::ErrorCategory::plugin),
            path +
                ": plugin 'throws_in_register' failed to register its components: cannot open "
                "/nonexistent/table.bin (hint: fix the plugin's QSDK_PLUGIN body (`qhost check-plugin " +
                path + "` repeats this check))");
  EXPECT_EQ(registry.find(qsdk::Kind::quantizer, "half_registered"), nullptr);
  EXPECT_TRUE(loader.loaded().empty());
}

TEST(PluginLoader, DuplicateComponentNamesBothProviders) {
  Registry registry;
  PluginLoader loader(registry, {kRoot + "/duplicate_component"});
  auto errors = loader.load_all();  // dup_a loads first (sorted), dup_b collides
  ASSERT_EQ(errors.size(), 1u);
  std::string a = lib("duplicate_component", "dup_a"), b = lib("duplicate_component", "dup_b");
  EXPECT_EQ(std::string(errors[0].what()),
            b + ": plugin 'dup_b' failed to register its components: quantizer/dup: is registered by both plugin "
                "'dup_a' 1.0.0 (" + a + ") and plugin 'dup_b' 1.0.0 (" + b + ") (hint: remove one of the two plugins "
                "from the plugin search path, or rename the component)");
  ASSERT_NE(registry.find(qsdk::Kind::quantizer, "dup"), nullptr);
  EXPECT_EQ(registry.find(qsdk::Kind::quantizer, "dup")->provider.plugin, "dup_a");
}

TEST(PluginLoader, BadSchema) {
  Registry registry;
  PluginLoader loader(registry, {});
  std::string path = lib("bad_schema", "bad_schema");
  EXPECT_EQ(expect_error([&] { loader.load(path); }, qsdk::ErrorCategory::plugin),
            path +
                ": plugin 'bad_schema' failed to register its components: quantizer/bad: bad schema: option 'bits' "
                "has default 12 outside its range (hint: fix the plugin's Options::schema())");
  EXPECT_EQ(registry.find(qsdk::Kind::quantizer, "bad"), nullptr);
}

TEST(PluginLoader, UnknownNameSuggestsAndListsAvailable) {
  Registry registry;
  PluginLoader loader(registry, {kRoot + "/good", kRoot + "/duplicate_component"});
  EXPECT_EQ(expect_error([&] { loader.load("testkti"); }, qsdk::ErrorCategory::plugin),
            "plugin 'testkti' (libqplug_testkti.so) not found in [" + kRoot + "/good, " + kRoot +
                "/duplicate_component] (hint: did you mean 'testkit'? available plugins: dup_a, dup_b, testkit)");
}

TEST(PluginLoader, NotAPluginFileName) {
  Registry registry;
  PluginLoader loader(registry, {});
  EXPECT_EQ(expect_error([&] { loader.load("/tmp/libfoo.so"); }, qsdk::ErrorCategory::plugin),
            "/tmp/libfoo.so: is not named like a qtool plugin (hint: plugin files are called libqplug_<name>.so)");
  EXPECT_EQ(expect_error([&] { loader.load(kRoot + "/good/libqplug_missing.so"); }, qsdk::ErrorCategory::plugin),
            kRoot + "/good/libqplug_missing.so: no such plugin file (hint: check the path)");
}

TEST(PluginLoader, LoadAllReportsEveryFailureAndKeepsTheGoodOnes) {
  Registry registry;
  std::vector<std::string> dirs{kRoot + "/good"};
  for (const char* c : {"no_entry", "wrong_abi_version", "wrong_torch_stamp", "name_mismatch", "throws_in_register",
                        "bad_schema"})
    dirs.push_back(kRoot + "/" + c);
  PluginLoader loader(registry, dirs);
  auto errors = loader.load_all();
  ASSERT_EQ(errors.size(), 6u);
  std::vector<std::string> files;
  for (const auto& e : errors) files.push_back(std::string(e.what()).substr(0, std::string(e.what()).find(':')));
  EXPECT_EQ(files, (std::vector<std::string>{lib("bad_schema", "bad_schema"), lib("name_mismatch", "name_mismatch"),
                                             lib("no_entry", "no_entry"), lib("throws_in_register", "throws_in_register"),
                                             lib("wrong_abi_version", "wrong_abi_version"),
                                             lib("wrong_torch_stamp", "wrong_torch_stamp")}));
  ASSERT_EQ(loader.loaded().size(), 1u);
  EXPECT_EQ(loader.loaded()[0].name, "testkit");
}

TEST(PluginLoader, SearchPathOrderAndNames) {
  Registry registry;
  PluginLoader loader(registry, {"/b"});
  loader.add_cli_dirs({"/a1:/a2"});
  loader.add_config_dirs({"/c"});
  EXPECT_EQ(loader.search_path(), (std::vector<std::string>{"/a1", "/a2", "/c", "/b"}));
  EXPECT_EQ(PluginLoader::file_name("lsq"), "libqplug_lsq.so");
  EXPECT_EQ(PluginLoader::name_of("/x/libqplug_lsq.so"), "lsq");
  EXPECT_EQ(PluginLoader::name_of("/x/libqsdk.so"), "");
}

}  // namespace
}  // namespace qhost
