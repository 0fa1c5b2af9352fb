// Data-parallel training on loopback (Gloo): equivalence with one process,
// identical replicas, a killed rank, resume, and both launch paths.
#include "checkpoint/checkpoint.hpp"
#include "dist/dist_env.hpp"
#include "dist/launcher.hpp"
#include "files.hpp"
#include "run_qhost.hpp"

#include <qsdk/error.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace qhost;

namespace {

using qtool_test::fresh_dir;

struct Result {
  int code = -1;
  std::string output;
  double seconds = 0.0;
};

// Runs a shell command line (qhost invocations inside it), capturing stdout+stderr.
Result run_shell(const std::string& line) {
  fs::create_directories(DP_WORK);
  const std::string log = std::string(DP_WORK) + "/last_command." + std::to_string(::getpid()) + ".txt";
  const std::string cmd = "bash -c '" + line + "' > " + log + " 2>&1";
  Result r;
  const auto t0 = std::chrono::steady_clock::now();
  const int status = std::system(cmd.c_str());
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  return r;
}

Result run_qhost(const std::string& args, const std::string& env = "") {
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = qtool_test::run_qhost(QHOST_EXE, DP_WORK, args, env);
  return {r.code, r.output, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
}

// torchrun's variables for `rank` of a 2-rank job on loopback, plus `extra` assignments.
std::string torchrun_env(int rank, int port, const std::string& extra = "") {
  return "RANK=" + std::to_string(rank) + " LOCAL_RANK=" + std::to_string(rank) +
         " WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
         (extra.empty() ? "" : " " + extra);
}

std::string config(const std::string& name) { return std::string(DP_DIR) + "/" + name; }

// Largest |a - b| / (1 + max|b|) over the tensors (parameters only, or with the running statistics).
double max_diff(const NamedTensors& a, const NamedTensors& b, bool params_only, std::string* where = nullptr,
                std::vector<double>* each = nullptr, const std::string& only = "") {
  std::map<std::string, torch::Tensor> mb(b.begin(), b.end());
  double worst = 0.0;
  for (const auto& [name, t] : a) {
    if (!only.empty() && name.find(only) == std::string::npos) continue;
    if (params_only && (name.find("running_") != std::string::npos || name.find("num_batches") != std::string::npos))
      continue;
    // Quantizer counters also count evaluation forwards, and evaluation is sharded:
    // rank 0 forwards only its part of the evaluation set.
    if (name.size() > 10 && name.compare(name.size() - 10, 10, ".iteration") == 0) continue;
    EXPECT_TRUE(mb.count(name)) << name;
    if (!mb.count(name) || t.numel() == 0) continue;
    // Relative to the tensor's scale, as the golden tests: 1e-5 means 1e-5 * (1 + max|ref|).
    const double scale = 1.0 + mb[name].to(torch::kDouble).abs().max().item<double>();
    const double d = (t.to(torch::kDouble) - mb[name].to(torch::kDouble)).abs().max().item<double>() / scale;
    if (each) each->push_back(d);
    if (d > worst) {
      worst = d;
      if (where) *where = name;
    }
  }
  return worst;
}

// 2 ranks x 32 and 1 x 64, same seed, 5 steps, SyncBN: the same parameters.
// Full precision agrees to ~1e-7. With 2-bit quantizers the ~1e-7 differences of
// summation order can move a value across a rounding boundary, which changes that
// layer's output by a whole level: so for quantized runs the bound is 1e-5 for 90%
// of the tensors (measured: median 1e-8) and 1e-4 for the rest (measured: one clip
// at 1.2e-5 after 5 steps).
void expect_two_ranks_match_one(const std::string& toml, const std::string& tag, bool quantized) {
  const auto one = fresh_dir(DP_WORK, tag + "_1x64");
  const auto two = fresh_dir(DP_WORK, tag + "_2x32");
  auto r1 = run_qhost("run " + config(toml) + " --out " + one);
  ASSERT_EQ(r1.code, 0) << r1.output;
  auto r2 = run_qhost("run " + config(toml) + " --out " + two + " --nproc 2 --set data.batch_size=32");
  ASSERT_EQ(r2.code, 0) << r2.output;
  EXPECT_NE(r2.output.find("[rank 0]"), std::string::npos) << r2.output;
  EXPECT_NE(r2.output.find("2 ranks x batch 32 = global batch 64"), std::string::npos) << r2.output;
  const auto a = read_checkpoint(one + "/last.h5");
  const auto b = read_checkpoint(two + "/last.h5");
  EXPECT_EQ(a.meta.step, 5);
  EXPECT_EQ(b.meta.step, 5);
  std::string where;
  std::vector<double> each;
  const double d = max_diff(a.model, b.model, /*params_only=*/true, &where, &each);
  EXPECT_LE(d, quantized ? 1e-4 : 1e-5) << "max |2x32 - 1x64| = " << d << " in " << where;
  const auto close = std::count_if(each.begin(), each.end(), [](double x) { return x <= 1e-5; });
  EXPECT_GE(static_cast<double>(close), 0.9 * static_cast<double>(each.size()));
  // Running statistics agree too (global batch statistics through SyncBN).
  EXPECT_LE(max_diff(a.model, b.model, false), 1e-4);
}

}  // namespace

TEST(Distributed, TwoRanksOfBatch32MatchOneRankOfBatch64FP) { expect_two_ranks_match_one("dp.toml", "fp", false); }

TEST(Distributed, TwoRanksOfBatch32MatchOneRankOfBatch64Lsq) {
  expect_two_ranks_match_one("dp_lsq.toml", "lsq", true);
}

TEST(Distributed, WithoutSyncBnTheRunsDifferButReplicasStayIdentical) {
  const auto one = fresh_dir(DP_WORK, "bn_1x64");
  const auto two = fresh_dir(DP_WORK, "bn_2x32");
  // verify_every = 1: after every step each rank compares its whole model with rank 0's.
  auto r2 = run_qhost("run " + config("dp.toml") + " --out " + two +
                  " --nproc 2 --set data.batch_size=32 --set distributed.sync_bn=false"
                  " --set distributed.verify_every=1 --log-level debug");
  ASSERT_EQ(r2.code, 0) << r2.output;
  EXPECT_NE(r2.output.find("step 5: all 2 ranks hold the same"), std::string::npos) << r2.output;
  auto r1 = run_qhost("run " + config("dp.toml") + " --out " + one + " --set distributed.sync_bn=false");
  ASSERT_EQ(r1.code, 0) << r1.output;
  // Per-rank statistics of 32 images are not those of 64: the check above is not vacuous.
  EXPECT_GT(max_diff(read_checkpoint(one + "/last.h5").model, read_checkpoint(two + "/last.h5").model, true), 1e-4);
}

TEST(Distributed, LqNetBasisIsIdenticalOnEveryRank) {
  const auto dir = fresh_dir(DP_WORK, "lqnet");
  auto r = run_qhost("run " + config("dp_lqnet.toml") + " --out " + dir +
                 " --nproc 2 --set data.batch_size=32 --set distributed.verify_every=1 --log-level debug");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("step 5: all 2 ranks hold the same"), std::string::npos) << r.output;
  // Without rank 0's buffers, each rank refits the activation basis from its own batch.
  const auto bad = fresh_dir(DP_WORK, "lqnet_nobroadcast");
  auto rb = run_qhost("run " + config("dp_lqnet.toml") + " --out " + bad +
                  " --nproc 2 --set data.batch_size=32 --set distributed.verify_every=1"
                  " --set distributed.broadcast_buffers=false");
  EXPECT_EQ(rb.code, 6) << rb.output;
  EXPECT_NE(rb.output.find("the ranks hold different models"), std::string::npos) << rb.output;
}

TEST(Distributed, KilledRankEndsTheJobAndResumeContinues) {
  const auto dir = fresh_dir(DP_WORK, "kill");
  const std::string run = "run " + config("dp.toml") + " --out " + dir +
                          " --nproc 2 --set data.batch_size=32 --set train.epochs=3";
  // Rank 1 dies (SIGKILL) in the second epoch, after epoch 1's checkpoint.
  auto r = run_qhost(run, "QTOOL_TEST_KILL_RANK=1 QTOOL_TEST_KILL_AT_STEP=7");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1 was killed by signal 9"), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 20.0 + 15.0) << r.output;  // timeout_s = 20, plus start-up
  const auto kept = read_checkpoint(dir + "/last.h5");
  EXPECT_EQ(kept.meta.epoch, 1);
  EXPECT_EQ(kept.meta.step, 5);
  auto resumed = run_qhost(run + " --resume");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;
  EXPECT_EQ(read_checkpoint(dir + "/last.h5").meta.step, 15);
  // The same as a job that was never interrupted.
  const auto ref = fresh_dir(DP_WORK, "kill_ref");
  auto full = run_qhost("run " + config("dp.toml") + " --out " + ref + " --nproc 2 --set data.batch_size=32 --set train.epochs=3");
  ASSERT_EQ(full.code, 0) << full.output;
  EXPECT_LE(max_diff(read_checkpoint(ref + "/last.h5").model, read_checkpoint(dir + "/last.h5").model, false), 1e-6);
}

TEST(Distributed, TorchrunEnvironmentLaunchesAndADeadPeerIsNamed) {
  const int port = free_local_port();
  auto env = [&](int rank) { return torchrun_env(rank, port); };
  const auto dir = fresh_dir(DP_WORK, "env");
  const std::string args = " run " + config("dp.toml") + " --out " + dir + " --set data.batch_size=32";
  // Two processes started by hand, as torchrun would.
  auto r = run_shell(env(1) + " " + QHOST_EXE + args + " > " + dir + ".rank1.log 2>&1 & " + env(0) + " " + QHOST_EXE +
                     args + "; rc=$?; wait $!; rc1=$?; echo rank0=$rc rank1=$rc1; exit $((rc + rc1))");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("rank0=0 rank1=0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("distributed: rank 0/2"), std::string::npos) << r.output;
  EXPECT_EQ(read_checkpoint(dir + "/last.h5").meta.step, 5);

  // Rank 1 dies at step 2: rank 0 stops with an error naming it, well within the timeout.
  const int port2 = free_local_port();
  auto env2 = [&](int rank) { return torchrun_env(rank, port2, "QTOOL_TEST_KILL_RANK=1 QTOOL_TEST_KILL_AT_STEP=2"); };
  const auto dir2 = fresh_dir(DP_WORK, "env_kill");
  const std::string args2 = " run " + config("dp.toml") + " --out " + dir2 + " --set data.batch_size=32";
  auto k = run_shell(env2(1) + " " + QHOST_EXE + args2 + " > /dev/null 2>&1 & " + env2(0) + " " + QHOST_EXE + args2 +
                     "; echo rank0=$?");
  EXPECT_NE(k.output.find("rank0=6"), std::string::npos) << k.output;
  EXPECT_NE(k.output.find("rank 1 stopped responding"), std::string::npos) << k.output;
  EXPECT_LT(k.seconds, 20.0 + 15.0) << k.output;
}

TEST(Distributed, BadLaunchEnvironmentIsAUsageError) {
  auto r = run_qhost("run " + config("dp.toml") + " --out " + fresh_dir(DP_WORK, "badenv"), "WORLD_SIZE=2 RANK=5");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("environment RANK"), std::string::npos) << r.output;
  auto both = run_qhost("run " + config("dp.toml") + " --out " + fresh_dir(DP_WORK, "badenv2") + " --nproc 2",
                        "WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1");
  EXPECT_EQ(both.code, 1) << both.output;
  EXPECT_NE(both.output.find("use either --nproc or a launcher"), std::string::npos) << both.output;
}

TEST(Distributed, LsqDataDrivenClipWarmUpUsesTheGlobalBatch) {
  // stable = 2: the activation clips are the running mean of the largest |x| of the
  // first two batches (no quantization yet); the ranks take the maximum over all of
  // them, as one process sees it. Compared right after the warm-up: later steps of
  // 2-bit training amplify rounding differences at the level boundaries.
  const auto one = fresh_dir(DP_WORK, "lsq_stable_1x64");
  const auto two = fresh_dir(DP_WORK, "lsq_stable_2x32");
  const std::string set = " --set quant.activation.stable=2 --set train.max_steps_per_epoch=2";
  auto r1 = run_qhost("run " + config("dp_lsq.toml") + " --out " + one + set);
  ASSERT_EQ(r1.code, 0) << r1.output;
  auto r2 = run_qhost("run " + config("dp_lsq.toml") + " --out " + two + set + " --nproc 2 --set data.batch_size=32");
  ASSERT_EQ(r2.code, 0) << r2.output;
  const auto a = read_checkpoint(one + "/last.h5").model;
  const auto b = read_checkpoint(two + "/last.h5").model;
  std::string where;
  const double clips = max_diff(a, b, true, &where, nullptr, "quant_activation.clip_val");
  EXPECT_LE(clips, 1e-5) << "activation clips: max |2x32 - 1x64| = " << clips << " in " << where;
  const double all = max_diff(a, b, true, &where);
  EXPECT_LE(all, 1e-4) << "max |2x32 - 1x64| = " << all << " in " << where;
}

TEST(Distributed, AHungRankIsNamedWithinTheTimeout) {
  // Rank 1 stops itself (SIGSTOP) at step 2 and never answers again: rank 0
  // must give up after timeout_s = 5 (not hang), naming rank 1.
  const int port = free_local_port();
  auto env = [&](int rank) {
    return torchrun_env(rank, port, "QTOOL_TEST_KILL_RANK=1 QTOOL_TEST_KILL_AT_STEP=2 QTOOL_TEST_KILL_SIGNAL=19");
  };
  const auto dir = fresh_dir(DP_WORK, "hang");
  const std::string args = " run " + config("dp.toml") + " --out " + dir +
                           " --set data.batch_size=32 --set distributed.timeout_s=5";
  auto r = run_shell(env(1) + " " + QHOST_EXE + args + " > /dev/null 2>&1 & pid=$!; " + env(0) + " " + QHOST_EXE +
                     args + "; echo rank0=$?; kill -9 $pid");
  EXPECT_NE(r.output.find("rank0=6"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 1 "), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 5.0 + 20.0) << r.output;
}

namespace {

// Sets environment variables for one test (each ctest case is its own process).
void set_env(std::initializer_list<std::pair<const char*, const char*>> vars) {
  for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                        "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_TASKS_PER_NODE", "SLURM_JOB_ID",
                        "QTOOL_JOB_ID", "QTOOL_JOB_TOKEN", "QTOOL_RENDEZVOUS_FILE", "TORCHELASTIC_RUN_ID"})
    ::unsetenv(v);
  for (const auto& [k, v] : vars) ::setenv(k, v, 1);
}

}  // namespace

TEST(DistEnv, ReadsTorchrunAndSlurmVariables) {
  set_env({});
  EXPECT_FALSE(DistEnv::from_environment().distributed());

  set_env({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
           {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "1234"}});
  auto e = DistEnv::from_environment();
  EXPECT_EQ(e.source, "torchrun");
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "node0");
  EXPECT_EQ(e.master_port, 1234);

  // srun: SLURM's variables mapped; "2(x4)" is SLURM's "2 tasks on each of 4 nodes".
  set_env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}, {"SLURM_TASKS_PER_NODE", "2(x4)"},
           {"MASTER_ADDR", "node0"}});
  e = DistEnv::from_environment();
  EXPECT_EQ(e.source, "slurm");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_port, 29500);

  set_env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}});
  try {
    DistEnv::from_environment();
    FAIL() << "MASTER_ADDR missing under srun must be an error";
  } catch (const qsdk::Error& err) {
    EXPECT_EQ(err.place(), "environment MASTER_ADDR");
    EXPECT_NE(err.hint().find("scontrol show hostnames"), std::string::npos) << err.hint();
  }
  set_env({{"RANK", "0"}, {"WORLD_SIZE", "two"}});
  EXPECT_THROW(DistEnv::from_environment(), qsdk::Error);
}

TEST(DistEnv, ReadsTheJobIdTokenAndRendezvousFile) {
  const std::initializer_list<std::pair<const char*, const char*>> two = {
      {"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}};
  set_env(two);
  auto e = DistEnv::from_environment();
  EXPECT_EQ(e.job_id, "default");
  EXPECT_EQ(e.job_token, "");
  EXPECT_EQ(e.store_file, "");
  // QTOOL_JOB_ID wins over torchrun's run id, which wins over SLURM's job id.
  set_env(two);
  ::setenv("SLURM_JOB_ID", "777", 1);
  EXPECT_EQ(DistEnv::from_environment().job_id, "777");
  ::setenv("TORCHELASTIC_RUN_ID", "elastic-1", 1);
  EXPECT_EQ(DistEnv::from_environment().job_id, "elastic-1");
  ::setenv("QTOOL_JOB_ID", "mine", 1);
  ::setenv("QTOOL_JOB_TOKEN", "s3cret", 1);
  ::setenv("QTOOL_RENDEZVOUS_FILE", "/tmp/x/store", 1);
  e = DistEnv::from_environment();
  EXPECT_EQ(e.job_id, "mine");
  EXPECT_EQ(e.job_token, "s3cret");
  EXPECT_EQ(e.store_file, "/tmp/x/store");
}

TEST(Distributed, QuantizersRebuiltByAScheduleStayAveragedAndIdentical) {
  // After the rebuild at epoch 1 the new clip parameters must be hooked into the
  // gradient all-reduce (else each rank trains its own) and tracked as state.
  const auto dir = fresh_dir(DP_WORK, "schedule");
  auto r = run_qhost("run " + config("dp_schedule.toml") + " --out " + dir +
                     " --nproc 2 --set data.batch_size=32 --set distributed.verify_every=1 --log-level debug");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("quantizers: rebuilt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step 10: all 2 ranks hold the same"), std::string::npos) << r.output;
}

TEST(Distributed, LocalRanksListenOnLoopbackOnly) {
  // --nproc rendezvous through a FileStore in a private folder: while rank 1 is
  // stopped (SIGSTOP at step 2), every TCP socket of the ranks, listening or
  // connected, is bound to 127.0.0.1 (Gloo's loopback device); before, rank 0's
  // TCPStore listened on all interfaces.
  const auto dir = fresh_dir(DP_WORK, "loopback");
  const std::string script = dir + ".sh";
  {
    std::ofstream s(script);
    s << "QTOOL_TEST_KILL_RANK=1 QTOOL_TEST_KILL_AT_STEP=2 QTOOL_TEST_KILL_SIGNAL=19 " << QHOST_EXE << " run "
      << config("dp.toml") << " --out " << dir
      << " --nproc 2 --set data.batch_size=32 --set distributed.timeout_s=60 > " << dir << ".log 2>&1 &\n"
      << "launcher=$!\n"
      << "for i in $(seq 1 600); do grep -q 'sending signal 19' " << dir << ".log && break; sleep 0.1; done\n"
      << "grep -q 'sending signal 19' " << dir << ".log && echo stopped\n"
      << "for pid in $(pgrep -P $launcher); do\n"
      << "  for fd in /proc/$pid/fd/*; do l=$(readlink $fd); case $l in socket:*) i=${l#socket:[}; echo inode=${i%]};; "
         "esac; done\n"
      << "done > " << dir << ".inodes\n"
      << "for f in /proc/net/tcp /proc/net/tcp6; do\n"
      << "  while read -r sl local remote st rest; do\n"
      << "    inode=$(echo $rest | awk '{print $6}')\n"
      << "    grep -qx inode=$inode " << dir << ".inodes || continue\n"
      << "    echo socket=$local; [ \"$st\" = 0A ] && echo listen=$local\n"
      << "  done < $f\n"
      << "done\n"
      << "grep -q 'file store in' " << dir << ".log && echo filestore\n"
      << "kill -9 $launcher $(pgrep -P $launcher) 2>/dev/null; wait $launcher 2>/dev/null; exit 0\n";
  }
  auto r = run_shell("bash " + script);
  ASSERT_NE(r.output.find("stopped"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("filestore"), std::string::npos) << r.output;
  int sockets = 0;
  for (size_t p = r.output.find("socket="); p != std::string::npos; p = r.output.find("socket=", p + 1)) {
    ++sockets;
    const std::string addr = r.output.substr(p + 7, r.output.find('\n', p) - p - 7);
    // 127.0.0.1 in /proc/net/tcp, or ::1 / ::ffff:127.0.0.1 in /proc/net/tcp6.
    const bool loopback = addr.rfind("0100007F:", 0) == 0 || addr.rfind("00000000000000000000000001000000:", 0) == 0 ||
                          addr.rfind("0000000000000000FFFF00000100007F:", 0) == 0;
    EXPECT_TRUE(loopback) << "a rank has a socket on " << addr << "\n" << r.output;
  }
  EXPECT_GT(sockets, 0) << r.output;  // Gloo's pair connections: the scan is not vacuous
}

TEST(Distributed, ARankWithoutTheJobTokenOrOfAnotherJobIsRefused) {
  const auto dir = fresh_dir(DP_WORK, "token");
  const std::string args = " run " + config("dp.toml") + " --out " + dir + " --set data.batch_size=32";
  auto pair = [&](const std::string& env0, const std::string& env1) {
    const int port = free_local_port();
    return run_shell(torchrun_env(1, port, env1) + " " + QHOST_EXE + args + " > " + dir + ".rank1.log 2>&1 & " +
                     torchrun_env(0, port, env0) + " " + QHOST_EXE + args + " --overwrite; rc=$?; wait $!; rc1=$?; " +
                     "cat " + dir + ".rank1.log; echo rank0=$rc rank1=$rc1");
  };
  auto bad = pair("QTOOL_JOB_TOKEN=secret-a", "QTOOL_JOB_TOKEN=secret-b");
  EXPECT_NE(bad.output.find("rank0=1 rank1=1"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("refused: rank 1 did not present this job's token"), std::string::npos) << bad.output;
  EXPECT_LT(bad.seconds, 30.0) << bad.output;
  auto other = pair("QTOOL_JOB_ID=a QTOOL_JOB_TOKEN=s", "QTOOL_JOB_ID=b QTOOL_JOB_TOKEN=s");
  EXPECT_NE(other.output.find("rank0=1 rank1=1"), std::string::npos) << other.output;
  EXPECT_NE(other.output.find("refused: rank 1 belongs to job 'b', rank 0 to job 'a'"), std::string::npos)
      << other.output;
  auto good = pair("QTOOL_JOB_ID=j QTOOL_JOB_TOKEN=s", "QTOOL_JOB_ID=j QTOOL_JOB_TOKEN=s");
  EXPECT_NE(good.output.find("rank0=0 rank1=0"), std::string::npos) << good.output;
  EXPECT_NE(good.output.find("job 'j'"), std::string::npos) << good.output;
}

TEST(Distributed, APeerDyingBeforeTheFirstBarrierIsARuntimeErrorNotAnAbort) {
  const int port = free_local_port();
  const auto dir = fresh_dir(DP_WORK, "die_at_rendezvous");
  const std::string args = " run " + config("dp.toml") + " --out " + dir + " --set data.batch_size=32";
  auto r = run_shell(torchrun_env(1, port, "QTOOL_TEST_KILL_RANK=1 QTOOL_TEST_KILL_AT_RENDEZVOUS=1") + " " + QHOST_EXE +
                     args + " > /dev/null 2>&1 & " + torchrun_env(0, port) + " " + QHOST_EXE + args +
                     "; echo rank0=$?");
  // 6 = runtime; a std::terminate would be 134 (SIGABRT).
  EXPECT_NE(r.output.find("rank0=6"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 1"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
}
