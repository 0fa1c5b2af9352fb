#include "dist/launcher.hpp"

#include <qsdk/error.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace qhost {
namespace {

std::atomic<int> g_forward_signal{0};

void on_signal(int sig) { g_forward_signal.store(sig); }

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw qsdk::Error(qsdk::ErrorCategory::runtime, "--nproc", "cannot find the qhost executable");
  return std::string(buf, static_cast<size_t>(n));
}

// Copies a child's output to ours, a line at a time, each with the rank prefix.
void forward_output(int fd, int rank, std::mutex& out_mutex) {
  const std::string prefix = "[rank " + std::to_string(rank) + "] ";
  std::string pending;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t i = 0; i < pending.size(); ++i)
      if (pending[i] == '\n' || pending[i] == '\r') {
        if (i > start) {
          std::lock_guard<std::mutex> lock(out_mutex);
          std::fprintf(stdout, "%s%.*s\n", prefix.c_str(), static_cast<int>(i - start), pending.data() + start);
          std::fflush(stdout);
        }
        start = i + 1;
      }
    pending.erase(0, start);
  }
  if (!pending.empty()) {
    std::lock_guard<std::mutex> lock(out_mutex);
    std::fprintf(stdout, "%s%s\n", prefix.c_str(), pending.c_str());
    std::fflush(stdout);
  }
  ::close(fd);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return "was killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "stopped";
}

std::string random_token() {
  std::random_device rd;
  char buf[65];
  for (int i = 0; i < 32; ++i) std::snprintf(buf + 2 * i, 3, "%02x", static_cast<unsigned>(rd() & 0xff));
  return std::string(buf, 64);
}

// The ranks' rendezvous: a c10d FileStore in a folder only this user can enter
// (mkdtemp makes it 0700), so a local job opens no port that anyone could join.
struct PrivateStoreDir {
  std::string dir;
  PrivateStoreDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "qhost-rendezvous-XXXXXX").string();
    if (!::mkdtemp(tmpl.data()))
      throw qsdk::Error(qsdk::ErrorCategory::runtime, "--nproc",
                        std::string("cannot create a private rendezvous folder: ") + std::strerror(errno),
                        "check TMPDIR");
    dir = tmpl;
  }
  ~PrivateStoreDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

}  // namespace

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw qsdk::Error(qsdk::ErrorCategory::runtime, "--nproc", "cannot open a socket to find a free port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  if (port == 0) throw qsdk::Error(qsdk::ErrorCategory::runtime, "--nproc", "cannot find a free port on 127.0.0.1",
                                   "set MASTER_PORT to a free port");
  return port;
}

int launch_local_ranks(int nproc, const std::vector<std::string>& args, int grace_s) {
  const std::string exe = self_exe();
  const char* addr_env = std::getenv("MASTER_ADDR");
  const char* port_env = std::getenv("MASTER_PORT");
  const std::string addr = addr_env && *addr_env ? addr_env : "127.0.0.1";
  const std::string port = port_env && *port_env ? port_env : std::to_string(free_local_port());
  const PrivateStoreDir store_dir;
  const std::string store_file = store_dir.dir + "/store";
  const std::string job_id = "local-" + std::to_string(::getpid());
  const std::string token = random_token();
  std::fprintf(stdout, "qhost: starting %d local ranks (rendezvous: file store in %s, job %s)\n", nproc,
               store_dir.dir.c_str(), job_id.c_str());
  std::fflush(stdout);

  std::vector<pid_t> pids(static_cast<size_t>(nproc), -1);
  std::vector<std::thread> readers;
  std::mutex out_mutex;
  const pid_t parent = ::getpid();
  for (int r = 0; r < nproc; ++r) {
    int fds[2];
    if (::pipe(fds) != 0) throw qsdk::Error(qsdk::ErrorCategory::runtime, "--nproc", "cannot create a pipe");
    const pid_t pid = ::fork();
    if (pid < 0) throw qsdk::Error(qsdk::ErrorCategory::runtime, "--nproc", "cannot fork rank " + std::to_string(r));
    if (pid == 0) {
      // Child: die with the launcher; output into the pipe; torchrun's variables.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(6);
      ::dup2(fds[1], STDOUT_FILENO);
      ::dup2(fds[1], STDERR_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", addr.c_str(), 1);
      ::setenv("MASTER_PORT", port.c_str(), 1);
      ::setenv("QTOOL_RENDEZVOUS_FILE", store_file.c_str(), 1);
      ::setenv("QTOOL_JOB_ID", job_id.c_str(), 1);
      ::setenv("QTOOL_JOB_TOKEN", token.c_str(), 1);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(exe.c_str()));
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      std::fprintf(stderr, "cannot start %s: %s\n", exe.c_str(), std::strerror(errno));
      ::_exit(127);
    }
    ::close(fds[1]);
    pids[static_cast<size_t>(r)] = pid;
    readers.emplace_back(forward_output, fds[0], r, std::ref(out_mutex));
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  struct sigaction old_int {}, old_term {};
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);

  int running = nproc;
  int result = 0;
  int failed_rank = -1;
  auto stop_at = std::chrono::steady_clock::time_point::max();
  auto signal_all = [&](int sig) {
    for (auto pid : pids)
      if (pid > 0) ::kill(pid, sig);
  };
  while (running > 0) {
    if (const int sig = g_forward_signal.exchange(0)) {
      signal_all(sig);
      if (result == 0) result = 128 + sig;
      stop_at = std::min(stop_at, std::chrono::steady_clock::now() + std::chrono::seconds(grace_s));
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      int rank = -1;
      for (int r = 0; r < nproc; ++r)
        if (pids[static_cast<size_t>(r)] == pid) rank = r;
      if (rank < 0) continue;
      pids[static_cast<size_t>(rank)] = -1;
      --running;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && failed_rank < 0 && result == 0) {
        failed_rank = rank;
        result = WIFEXITED(status) ? WEXITSTATUS(status) : 6;
        std::lock_guard<std::mutex> lock(out_mutex);
        std::fprintf(stderr, "qhost: rank %d %s; stopping the other %d rank(s)\n", rank, describe_status(status).c_str(),
                     running);
        std::fflush(stderr);
        signal_all(SIGTERM);
        stop_at = std::chrono::steady_clock::now() + std::chrono::seconds(grace_s);
      }
      continue;
    }
    if (std::chrono::steady_clock::now() > stop_at) {
      signal_all(SIGKILL);
      stop_at = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (auto& t : readers) t.join();
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  if (failed_rank >= 0)
    std::fprintf(stderr, "qhost: the job failed: rank %d failed first (exit code %d); the last checkpoint is intact, "
                         "rerun with --resume\n",
                 failed_rank, result);
  return result;
}

}  // namespace qhost
