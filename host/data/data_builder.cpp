// build_data(): [data]'s dataset plugin, its splits and their loaders.
#include "data/data_builder.hpp"

#include "config/config.hpp"
#include "config/sections.hpp"
#include "plugins/registry.hpp"

#include <qsdk/error.hpp>

#include <spdlog/spdlog.h>

namespace qhost {

DataParts build_data(const Config& config, Registry& registry, bool train, int64_t rank, int64_t world_size) {
  const auto& root = config.root();
  const auto& data_table = section_table(root, "data");
  if (!names_a_plugin(data_table))
    throw qsdk::Error(qsdk::ErrorCategory::config, config.location("data").str() + ": data.type",
                      "no dataset given", "add [data] type = \"...\" (qhost list --kind dataset)");
  const auto exp = section_options<ExperimentOptions>(root, "experiment");
  const auto data_opts = section_options<DataOptions>(root, "data");
  const uint64_t seed = static_cast<uint64_t>(exp.seed);

  DataParts d;
  qsdk::DatasetContext dctx;
  dctx.seed = seed;
  std::shared_ptr<qsdk::Dataset> train_set, eval_set;
  if (train) {
    dctx.train = true;
    train_set = registry.make_dataset(data_table, dctx);
  }
  dctx.train = false;
  eval_set = registry.make_dataset(data_table, dctx);
  const auto& shape_src = train_set ? train_set : eval_set;
  d.num_classes = shape_src->num_classes();
  d.sample_shape = shape_src->sample_shape();
  spdlog::info("data: {}", shape_src->describe().empty() ? "dataset" : shape_src->describe());
  if (config.synthetic()) spdlog::warn("--synthetic: {}", config.synthetic_note());

  DataLoaderOptions lo;
  lo.batch_size = data_opts.batch_size;
  lo.workers = data_opts.workers;
  lo.prefetch = data_opts.prefetch;
  lo.drop_last = data_opts.drop_last;
  lo.wait_timeout_s = data_opts.wait_timeout_s;
  lo.seed = seed;
  lo.rank = rank;
  lo.world_size = world_size;
  if (train) {
    lo.shuffle = true;
    d.train_loader = std::make_unique<DataLoader>(train_set, lo);
  }
  DataLoaderOptions eo = lo;
  eo.shuffle = false;
  eo.drop_last = false;
  eo.even_shards = false;  // each rank evaluates its own part; sums are all-reduced
  eo.batch_size = data_opts.eval_batch_size > 0 ? data_opts.eval_batch_size : data_opts.batch_size;
  d.eval_loader = std::make_unique<DataLoader>(eval_set, eo);
  return d;
}

}  // namespace qhost
