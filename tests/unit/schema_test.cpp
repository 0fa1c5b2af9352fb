// Option schemas: exclusive bounds (in_range, range_text, the validator's
// message, `qhost describe`'s constraint), and members of a base struct bound
// without casts.
#include "config.hpp"
#include "registry.hpp"

#include <qsdk/error.hpp>
#include <qsdk/schema.hpp>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace qhost {
namespace {

struct Shared {
  int64_t bits = 2;
  double gamma = 0.5;
};
struct StepOptions : Shared {
  double step = 0.1;
  static qsdk::Schema<StepOptions> schema() {
    return qsdk::Schema<StepOptions>("exclusive bounds")
        .field("bits", &StepOptions::bits, "bit width (a Shared member)").range(1, 8)
        .field("gamma", &StepOptions::gamma, "in (0, 1)").greater_than(0).less_than(1)
        .field("step", &StepOptions::step, "positive step").greater_than(0);
  }
};

class Step : public qsdk::QuantizerImpl {
 public:
  Step(StepOptions o, const qsdk::QuantizerContext&) : o_(o) {}
  torch::Tensor forward(const torch::Tensor& x) override { return x * o_.step; }
  int64_t num_levels() const override { return int64_t{1} << o_.bits; }

 private:
  StepOptions o_;
};

TEST(Schema, ExclusiveBounds) {
  const auto info = StepOptions::schema().info();
  const qsdk::FieldSpec& gamma = *info.find("gamma");
  const qsdk::FieldSpec& step = *info.find("step");
  EXPECT_EQ(gamma.range_text(), "(0, 1)");
  EXPECT_EQ(step.range_text(), "> 0");
  EXPECT_EQ(info.find("bits")->range_text(), "[1, 8]");
  EXPECT_FALSE(step.in_range(0.0));
  EXPECT_TRUE(step.in_range(std::numeric_limits<double>::denorm_min()));
  EXPECT_FALSE(gamma.in_range(1.0));
  EXPECT_TRUE(gamma.in_range(0.999));
  EXPECT_FALSE(gamma.in_range(std::nan("")));
  EXPECT_TRUE(info.find("bits")->in_range(8.0));
  EXPECT_NO_THROW(info.check("quantizer/step"));
}

TEST(Schema, EmptyExclusiveRangeAndDefaultOnTheBoundAreSchemaErrors) {
  struct O {
    double a = 1.0;
  };
  auto bad_default = qsdk::Schema<O>("default on an excluded bound").field("a", &O::a, "a").greater_than(1);
  EXPECT_THROW(bad_default.info().check("quantizer/x"), qsdk::Error);
  auto empty = qsdk::Schema<O>("empty").field("a", &O::a, "a").greater_than(1).at_most(1);
  try {
    empty.info().check("quantizer/x");
    FAIL() << "no error";
  } catch (const qsdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("has an empty range (1, 1]"), std::string::npos) << e.what();
  }
}

TEST(Schema, BaseStructMembersBindWithoutCasts) {
  qsdk::Table t{{"bits", int64_t{4}}, {"gamma", 0.25}, {"step", 0.5}};
  StepOptions o = StepOptions::schema().bind(t);
  EXPECT_EQ(o.bits, 4);
  EXPECT_EQ(o.gamma, 0.25);
  EXPECT_EQ(o.step, 0.5);
}

TEST(Schema, ValidatorReportsExclusiveBounds) {
  Registry registry;
  registry.begin_plugin({"stepplug", "1.0.0", "/p/libqplug_stepplug.so"});
  registry.add_quantizer<Step, StepOptions>("step");
  registry.commit_plugin();
  Config c = Config::from_string(
      "[data]\ntype = \"x\"\n[quant.weight]\ntype = \"step\"\nstep = 0.0\ngamma = 1.0\n[quant.activation]\ntype = "
      "\"step\"\nstep = 1e-300\n",
      "t.toml");
  std::string all;
  for (const auto& p : c.check(registry)) all += p.str() + "\n";
  EXPECT_NE(all.find("quant.weight.step: 0.0 is not above 0"), std::string::npos) << all;
  EXPECT_NE(all.find("quant.weight.gamma: 1.0 is outside (0, 1)"), std::string::npos) << all;
  EXPECT_EQ(all.find("quant.activation.step"), std::string::npos) << all;  // tiny but positive is fine
}

}  // namespace
}  // namespace qhost
