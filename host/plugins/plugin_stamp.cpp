// Reading a plugin's stamp note from its ELF file, and probing its static
// initialisers in a child process: the two checks that run before the plugin
// is loaded into qhost itself.
#include "plugins/plugin_stamp.hpp"

#include <qsdk/error.hpp>

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <vector>

namespace qhost {

namespace {
using qsdk::ErrorCategory;

#if defined(__x86_64__)
constexpr uint16_t kMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kMachine = EM_AARCH64;
#elif defined(__powerpc64__)
constexpr uint16_t kMachine = EM_PPC64;
#else
constexpr uint16_t kMachine = EM_NONE;  // not checked
#endif

// Caps on what a plugin file may ask us to read: real plugins have a few dozen
// sections and a section-name table of a few hundred bytes.
constexpr uint64_t kMaxSections = 1u << 16;
constexpr uint64_t kMaxNameTable = 1u << 20;
// magic, size, plugin_abi: the part of the note every ABI keeps in place.
constexpr size_t kStableNotePrefix = 16;

[[noreturn]] void bad(const std::string& path, const std::string& what, const std::string& hint = "") {
  throw qsdk::Error(ErrorCategory::plugin, path, what, hint);
}

// An open file read with bounds-checked pread.
class ElfFile {
 public:
  explicit ElfFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) bad(path, std::string("cannot be read: ") + std::strerror(errno), "check the path and permissions");
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) bad(path, "is not a regular file");
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~ElfFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;

  uint64_t size() const { return size_; }
  // Whether [offset, offset + length) lies inside the file (overflow-safe).
  bool contains(uint64_t offset, uint64_t length) const { return offset <= size_ && length <= size_ - offset; }
  // Reads exactly `length` bytes at `offset`, or fails with `what`.
  void read(uint64_t offset, void* out, uint64_t length, const char* what) const {
    if (!contains(offset, length)) bad(path_, std::string("malformed ELF file: ") + what + " lies outside the file");
    auto* p = static_cast<char*>(out);
    while (length > 0) {
      ssize_t n = ::pread(fd_, p, length, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) bad(path_, std::string("cannot read its ") + what);
      p += n;
      offset += static_cast<uint64_t>(n);
      length -= static_cast<uint64_t>(n);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// NUL-terminated text inside a fixed-size field.
bool terminated(const char* text, size_t size) { return std::memchr(text, '\0', size) != nullptr; }
}  // namespace

qtool_plugin_stamp_note read_stamp_note(const std::string& path) {
  const std::string not_plugin_hint =
      "a plugin is a shared library built with QSDK_PLUGIN(...) from <qsdk/plugin.hpp> (plugin ABI " +
      std::to_string(QTOOL_PLUGIN_ABI_VERSION) + ")";
  ElfFile f(path);
  Elf64_Ehdr eh{};
  if (f.size() < EI_NIDENT) bad(path, "is not a qtool plugin (not an ELF file)", not_plugin_hint);
  f.read(0, eh.e_ident, EI_NIDENT, "ELF header");
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    bad(path, "is not a qtool plugin (not an ELF file)", not_plugin_hint);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    bad(path, "is not a qtool plugin for this machine (not a 64-bit little-endian ELF file)", not_plugin_hint);
  f.read(0, &eh, sizeof eh, "ELF header");
  if (kMachine != EM_NONE && eh.e_machine != kMachine)
    bad(path, "is not a qtool plugin for this machine (ELF machine " + std::to_string(eh.e_machine) + ", expected " +
                  std::to_string(kMachine) + ")",
        "build the plugin for this machine");
  if (eh.e_type != ET_DYN) bad(path, "is not a qtool plugin (not a shared library)", not_plugin_hint);
  if (eh.e_shoff == 0) bad(path, "is not a qtool plugin (its ELF section table was stripped)", not_plugin_hint);
  if (eh.e_shentsize != sizeof(Elf64_Shdr))
    bad(path, "malformed ELF file: section header size " + std::to_string(eh.e_shentsize));

  // Section count and name-table index, with the ELF escapes for large values
  // (both then live in section header 0).
  uint64_t count = eh.e_shnum;
  uint64_t names_index = eh.e_shstrndx;
  if (count == 0 || names_index == SHN_XINDEX) {
    Elf64_Shdr first{};
    f.read(eh.e_shoff, &first, sizeof first, "section header 0");
    if (count == 0) count = first.sh_size;
    if (names_index == SHN_XINDEX) names_index = first.sh_link;
  }
  if (count == 0 || count > kMaxSections || !f.contains(eh.e_shoff, count * sizeof(Elf64_Shdr)))
    bad(path, "malformed ELF file: " + std::to_string(count) + " section headers at offset " +
                  std::to_string(eh.e_shoff) + " do not fit in its " + std::to_string(f.size()) + " bytes");
  std::vector<Elf64_Shdr> sections(static_cast<size_t>(count));
  f.read(eh.e_shoff, sections.data(), count * sizeof(Elf64_Shdr), "section headers");

  if (names_index >= count) bad(path, "malformed ELF file: section name table index out of range");
  const Elf64_Shdr& names_header = sections[static_cast<size_t>(names_index)];
  if (names_header.sh_type != SHT_STRTAB || names_header.sh_size == 0 || names_header.sh_size > kMaxNameTable)
    bad(path, "malformed ELF file: bad section name table");
  std::vector<char> names(static_cast<size_t>(names_header.sh_size));
  f.read(names_header.sh_offset, names.data(), names.size(), "section name table");

  const std::string wanted = QTOOL_PLUGIN_STAMP_SECTION;
  const Elf64_Shdr* stamp = nullptr;
  for (const auto& s : sections) {
    if (s.sh_name >= names.size()) bad(path, "malformed ELF file: a section name lies outside the name table");
    const char* name = names.data() + s.sh_name;
    const size_t room = names.size() - s.sh_name;
    if (!terminated(name, room)) bad(path, "malformed ELF file: unterminated section name");
    if (wanted != name) continue;
    if (stamp)
      bad(path, "has more than one " + wanted + " section",
          "a plugin has exactly one QSDK_PLUGIN(...); QSDK_PLUGIN_STAMP_NOTE is only for hand-written entry points");
    stamp = &s;
  }
  if (!stamp)
    bad(path, "is not a qtool plugin (no build stamp: it has no " + wanted + " section)",
        not_plugin_hint + "; a plugin built for plugin ABI 1 must be rebuilt");
  if (stamp->sh_type != SHT_PROGBITS || stamp->sh_size < kStableNotePrefix)
    bad(path, "has a malformed build stamp (" + wanted + " section of type " + std::to_string(stamp->sh_type) +
                  ", " + std::to_string(stamp->sh_size) + " bytes)");

  qtool_plugin_stamp_note note{};
  f.read(stamp->sh_offset, &note, std::min<uint64_t>(stamp->sh_size, sizeof note), "build stamp");
  if (std::memcmp(note.magic, QTOOL_PLUGIN_STAMP_MAGIC, sizeof note.magic) != 0)
    bad(path, "has a malformed build stamp (wrong magic bytes)");
  if (note.plugin_abi != QTOOL_PLUGIN_ABI_VERSION) {
    // Another ABI: only the stable prefix means what we think it means.
    qtool_plugin_stamp_note prefix{};
    std::memcpy(&prefix, &note, kStableNotePrefix);
    return prefix;
  }
  if (note.size != sizeof note || stamp->sh_size != sizeof note)
    bad(path, "has a malformed build stamp (" + std::to_string(stamp->sh_size) + "-byte section, note size " +
                  std::to_string(note.size) + "; plugin ABI " + std::to_string(QTOOL_PLUGIN_ABI_VERSION) +
                  " notes are " + std::to_string(sizeof note) + " bytes)");
  if (!terminated(note.name, sizeof note.name) || !terminated(note.compiler, sizeof note.compiler))
    bad(path, "has a malformed build stamp (unterminated text)");
  return note;
}

namespace {
// Reads what is available on `fd` into `out` (keeping at most `cap` bytes, the
// last ones); false at end of file.
bool drain(int fd, std::string& out, size_t cap) {
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  out.append(buf, static_cast<size_t>(n));
  if (out.size() > cap) out.erase(0, out.size() - cap);
  return true;
}

// The last few non-empty lines of `text`, joined with " | ".
std::string tail_lines(const std::string& text, size_t lines) {
  std::vector<std::string> all;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (line.find_first_not_of(" \t\r") != std::string::npos) all.push_back(line);
    start = end + 1;
  }
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += (out.empty() ? "" : " | ") + all[i];
  return out;
}
}  // namespace

// The probe child's exit status when an initialiser threw (out of dlopen).
constexpr int kProbeThrew = 125;

// The probe child's terminate handler: an exception that cannot leave dlopen
// is printed and reported as thrown, like one that can.
[[noreturn]] void probe_terminate() {
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "%s\n", x.what());
    } catch (...) {
    }
    std::fflush(stderr);
    ::_exit(kProbeThrew);
  }
  std::abort();
}

void probe_static_initialisers(const std::string& path, const std::string& plugin, int timeout_s) {
  int err_pipe[2], status_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return;  // no probe possible: the in-process load decides
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    return;
  }
  // Nothing buffered may be written twice by the child.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Child: its stderr goes to the parent, stdout nowhere, no core file.
    struct rlimit no_core {0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::dup2(err_pipe[1], STDERR_FILENO);
    int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) ::dup2(null, STDOUT_FILENO);
    // An exception thrown by an initialiser unwinds out of dlopen into this
    // frame: it must end here, or the child would carry on as a second qhost.
    // No destructors, no atexit handlers: nothing of the plugin runs past its
    // initialisers.
    // Whether the exception unwinds out of dlopen or std::terminate ends it
    // there depends on the unwinder; either way it is reported the same.
    std::set_terminate(probe_terminate);
    try {
      void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      const char verdict = handle ? 'Y' : 'N';
      ssize_t ignored = ::write(status_pipe[1], &verdict, 1);
      (void)ignored;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      std::fflush(stderr);
      ::_exit(kProbeThrew);
    } catch (...) {
      ::_exit(kProbeThrew);
    }
    ::_exit(0);
  }
  ::close(err_pipe[1]);
  ::close(status_pipe[1]);
  if (pid < 0) {
    ::close(err_pipe[0]);
    ::close(status_pipe[0]);
    return;
  }
  std::string err, status;
  bool err_open = true, status_open = true, timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (err_open || status_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd fds[2] = {{err_open ? err_pipe[0] : -1, POLLIN, 0}, {status_open ? status_pipe[0] : -1, POLLIN, 0}};
    int r = ::poll(fds, 2, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (r < 0 && errno != EINTR) break;
    if (err_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) err_open = drain(err_pipe[0], err, 4096);
    if (status_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) status_open = drain(status_pipe[0], status, 16);
  }
  ::close(err_pipe[0]);
  ::close(status_pipe[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!timed_out && status == "Y" && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return;
  if (!timed_out && status == "N") return;  // dlopen itself failed: load_file reports it
  std::string how;
  if (timed_out)
    how = "did not finish within " + std::to_string(timeout_s) + " s";
  else if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == kProbeThrew && status.empty())
    how = "threw an exception";
  else if (WIFSIGNALED(wstatus))
    how = std::string("ended the process with signal ") + std::to_string(WTERMSIG(wstatus)) + " (" +
          ::strsignal(WTERMSIG(wstatus)) + ")";
  else if (WIFEXITED(wstatus))
    how = "ended the process with exit(" + std::to_string(WEXITSTATUS(wstatus)) + ")";
  else
    how = "ended the process";
  const std::string said = tail_lines(err, 3);
  throw qsdk::Error(ErrorCategory::plugin, path,
                    "plugin '" + plugin + "': its static initialisers " + how +
                        " when loaded in a probe process, so it was not loaded" +
                        (said.empty() ? "" : "; it printed: " + said),
                    "a global or static object of the plugin throws, aborts or crashes in its constructor, which "
                    "runs when the library is loaded, outside any error handling; construct it lazily instead "
                    "(e.g. in the QSDK_PLUGIN body, where exceptions are reported)");
}

}  // namespace qhost
