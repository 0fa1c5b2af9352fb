// data_pipeline.cpp - benchmark of the ImageNet training input pipeline:
// imagefolder (JPEG decode) + RandomResizedCrop 224 + flip + normalize,
// through qhost::DataLoader with 0 (calling thread), 1 and 2 workers.
//
//   data_pipeline_bench [--images 200] [--seconds 3] [--batch 32] [--noise 10]
//                       [--dir D (reuse/keep JPEGs there)] [--no-dct]
//
// Without --dir, ~500x375 JPEGs (quality 90, smooth random content plus some
// grain so they compress like photos) are written to a temp folder with
// libturbojpeg and removed afterwards. tools/bench/data_pipeline_reference.py
// times the PIL + torch equivalent of torchvision's transforms on a --dir.
// SPDX-License-Identifier: Apache-2.0
#include "data/data_loader.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"
#include "sample_files.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <string>

#include <sys/resource.h>

namespace fs = std::filesystem;

namespace {

struct Args {
  int images = 200;
  double seconds = 3.0;
  int batch = 32;
  int noise = 10;
  std::string dir;
  bool dct = true;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + k);
      return argv[++i];
    };
    if (k == "--images")
      a.images = std::stoi(value());
    else if (k == "--seconds")
      a.seconds = std::stod(value());
    else if (k == "--batch")
      a.batch = std::stoi(value());
    else if (k == "--noise")
      a.noise = std::stoi(value());
    else if (k == "--dir")
      a.dir = value();
    else if (k == "--no-dct")
      a.dct = false;
    else
      throw std::runtime_error("unknown argument " + k);
  }
  return a;
}

// root/train/c<k>/img<i>.JPEG, 10 classes, sizes around ImageNet's typical 500x375.
size_t generate(const std::string& root, int images, int noise) {
  std::mt19937_64 g(1234);
  size_t bytes = 0;
  const int sizes[][2] = {{500, 375}, {375, 500}, {500, 333}, {500, 400}, {450, 350}};
  for (int i = 0; i < images; ++i) {
    const int w = sizes[i % 5][0], h = sizes[i % 5][1];
    auto rgb = qtool_samples::smooth_rgb(w, h, 1000 + i);
    std::uniform_int_distribution<int> grain(-noise, noise);
    for (auto& v : rgb) v = static_cast<uint8_t>(std::clamp(int(v) + grain(g), 0, 255));
    const auto jpeg = qtool_samples::encode_jpeg(rgb, w, h, 90);
    bytes += jpeg.size();
    qtool_samples::write_bytes(root + "/train/c" + std::to_string(i % 10) + "/img" + std::to_string(i) + ".JPEG", jpeg);
  }
  return bytes;
}

// Process CPU seconds (all threads): on a busy machine wall time measures the
// neighbours, CPU time measures us.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Minor page faults of the process so far: memory handed back to the kernel
// and touched again (a fresh page is zeroed first) costs CPU time per image.
long minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

struct Rate {
  double wall = 0;    // images per wall second
  double cpu = 0;     // images per CPU second (= per fully used thread)
  double faults = 0;  // minor page faults per image
};

Rate run(const std::shared_ptr<qsdk::Dataset>& ds, int workers, const Args& a, int64_t& images) {
  qhost::DataLoaderOptions o;
  o.batch_size = a.batch;
  o.workers = workers;
  o.prefetch = 4;
  o.drop_last = false;
  o.seed = 7;
  qhost::DataLoader loader(ds, o);
  // Warm-up epoch (page cache, allocator).
  loader.start_epoch(0);
  while (loader.next()) {
  }
  images = 0;
  const long f0 = minor_faults();
  const double c0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  for (int64_t epoch = 1; elapsed < a.seconds; ++epoch) {
    loader.start_epoch(epoch);
    while (auto b = loader.next()) images += b->input.size(0);
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double cpu = cpu_seconds() - c0;
  const auto n = static_cast<double>(images);
  return {n / elapsed, n / cpu, static_cast<double>(minor_faults() - f0) / n};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    at::set_num_threads(1);  // only the loader's threads do work
    std::unique_ptr<qtool_samples::TempDir> tmp;
    std::string root = a.dir;
    if (root.empty()) {
      tmp = std::make_unique<qtool_samples::TempDir>("bench");
      root = tmp->path();
    }
    if (!fs::exists(root + "/train")) {
      const size_t bytes = generate(root, a.images, a.noise);
      std::printf("generated %d JPEGs in %s, mean %.1f KB\n", a.images, root.c_str(), bytes / 1024.0 / a.images);
    }
    // The host's own loader (stamp checked) and registry: the dataset is built
    // as qhost builds it. Both stay alive past main's return (never destroyed:
    // the factories live in the plugin).
    auto* registry = new qhost::Registry;
    auto* loader = new qhost::PluginLoader(*registry);
    loader->load("imagefolder");
    qsdk::Table opts{{"type", "imagefolder"}, {"root", root}, {"dct_scaling", a.dct}};
    qsdk::DatasetContext ctx;
    ctx.train = true;
    ctx.seed = 0;
    auto ds = registry->make_dataset(opts, ctx);
    std::printf("%s; RandomResizedCrop 224 + flip + normalize, dct_scaling=%s, batch %d\n", ds->describe().c_str(),
                a.dct ? "on" : "off", a.batch);
    for (int workers : {0, 1, 2}) {
      int64_t images = 0;
      const Rate rate = run(ds, workers, a, images);
      std::printf(
          "workers=%d%s: %8.1f images/s wall, %8.1f images per CPU-second (%lld images, %.1f page faults per image)\n",
          workers, workers == 0 ? " (calling thread)" : "", rate.wall, rate.cpu, static_cast<long long>(images),
          rate.faults);
      std::fflush(stdout);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "data_pipeline_bench: %s\n", e.what());
    return 1;
  }
}
