// `qhost run` and `qhost eval`: build the experiment from a validated
// configuration (datasets, layer factory + model, optimizer, scheduler,
// tricks) and hand it to the Trainer.
#include "run/run.hpp"

#include "run/checkpoint_model.hpp"

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/integer_model.hpp"
#include "checkpoint/npy_file.hpp"
#include "config/config.hpp"
#include "config/sections.hpp"
#include "data/data_builder.hpp"
#include "dist/communicator.hpp"
#include "dist/dist_env.hpp"
#include "dist/launcher.hpp"
#include "dist/sync_batch_norm.hpp"
#include "platform/cpu_math.hpp"
#include "platform/device.hpp"
#include "platform/logging.hpp"
#include "platform/test_seams.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"
#include "quant/layer_factory.hpp"
#include "quant/model_builder.hpp"
#include "quant/quant_rebuild.hpp"
#include "train/optimization_builder.hpp"
#include "train/policy_schedule.hpp"
#include "train/run_checks.hpp"
#include "train/run_folder.hpp"
#include "train/trainer.hpp"
#include "train/trick_builder.hpp"

#include <qsdk/distributed.hpp>
#include <qsdk/error.hpp>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace qhost {
namespace {

namespace fs = std::filesystem;

// 0 = all cores, shared evenly by the ranks on this node (torchrun sets one thread per rank).
void set_threads(int64_t threads, int64_t local_ranks = 1) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int n = threads > 0 ? static_cast<int>(threads) : std::max(1, cores / static_cast<int>(std::max<int64_t>(1, local_ranks)));
  at::set_num_threads(n);
}

// [experiment] device resolved ("auto" -> cuda:0 or cpu) and logged; errors name the key.
std::string check_device(const std::string& device, const TrainOptions& train) {
  const torch::Device d = resolve_device(device);
  spdlog::info("device: {} ([experiment] device = \"{}\"), precision {}{}", describe_device(d), device,
               train.precision, train.channels_last ? ", channels_last" : "");
  set_cudnn_benchmark(train.cudnn_benchmark);
  return d.str();
}

/// Everything an experiment builds; the layer factory stays alive with the model.
struct Built {
  std::unique_ptr<LayerFactory> factory;
  TrainerParts parts;
  int64_t num_classes = 0;
  std::vector<int64_t> sample_shape;
  /// An integer model's decoded weights and activation forms, installed
  /// around its evaluation (docs/integer-model.md#evaluation); null for a checkpoint.
  std::shared_ptr<ExportHooks> integer_hooks;
};

// One builder per area, in this order (each model's initialisation draws from
// the global RNG, so a KD teacher is built before the student, as always).
// `allow_nonfinite`: a KD teacher checkpoint may hold NaN/inf (--allow-nonfinite).
Built build(const Config& config, Registry& registry, bool train, bool smoke, const DistEnv& dist = DistEnv(),
            bool allow_nonfinite = false) {
  const auto& root = config.root();
  Built b;
  DataParts data = build_data(config, registry, train, dist.rank, dist.world_size);
  b.num_classes = data.num_classes;
  b.sample_shape = data.sample_shape;
  b.parts.train_loader = std::move(data.train_loader);
  b.parts.eval_loader = std::move(data.eval_loader);

  const auto& model_table = section_table(root, "model");
  if (!names_a_plugin(model_table))
    throw qsdk::Error(qsdk::ErrorCategory::config, config.location("model").str() + ": model.type",
                      "no model given", "add [model] type = \"...\" (qhost list --kind model)");

  // Model through the host layer factory (quantizers attached by [quant]);
  // the tricks' weight transforms reach its quantized layers.
  const int64_t input_size = b.sample_shape.size() >= 2 ? b.sample_shape[1] : 0;
  b.factory = make_layer_factory(config.quant_policy(), registry,
                                 section_options<DataOptions>(root, "data").batch_size, input_size);
  TrickParts tricks = build_tricks(config, registry, *b.factory, b.num_classes, b.sample_shape, allow_nonfinite);
  b.parts.tricks = std::move(tricks.tricks);
  b.parts.trick_names = std::move(tricks.names);
  b.parts.model = build_model(model_table, registry, *b.factory, b.num_classes, b.sample_shape);

  // (schedule) [[schedule]], also for eval: a checkpoint written after a quantizer
  // change needs the rebuilt quantizers (PolicySchedule::catch_up_quantizers).
  b.parts.schedule = PolicySchedule::from_config(root);
  if (b.parts.schedule && b.parts.schedule->changes_quant())
    b.parts.schedule->attach_quantizers(std::make_shared<QuantRebuilder>(*b.factory, b.parts.model));

  if (train) {
    OptimizationParts opt = build_optimization(root, registry, *b.parts.model,
                                               b.parts.train_loader->batches_per_epoch(), smoke,
                                               b.parts.schedule.get());
    b.parts.optimizer = std::move(opt.optimizer);
    b.parts.scheduler = std::move(opt.scheduler);
  }
  return b;
}

}  // namespace

int run_experiment(const Config& config, Registry& registry, const RunOptions& options) {
  const DistEnv dist = DistEnv::from_environment();
  if (options.nproc > 1) {
    if (dist.distributed())
      throw qsdk::Error(qsdk::ErrorCategory::usage, "--nproc",
                        "this process already is " + dist.str() + " of a job started by " + dist.source,
                        "use either --nproc or a launcher (torchrun, srun), not both");
    return launch_local_ranks(options.nproc, options.rank_args);
  }
  const bool lead = dist.rank == 0;  // rank 0 alone writes files and logs at info level
  if (!lead) spdlog::set_level(spdlog::level::warn);
  const auto& root = config.root();
  const auto exp = section_options<ExperimentOptions>(root, "experiment");
  const auto train = section_options<TrainOptions>(root, "train");
  const auto dist_opts = section_options<DistributedOptions>(root, "distributed");
  std::string name = exp.name;
  if (name.empty()) name = config.path().empty() ? "run" : fs::path(config.path()).stem().string();

  // --out names the run folder itself; otherwise <out_dir>/<name>.
  const std::string parent = options.out_dir.empty() ? exp.out_dir : fs::path(options.out_dir).parent_path().string();
  const std::string leaf = options.out_dir.empty() ? name : fs::path(options.out_dir).filename().string();
  const FolderMode mode = options.resume ? FolderMode::resume : options.overwrite ? FolderMode::overwrite : FolderMode::fresh;
  RunFolder folder = lead ? open_run_folder(parent, leaf, mode) : RunFolder{(fs::path(parent) / leaf).string()};
  if (lead) add_log_file(folder.log());
  spdlog::info("run {} in {}{}", name, folder.dir, options.resume ? " (resume)" : options.smoke ? " (smoke)" : "");
  const std::string resolved = config.to_toml();
  if (lead && options.resume)
    warn_config_changes(read_checkpoint_meta(folder.last_checkpoint()).resolved_toml, resolved, folder.last_checkpoint());
  if (lead) write_text_file(folder.resolved(), resolved);

  set_threads(exp.threads, dist.local_world_size);
  set_flush_denormal(exp.flush_denormal);
  torch::manual_seed(static_cast<uint64_t>(exp.seed));
  const std::string device = check_device(exp.device, train);

  std::shared_ptr<Communicator> comm;
  if (dist.distributed()) {
    CommunicatorOptions co;
    co.backend = dist_opts.backend == "auto" ? (device.rfind("cuda", 0) == 0 ? "nccl" : "gloo") : dist_opts.backend;
    co.timeout_s = dist_opts.timeout_s;
    comm = std::make_shared<Communicator>(dist, co);
    qsdk::set_collectives(comm);
    spdlog::info("threads per rank: {}", at::get_num_threads());
  }
  if (dist_opts.sync_bn)
    qsdk::set_batch_norm2d_maker(
        [](const torch::nn::BatchNorm2dOptions& o) { return torch::nn::AnyModule(SyncBatchNorm2d(o)); });

  Built b = build(config, registry, true, options.smoke, dist, options.allow_nonfinite);
  if (!train.init_from.empty() && !options.resume &&
      !skipped_for_synthetic(config, resolve_config_path(train.init_from, config), "train.init_from")) {
    const auto path = resolve_config_path(train.init_from, config);
    CheckpointReadOptions ro;
    ro.model = b.parts.model.get();
    ro.lenient = true;  // only entries that fit are read; the others are reported
    ro.read_optimizer = false;
    ro.allow_nonfinite = options.allow_nonfinite;
    auto data = read_checkpoint(path, ro);
    auto report = init_module_from(*b.parts.model, data.model);
    spdlog::info("init_from {}: {}", path, report.summary());
    if (report.matched.empty())
      throw qsdk::Error(qsdk::ErrorCategory::checkpoint, path, "no tensor of the checkpoint matches the model",
                        "init_from needs a checkpoint of the same network (names as in /model)");
  }

  TrainerSettings ts;
  ts.epochs = options.smoke ? 1 : train.epochs;
  ts.max_steps_per_epoch = train.max_steps_per_epoch;
  ts.eval_every = train.eval_every;
  ts.save_every = train.save_every;
  ts.log_every = exp.log_every;
  ts.smoke = options.smoke;
  ts.device = device;
  ts.precision = parse_precision(train.precision);
  ts.channels_last = train.channels_last;
  ts.resolved_toml = resolved;
  if (lead) ts.folder = folder;
  ts.reset_optimizer = options.reset_optimizer;
  // Test hooks: compiled into test builds only (test_seams.hpp).
  ts.stop_after_epochs = test_seams::integer("STOP_AFTER_EPOCHS", 0);
  ts.kill_between_saves_epoch = test_seams::integer("KILL_BETWEEN_SAVES", 0);
  if (test_seams::integer("KILL_RANK", -1) == dist.rank) {
    ts.kill_at_step = test_seams::integer("KILL_AT_STEP", -1);
    ts.kill_signal = static_cast<int>(test_seams::integer("KILL_SIGNAL", 9));
  }
  ts.bucket_bytes = static_cast<int64_t>(dist_opts.bucket_mb * (1 << 20));
  ts.first_bucket_bytes = std::min<int64_t>(ts.bucket_bytes, 1 << 20);
  ts.broadcast_buffers = dist_opts.broadcast_buffers;
  ts.verify_every = dist_opts.verify_every;
  b.parts.comm = comm;
  Trainer trainer(std::move(b.parts), ts);
  if (options.resume) trainer.resume_from(folder.last_checkpoint(), options.allow_nonfinite);
  const auto t0 = std::chrono::steady_clock::now();
  auto result = trainer.fit();
  if (comm) comm->shutdown();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (result)
    spdlog::info("done in {}: top-1 {:.2f} top-5 {:.2f} (best {:.2f}); files in {}", format_duration(seconds),
                 result->top1, result->top5, trainer.best_top1(), folder.dir);
  else
    spdlog::info("done in {}; files in {}", format_duration(seconds), folder.dir);
  return 0;
}

namespace {

// `[plugins] path` folders and `[plugins] load` entries that are paths (a '/'
// or a .so name) in a configuration, as written.
std::vector<std::string> plugin_paths(const qsdk::Table& root) {
  std::vector<std::string> out;
  auto p = root.find("plugins");
  if (p == root.end() || p->second.type() != qsdk::Value::Type::table) return out;
  for (const char* key : {"path", "load"}) {
    auto it = p->second.as_table().find(key);
    if (it == p->second.as_table().end() || it->second.type() != qsdk::Value::Type::list) continue;
    for (const auto& e : it->second.as_list()) {
      if (e.type() != qsdk::Value::Type::string) continue;
      const std::string& s = e.as_string();
      const bool is_path = std::string(key) == "path" || s.find('/') != std::string::npos ||
                           (s.size() > 3 && s.compare(s.size() - 3, 3, ".so") == 0);
      if (is_path) out.push_back(s);
    }
  }
  return out;
}

}  // namespace

// The configuration stored in a checkpoint is the checkpoint author's, and
// loading a plugin runs its code: like torch.load(weights_only=True), plugin
// paths it names are refused unless the user trusts the checkpoint. Plugins
// found by name on the user's own search path (--plugin-path, QTOOL_PLUGIN_PATH,
// the built-in folder), paths in those folders (a run's own checkpoint evaluated
// with the run's --plugin-path) and paths given with --set stay allowed.
void refuse_checkpoint_plugins(const std::string& stored_toml, const Config& config, const std::string& checkpoint,
                               const std::vector<std::string>& user_dirs) {
  const auto stored = Config::from_string(stored_toml, checkpoint + ":/meta/resolved_toml", {});
  const auto named = plugin_paths(stored.root());
  auto canonical = [](const std::string& p) {
    std::error_code ec;
    const auto c = fs::weakly_canonical(p, ec);
    return ec ? fs::path(p).lexically_normal() : c;
  };
  std::vector<fs::path> trusted;
  for (const auto& d : user_dirs) trusted.push_back(canonical(d));
  auto on_user_path = [&](const std::string& p) {
    const fs::path c = canonical(p);
    return std::find(trusted.begin(), trusted.end(), c) != trusted.end() ||
           std::find(trusted.begin(), trusted.end(), c.parent_path()) != trusted.end();
  };
  for (const auto& p : plugin_paths(config.root()))
    if (std::find(named.begin(), named.end(), p) != named.end() && !on_user_path(p))
      throw qsdk::Error(qsdk::ErrorCategory::checkpoint, checkpoint + ":/meta/resolved_toml",
                        "names the plugin path '" + p + "'; plugins named inside a checkpoint are not loaded",
                        "a plugin runs code: pass --trust-checkpoint-plugins only for a checkpoint you trust, or "
                        "put the plugin on your own --plugin-path and --set plugins.path=[]");
}

namespace {

// The configuration a checkpoint is rebuilt from, validated: `config_file`
// (--config: the user's own) or the one stored in the checkpoint (its author's:
// plugin paths it names are refused unless trusted), with --synthetic applied.
// Sets the experiment's threads, denormal mode and seed.
Config checkpoint_config(Registry& registry, PluginLoader& loader, const std::string& checkpoint,
                         const CheckpointMeta& meta, const std::string& config_file,
                         const std::vector<std::string>& overrides, bool trust_plugins, bool synthetic,
                         const std::string& no_config_hint) {
  if (meta.resolved_toml.empty() && config_file.empty())
    throw qsdk::Error(qsdk::ErrorCategory::checkpoint, checkpoint + ":/meta/resolved_toml",
                      "the checkpoint holds no configuration to rebuild the model from (e.g. weights converted by "
                      "tools/torch2h5.py)",
                      no_config_hint);
  auto config = config_file.empty()
                    ? Config::from_string(meta.resolved_toml, checkpoint + ":/meta/resolved_toml", overrides)
                    : Config::load(config_file, overrides);
  if (config_file.empty() && !trust_plugins)
    refuse_checkpoint_plugins(meta.resolved_toml, config, checkpoint, loader.search_path());
  if (synthetic) config.use_synthetic_data();
  config.validate(registry, loader);
  const auto exp = section_options<ExperimentOptions>(config.root(), "experiment");
  set_threads(exp.threads);
  set_flush_denormal(exp.flush_denormal);
  torch::manual_seed(static_cast<uint64_t>(exp.seed));
  return config;
}

// The experiment of `config` built for evaluation with the checkpoint's weights
// loaded strictly (entries checked against the model before any data is read),
// quantizers first brought to the checkpoint's epoch of its [[schedule]].
Built build_with_weights(const Config& config, Registry& registry, const std::string& checkpoint,
                         const CheckpointMeta& meta, bool allow_nonfinite) {
  Built b = build(config, registry, false, false, DistEnv(), allow_nonfinite);
  if (b.parts.schedule) b.parts.schedule->catch_up_quantizers(meta.epoch, nullptr);
  if (meta.content == kIntegerModelContent) {
    b.integer_hooks = load_integer_model(*b.parts.model, b.factory->records(), checkpoint, allow_nonfinite);
    return b;
  }
  CheckpointReadOptions ro;
  ro.model = b.parts.model.get();
  ro.read_optimizer = false;
  ro.allow_nonfinite = allow_nonfinite;
  auto data = read_checkpoint(checkpoint, ro);
  load_module_state(*b.parts.model, data.model, checkpoint);
  return b;
}

}  // namespace

int eval_checkpoint(Registry& registry, PluginLoader& loader, const EvalOptions& options) {
  const auto meta = read_checkpoint_meta(options.checkpoint);
  const Config config = checkpoint_config(
      registry, loader, options.checkpoint, meta, options.config_file, options.overrides,
      options.trust_checkpoint_plugins, options.synthetic,
      "name the experiment that describes its model, quantizers and data: qhost eval " + options.checkpoint +
          " --config EXPERIMENT.toml");
  if (!options.config_file.empty()) spdlog::info("eval: model, quantizers and data from {}", options.config_file);
  Built b = build_with_weights(config, registry, options.checkpoint, meta, options.allow_nonfinite);
  if (b.integer_hooks) spdlog::info("eval: integer model (docs/integer-model.md): decoded weights, stored activation forms");
  const auto hooks = b.integer_hooks;
  const auto exp = section_options<ExperimentOptions>(config.root(), "experiment");
  TrainerSettings ts;
  const auto train = section_options<TrainOptions>(config.root(), "train");
  ts.device = check_device(exp.device, train);
  ts.precision = parse_precision(train.precision);
  ts.channels_last = train.channels_last;
  Trainer trainer(std::move(b.parts), ts);
  const auto t0 = std::chrono::steady_clock::now();
  // The quantized layers consult the hooks on this thread, where evaluate() runs the model.
  const ExportHooksScope scope(hooks.get());
  std::vector<torch::Tensor> logits;
  const auto r = trainer.evaluate(options.max_batches, options.dump_logits.empty() ? nullptr : &logits);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!options.dump_logits.empty()) {
    // In the evaluation set's order (the eval loader never shuffles), so row i
    // is sample i: what another runtime's predictions are compared against.
    write_npy(options.dump_logits, logits.empty() ? torch::empty({0, 0}) : torch::cat(logits));
    spdlog::info("eval: logits of {} samples written to {}", r.samples, options.dump_logits);
  }
  spdlog::info("eval {} (epoch {}, step {}): loss {:.4f} top-1 {:.2f} top-5 {:.2f} on {} samples in {}",
               options.checkpoint, meta.epoch, meta.step, r.loss, r.top1, r.top5, r.samples, format_duration(seconds));
  std::printf("top1 %.4f\ntop5 %.4f\nloss %.6f\nsamples %lld\n", r.top1, r.top5, r.loss,
              static_cast<long long>(r.samples));
  return 0;
}

CheckpointModel load_checkpoint_model(Registry& registry, PluginLoader& loader, const std::string& checkpoint,
                                      const CheckpointModelOptions& options) {
  const auto meta = read_checkpoint_meta(checkpoint);
  // Export traces the quantizers themselves; an integer model's weights are
  // already their output (and a weight quantizer is not idempotent for every method).
  if (meta.content == kIntegerModelContent)
    throw qsdk::Error(qsdk::ErrorCategory::checkpoint, checkpoint + ":/meta/content",
                      "is a qtool integer-model, not a training checkpoint (its weights are already quantized)",
                      "export the checkpoint the integer model was made from");
  const Config config = checkpoint_config(registry, loader, checkpoint, meta, "", options.overrides,
                                          options.trust_checkpoint_plugins, options.synthetic,
                                          "export a checkpoint written by qhost run");
  auto b = std::make_shared<Built>(build_with_weights(config, registry, checkpoint, meta, false));
  b->parts.model->eval();
  CheckpointModel m;
  m.model = b->parts.model;
  m.sample_shape = b->sample_shape;
  m.num_classes = b->num_classes;
  m.layers = b->factory->records();
  m.resolved_toml = meta.resolved_toml;
  m.epoch = meta.epoch;
  m.keep_alive = b;
  return m;
}

}  // namespace qhost
