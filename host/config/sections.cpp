#include "config/sections.hpp"

#include <qsdk/roles.hpp>

namespace qhost {

qsdk::Schema<ExperimentOptions> ExperimentOptions::schema() {
  using O = ExperimentOptions;
  return qsdk::Schema<O>("experiment identity and global settings")
      .field("name", &O::name, "run name; empty = the experiment file's stem")
      .field("seed", &O::seed, "global random seed").at_least(0)
      .field("out_dir", &O::out_dir, "folder that holds the run folder <out_dir>/<name>")
      .field("threads", &O::threads, "intra-op CPU threads, 0 = all cores").at_least(0)
      .field("device", &O::device,
             "where to train: \"auto\" (CUDA when LibTorch has it and a GPU is visible, else the CPU), "
             "\"cpu\", \"cuda\" or \"cuda:N\" (docs/training.md#devices-and-precision)")
      .field("log_every", &O::log_every, "log a progress line every N steps").at_least(1)
      .field("flush_denormal", &O::flush_denormal,
             "CPU: flush denormal floats to zero (FTZ/DAZ); denormal gradients slow x86 arithmetic many times over");
}

qsdk::Schema<PluginsOptions> PluginsOptions::schema() {
  using O = PluginsOptions;
  return qsdk::Schema<O>("which plugins to load and where to find them")
      .field("path", &O::path, "extra plugin folders, relative to this TOML file").path()
      .field("load", &O::load, "plugin names to load; empty = every plugin on the search path");
}

qsdk::Schema<DataOptions> DataOptions::schema() {
  using O = DataOptions;
  return qsdk::Schema<O>("data pipeline (plus the dataset component's own options)")
      .field("batch_size", &O::batch_size, "training batch size per process").at_least(1)
      .field("eval_batch_size", &O::eval_batch_size, "evaluation batch size, 0 = batch_size").at_least(0)
      .field("workers", &O::workers, "decode/augment threads").at_least(0)
      .field("prefetch", &O::prefetch, "batches prepared ahead").at_least(1)
      .field("drop_last", &O::drop_last, "drop the last incomplete training batch")
      .field("wait_timeout_s", &O::wait_timeout_s,
             "seconds the loop waits for a batch from the workers before it stops with a data error, 0 = no limit")
      .at_least(0);
}

qsdk::Schema<QuantOptions> QuantOptions::schema() {
  using O = QuantOptions;
  return qsdk::Schema<O>("quantization policy (plus weight/activation/output quantizers and overrides)")
      .field("padding_after_quant", &O::padding_after_quant, "pad after activation quantization, not before")
      .field("real_skip", &O::real_skip, "keep shortcut convolutions in full precision")
      .field("quantize_stem", &O::quantize_stem, "quantize the first convolution too")
      .field("quantize_head", &O::quantize_head, "quantize the classifier too");
}

qsdk::Schema<TrainOptions> TrainOptions::schema() {
  using O = TrainOptions;
  return qsdk::Schema<O>("training loop")
      .field("epochs", &O::epochs, "training epochs").at_least(1)
      .field("max_steps_per_epoch", &O::max_steps_per_epoch, "cap on steps per epoch, 0 = whole dataset")
      .at_least(0)
      .field("eval_every", &O::eval_every, "evaluate every N epochs").at_least(1)
      .field("save_every", &O::save_every, "write last.h5 every N epochs").at_least(1)
      .field("init_from", &O::init_from, "full-precision checkpoint to initialise from, empty = none")
          .path()
      .field("precision", &O::precision,
             "fp32, or autocast mixed precision bf16 / fp16 (fp16: CUDA only, with dynamic loss scaling); "
             "quantizers always compute in fp32")
      .one_of({"fp32", "bf16", "fp16"})
      .field("channels_last", &O::channels_last, "NHWC layout for 4-D weights and input batches")
      .field("cudnn_benchmark", &O::cudnn_benchmark, "let cuDNN time and pick convolution algorithms (CUDA only)");
}

qsdk::Schema<OptimizerOptions> OptimizerOptions::schema() {
  using O = OptimizerOptions;
  return qsdk::Schema<O>("optimizer")
      .field("type", &O::type, "optimizer").one_of({"sgd", "adam"})
      .field("lr", &O::lr, "base learning rate").at_least(0)
      .field("momentum", &O::momentum, "SGD momentum").range(0, 1)
      .field("nesterov", &O::nesterov, "Nesterov momentum (SGD)")
      .field("weight_decay", &O::weight_decay, "L2 weight decay").at_least(0)
      .field("decay_small", &O::decay_small, "also decay 1-D parameters (batch-norm, biases, scales)")
      .field("beta1", &O::beta1, "Adam beta1").range(0, 1)
      .field("beta2", &O::beta2, "Adam beta2").range(0, 1)
      .field("eps", &O::eps, "Adam epsilon").at_least(0)
      // (runtime) the reference's --custom_lr_list/--custom_lr and --custom_decay_list/--custom_decay
      .field("custom_lr_list", &O::custom_lr_list,
             "parameters whose name contains one of these get custom_lr (\"quant_weight\" also fixes "
             "the lr of quantized latent weights)")
      .field("custom_lr", &O::custom_lr, "learning rate of the custom_lr_list parameters").at_least(0)
      .field("custom_decay_list", &O::custom_decay_list,
             "parameters whose name contains one of these get custom_decay")
      .field("custom_decay", &O::custom_decay, "weight decay of the custom_decay_list parameters").at_least(0);
}

qsdk::Schema<DistributedOptions> DistributedOptions::schema() {
  using O = DistributedOptions;
  return qsdk::Schema<O>("multi-process training")
      .field("backend", &O::backend, "c10d backend: auto = gloo on CPU, nccl on CUDA").one_of({"auto", "gloo", "nccl"})
      .field("timeout_s", &O::timeout_s, "seconds before a silent rank or a stuck collective ends the job").at_least(1)
      .field("sync_bn", &O::sync_bn, "batch-norm statistics over all ranks' batches (SyncBatchNorm)")
      .field("bucket_mb", &O::bucket_mb, "gradient all-reduce bucket size in MB").at_least(0.01)
      .field("broadcast_buffers", &O::broadcast_buffers,
             "copy rank 0's buffers (BN running statistics, quantizer state) to every rank after each step")
      .field("verify_every", &O::verify_every,
             "every N steps, check that every rank holds rank 0's parameters and buffers (0 = never)")
      .at_least(0);
}

const std::vector<SectionSpec>& sections() {
  static const std::vector<SectionSpec> all = [] {
    std::vector<SectionSpec> s;
    s.push_back({"experiment", ExperimentOptions::schema().info(), std::nullopt, false, false});
    s.push_back({"plugins", PluginsOptions::schema().info(), std::nullopt, false, false});
    s.push_back({"data", DataOptions::schema().info(), qsdk::Kind::dataset, false, true});
    s.push_back({"model", qsdk::SchemaInfo{"the network", {}}, qsdk::Kind::model, false, true});
    s.push_back({"quant", QuantOptions::schema().info(), std::nullopt, false, false});
    s.push_back({"train", TrainOptions::schema().info(), std::nullopt, false, false});
    s.push_back({"optimizer", OptimizerOptions::schema().info(), std::nullopt, false, false});
    s.push_back({"scheduler", qsdk::SchemaInfo{"learning-rate policy", {}}, qsdk::Kind::scheduler, false, false});
    s.push_back({"trick", qsdk::SchemaInfo{"training tricks, applied in order", {}}, qsdk::Kind::trick, true, false});
    // (sweep) checked by check_schedule() (policy_schedule.cpp) once the other sections are resolved.
    s.push_back({"schedule",
                 qsdk::SchemaInfo{"option changes at epoch boundaries: [[schedule]] epoch = N (0-based) and "
                                  "set = { \"optimizer.lr\" = 0.01 }; supported keys: optimizer.lr, "
                                  "optimizer.weight_decay, optimizer.momentum, quant.<target>.<option>, "
                                  "quant.override[i].<target>.<option> (docs/sweeps.md)",
                                  {}},
                 std::nullopt, true, false});
    s.push_back({"distributed", DistributedOptions::schema().info(), std::nullopt, false, false});
    return s;
  }();
  return all;
}

const SectionSpec* find_section(const std::string& name) {
  for (const auto& s : sections())
    if (s.name == name) return &s;
  return nullptr;
}

const std::vector<std::string>& quant_targets() {
  static const std::vector<std::string> t = [] {
    std::vector<std::string> out;
    for (qsdk::QuantTarget x : qsdk::kAllQuantTargets) out.push_back(qsdk::to_string(x));
    return out;
  }();
  return t;
}

const std::vector<std::string>& layer_roles() {
  static const std::vector<std::string> r = [] {
    std::vector<std::string> out;
    for (qsdk::LayerRole x : qsdk::kAllLayerRoles) out.push_back(qsdk::to_string(x));
    return out;
  }();
  return r;
}

const qsdk::Table& section_table(const qsdk::Table& root, const std::string& name) {
  static const qsdk::Table empty;
  auto it = root.find(name);
  return it == root.end() || it->second.type() != qsdk::Value::Type::table ? empty : it->second.as_table();
}

bool names_a_plugin(const qsdk::Table& component) {
  auto it = component.find("type");
  return it != component.end() && it->second.type() == qsdk::Value::Type::string && !it->second.as_string().empty() &&
         it->second.as_string() != "none";
}

}  // namespace qhost
