// Meters, top-k and the JSON records of metrics.jsonl.
#include "train/metrics.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace qhost;

TEST(Metrics, TopkCountsLabelsAmongLargestLogits) {
  auto logits = torch::tensor({{0.1f, 0.9f, 0.0f}, {0.8f, 0.1f, 0.1f}, {0.2f, 0.3f, 0.5f}});
  auto target = torch::tensor({1, 1, 0}, torch::kInt64);
  EXPECT_EQ(topk_correct(logits, target, 1), 1);
  EXPECT_EQ(topk_correct(logits, target, 2), 2);
  EXPECT_EQ(topk_correct(logits, target, 5), 3);  // k clamped to the class count
}

TEST(Metrics, MeterIsBatchWeighted) {
  Meter m;
  m.add(1.0, 3);
  m.add(3.0, 1);
  EXPECT_DOUBLE_EQ(m.mean(), 1.5);
  EXPECT_EQ(m.count(), 4);
}

TEST(Metrics, JsonRecordEscapesAndFormats) {
  JsonRecord r;
  r.str("kind", "epoch \"1\"\n").integer("step", 42).num("loss", 0.25).num("bad", std::nan(""));
  EXPECT_EQ(r.text(), "{\"kind\": \"epoch \\\"1\\\"\\n\", \"step\": 42, \"loss\": 0.25, \"bad\": null}");
  EXPECT_EQ(format_duration(3725), "1h02m");
  EXPECT_EQ(format_duration(187), "3m07s");
  EXPECT_EQ(format_duration(12), "12s");
}
