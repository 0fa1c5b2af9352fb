// The stamp is read from the plugin file before any plugin code runs, hostile
// ELF files get clean errors, and a plugin whose static initialiser throws is
// refused by the probe process instead of ending this one (issue 11).
#include "expect_error.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/plugin_stamp.hpp"
#include "plugins/registry.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>

#include <elf.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

using qtool_test::expect_error;

namespace qhost {
namespace {

const std::string kRoot = QTOOL_TEST_PLUGIN_ROOT;

std::string lib(const std::string& folder, const std::string& name) {
  return kRoot + "/" + folder + "/libqplug_" + name + ".so";
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Before: dlopen ran the fixture's static initialiser (std::abort) before the
// stamp was looked at, killing this test process.
TEST(PluginStamp, CheckedBeforeAnyOfItsCodeRuns) {
  Registry registry;
  PluginLoader loader(registry, {});
  std::string e =
      expect_error([&] { loader.load(lib("stamp_before_code", "stamp_before_code")); }, qsdk::ErrorCategory::plugin);
  EXPECT_TRUE(has(e, "plugin 'stamp_before_code' was built for plugin ABI " +
                         std::to_string(QTOOL_PLUGIN_ABI_VERSION + 7) + "; this qhost uses plugin ABI " +
                         std::to_string(QTOOL_PLUGIN_ABI_VERSION)))
      << e;
  EXPECT_TRUE(loader.loaded().empty());
}

TEST(PluginStamp, NoteOfTheGoodPlugin) {
  auto note = read_stamp_note(lib("good", "testkit"));
  EXPECT_EQ(std::string(note.name), "testkit");
  EXPECT_EQ(note.plugin_abi, QTOOL_PLUGIN_ABI_VERSION);
  EXPECT_EQ(note.size, sizeof(qtool_plugin_stamp_note));
}

// Before: std::terminate inside dlopen; then, in the probe, the exception
// unwound out of dlopen into the child's copy of qhost.
TEST(PluginStamp, StaticInitialiserThatThrowsIsRefusedAndOthersStillLoad) {
  Registry registry;
  PluginLoader loader(registry, {kRoot + "/good", kRoot + "/static_init_throws"});
  auto errors = loader.load_all();
  ASSERT_EQ(errors.size(), 1u);
  std::string e = errors[0].what();
  EXPECT_EQ(errors[0].category(), qsdk::ErrorCategory::plugin);
  EXPECT_TRUE(has(e, lib("static_init_throws", "static_init_throws") +
                         ": plugin 'static_init_throws': its static initialisers threw an exception"))
      << e;
  EXPECT_TRUE(has(e, "cannot open /nonexistent/lookup.bin")) << e;  // what() of the exception, from the probe's stderr
  ASSERT_EQ(loader.loaded().size(), 1u);
  EXPECT_EQ(loader.loaded()[0].name, "testkit");
}

// --- Hostile files: a copy of the good plugin with one thing broken. -------

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Elf {
  std::string bytes;
  Elf64_Ehdr eh() const {
    Elf64_Ehdr h;
    std::memcpy(&h, bytes.data(), sizeof h);
    return h;
  }
  void set_eh(const Elf64_Ehdr& h) { std::memcpy(bytes.data(), &h, sizeof h); }
  Elf64_Shdr sh(size_t i) const {
    Elf64_Shdr s;
    std::memcpy(&s, bytes.data() + eh().e_shoff + i * sizeof s, sizeof s);
    return s;
  }
  void set_sh(size_t i, const Elf64_Shdr& s) { std::memcpy(bytes.data() + eh().e_shoff + i * sizeof s, &s, sizeof s); }
  // Index of the section called `name`.
  size_t find(const std::string& name) const {
    const Elf64_Shdr names = sh(eh().e_shstrndx);
    for (size_t i = 0; i < eh().e_shnum; ++i)
      if (name == bytes.data() + names.sh_offset + sh(i).sh_name) return i;
    return 0;
  }
};

class HostileElf : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("qtool_hostile_elf_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    good_.bytes = slurp(lib("good", "testkit"));
    ASSERT_GT(good_.bytes.size(), 4096u);
    stamp_ = good_.find(".qtool_stamp");
    ASSERT_NE(stamp_, 0u);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `bytes` as a plugin file, loads it, returns the error.
  std::string load(const std::string& bytes) {
    auto path = dir_ / ("case" + std::to_string(++count_)) / "libqplug_testkit.so";
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << bytes;
    Registry registry;
    PluginLoader loader(registry, {});
    std::string e = expect_error([&] { loader.load(path.string()); }, qsdk::ErrorCategory::plugin);
    EXPECT_TRUE(loader.loaded().empty());
    EXPECT_EQ(registry.find(qsdk::Kind::quantizer, "tq"), nullptr);  // never dlopened
    return e;
  }
  std::string load_patched(const std::function<void(Elf&)>& patch) {
    Elf e = good_;
    patch(e);
    return load(e.bytes);
  }

  std::filesystem::path dir_;
  Elf good_;
  size_t stamp_ = 0;
  int count_ = 0;
};

TEST_F(HostileElf, NotElfTruncatedOrForAnotherMachine) {
  EXPECT_TRUE(has(load("#!/bin/sh\necho hello\n"), "is not a qtool plugin (not an ELF file)"));
  EXPECT_TRUE(has(load(""), "is not a qtool plugin (not an ELF file)"));
  EXPECT_TRUE(has(load(good_.bytes.substr(0, 40)), "malformed ELF file: ELF header lies outside the file"));
  EXPECT_TRUE(has(load_patched([](Elf& e) { e.bytes[EI_CLASS] = ELFCLASS32; }), "not a 64-bit little-endian"));
  EXPECT_TRUE(has(load_patched([](Elf& e) {
                    auto h = e.eh();
                    h.e_machine = EM_RISCV;
                    e.set_eh(h);
                  }),
                  "is not a qtool plugin for this machine"));
  EXPECT_TRUE(has(load_patched([](Elf& e) {
                    auto h = e.eh();
                    h.e_type = ET_EXEC;
                    e.set_eh(h);
                  }),
                  "not a shared library"));
}

TEST_F(HostileElf, SectionTableOutOfBounds) {
  const uint64_t size = good_.bytes.size();
  for (uint64_t shoff : {size - 10, size, uint64_t(0xFFFFFFFFFFFFFFF0ull), uint64_t(1) << 62}) {
    EXPECT_TRUE(has(load_patched([&](Elf& e) {
                      auto h = e.eh();
                      h.e_shoff = shoff;
                      e.set_eh(h);
                    }),
                    "do not fit in its"))
        << shoff;
  }
  EXPECT_TRUE(has(load_patched([](Elf& e) {
                    auto h = e.eh();
                    h.e_shnum = 0xFF00;
                    e.set_eh(h);
                  }),
                  "malformed ELF file"));
  // e_shnum = 0: the count is in section 0's sh_size.
  EXPECT_TRUE(has(load_patched([](Elf& e) {
                    auto s0 = e.sh(0);
                    s0.sh_size = ~uint64_t(0);
                    e.set_sh(0, s0);
                    auto h = e.eh();
                    h.e_shnum = 0;
                    e.set_eh(h);
                  }),
                  "section headers at offset"));
  EXPECT_TRUE(has(load_patched([](Elf& e) {
                    auto h = e.eh();
                    h.e_shentsize = 32;
                    e.set_eh(h);
                  }),
                  "section header size 32"));
  EXPECT_TRUE(has(load_patched([](Elf& e) {
                    auto h = e.eh();
                    h.e_shstrndx = static_cast<uint16_t>(h.e_shnum + 5);
                    e.set_eh(h);
                  }),
                  "section name table index out of range"));
}

TEST_F(HostileElf, NamesOutOfBoundsOrUnterminated) {
  EXPECT_TRUE(has(load_patched([](Elf& e) {
                    auto s = e.sh(1);
                    s.sh_name = 0xFFFFFFF0u;
                    e.set_sh(1, s);
                  }),
                  "a section name lies outside the name table"));
  EXPECT_TRUE(has(load_patched([](Elf& e) {
                    auto names = e.sh(e.eh().e_shstrndx);
                    names.sh_offset = e.bytes.size() - 4;
                    e.set_sh(e.eh().e_shstrndx, names);
                  }),
                  "section name table lies outside the file"));
  EXPECT_TRUE(has(load_patched([](Elf& e) {
                    auto names = e.sh(e.eh().e_shstrndx);
                    e.bytes[names.sh_offset + names.sh_size - 1] = 'x';  // last name loses its NUL
                    auto s = e.sh(1);
                    s.sh_name = static_cast<uint32_t>(names.sh_size - 1);
                    e.set_sh(1, s);
                  }),
                  "unterminated section name"));
}

TEST_F(HostileElf, MissingDuplicatedOrMalformedStamp) {
  const size_t stamp = stamp_;
  EXPECT_TRUE(has(load_patched([&](Elf& e) {
                    auto names = e.sh(e.eh().e_shstrndx);
                    e.bytes[names.sh_offset + e.sh(stamp).sh_name + 1] = 'Q';  // ".Qtool_stamp"
                  }),
                  "no build stamp"));
  EXPECT_TRUE(has(load_patched([&](Elf& e) {
                    e.set_sh(1, e.sh(stamp));  // a second section of that name
                  }),
                  "has more than one .qtool_stamp section"));
  EXPECT_TRUE(has(load_patched([&](Elf& e) {
                    auto s = e.sh(stamp);
                    s.sh_size = 8;
                    e.set_sh(stamp, s);
                  }),
                  "has a malformed build stamp (.qtool_stamp section of type 1, 8 bytes)"));
  EXPECT_TRUE(has(load_patched([&](Elf& e) {
                    auto s = e.sh(stamp);
                    s.sh_size = 1000;
                    e.set_sh(stamp, s);
                  }),
                  "has a malformed build stamp (1000-byte section"));
  EXPECT_TRUE(has(load_patched([&](Elf& e) {
                    auto s = e.sh(stamp);
                    s.sh_offset = ~uint64_t(0) - 8;
                    e.set_sh(stamp, s);
                  }),
                  "malformed ELF file: build stamp lies outside the file"));
  EXPECT_TRUE(has(load_patched([&](Elf& e) {
                    auto s = e.sh(stamp);
                    s.sh_type = SHT_NOBITS;
                    e.set_sh(stamp, s);
                  }),
                  "has a malformed build stamp"));
  EXPECT_TRUE(has(load_patched([&](Elf& e) { e.bytes[e.sh(stamp).sh_offset] = 'X'; }), "wrong magic bytes"));
  EXPECT_TRUE(has(load_patched([&](Elf& e) {
                    auto off = e.sh(stamp).sh_offset + offsetof(qtool_plugin_stamp_note, name);
                    std::memset(&e.bytes[off], 'n', QTOOL_PLUGIN_STAMP_TEXT);  // no NUL
                  }),
                  "has a malformed build stamp (unterminated text)"));
  EXPECT_TRUE(has(load_patched([&](Elf& e) {
                    auto off = e.sh(stamp).sh_offset + offsetof(qtool_plugin_stamp_note, torch_version);
                    uint32_t v = (1u << 16) | (9u << 8);
                    std::memcpy(&e.bytes[off], &v, sizeof v);
                  }),
                  "plugin 'testkit' was built for libtorch 1.9.0"));
}

}  // namespace
}  // namespace qhost
